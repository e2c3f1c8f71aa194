# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Translate migration options into libvirt migration flags and typed parameters.

Pure decision code: no libvirt or Ansible import, so it runs (and is unit
tested) anywhere.  The result is meant for the *peer-to-peer* form of the
libvirt migration API, where the source libvirtd connects to the destination
and drives the whole migration::

    spec = build_migration(options)
    dom.migrateToURI3(dest_libvirt_uri, spec.params, spec.flags)
    # or dom.migrate3(dest_conn, spec.params, spec.flags)

``spec.max_downtime_ms`` is not a migrate3 parameter: libvirt sets it with
``virDomainMigrateSetMaxDowntime``, meant to be called while the job runs, so the
caller (or the convergence engine in ``_convergence``) applies it.

Modes
-----
``live``
    Pre-copy live migration of a running guest (``VIR_MIGRATE_LIVE``).  The guest
    keeps running; memory is copied in passes until the rest fits in the
    allowed downtime.
``paused``
    Non-live migration of a running guest (``virsh migrate`` without ``--live``):
    libvirt pauses the guest for the whole transfer and resumes it on the
    destination.  Always converges; the downtime is the transfer time.  Can copy
    storage.  (virt_migrate's ``cold`` mode - shut down, move, start - is built
    from ``offline`` plus its own steps.)
``offline``
    ``VIR_MIGRATE_OFFLINE``: moves only the persistent definition of a shut-off
    domain.  No memory, no storage.

The options, their defaults and the checks they must pass are in ``_migration_options``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ansible_collections.kvmops.migration.plugins.module_utils._migration_options import (
    DEFAULT_OPTIONS,
    compression_methods,
    validate_options,
    with_defaults,
)
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_MIGRATE_ABORT_ON_ERROR,
    VIR_MIGRATE_AUTO_CONVERGE,
    VIR_MIGRATE_CHANGE_PROTECTION,
    VIR_MIGRATE_COMPRESSED,
    VIR_MIGRATE_LIVE,
    VIR_MIGRATE_NON_SHARED_DISK,
    VIR_MIGRATE_NON_SHARED_INC,
    VIR_MIGRATE_NON_SHARED_SYNCHRONOUS_WRITES,
    VIR_MIGRATE_OFFLINE,
    VIR_MIGRATE_PARALLEL,
    VIR_MIGRATE_PAUSED,
    VIR_MIGRATE_PEER2PEER,
    VIR_MIGRATE_PERSIST_DEST,
    VIR_MIGRATE_POSTCOPY,
    VIR_MIGRATE_POSTCOPY_RESUME,
    VIR_MIGRATE_RDMA_PIN_ALL,
    VIR_MIGRATE_TLS,
    VIR_MIGRATE_TUNNELLED,
    VIR_MIGRATE_UNDEFINE_SOURCE,
    VIR_MIGRATE_UNSAFE,
    VIR_MIGRATE_ZEROCOPY,
)


class MigrateFlag(enum.IntFlag):
    """``virDomainMigrateFlags`` bits (the values are in ``_libvirt_constants``)."""

    LIVE = VIR_MIGRATE_LIVE
    PEER2PEER = VIR_MIGRATE_PEER2PEER
    TUNNELLED = VIR_MIGRATE_TUNNELLED
    PERSIST_DEST = VIR_MIGRATE_PERSIST_DEST
    UNDEFINE_SOURCE = VIR_MIGRATE_UNDEFINE_SOURCE
    PAUSED = VIR_MIGRATE_PAUSED
    NON_SHARED_DISK = VIR_MIGRATE_NON_SHARED_DISK
    NON_SHARED_INC = VIR_MIGRATE_NON_SHARED_INC
    CHANGE_PROTECTION = VIR_MIGRATE_CHANGE_PROTECTION
    UNSAFE = VIR_MIGRATE_UNSAFE
    OFFLINE = VIR_MIGRATE_OFFLINE
    COMPRESSED = VIR_MIGRATE_COMPRESSED
    ABORT_ON_ERROR = VIR_MIGRATE_ABORT_ON_ERROR
    AUTO_CONVERGE = VIR_MIGRATE_AUTO_CONVERGE
    RDMA_PIN_ALL = VIR_MIGRATE_RDMA_PIN_ALL
    POSTCOPY = VIR_MIGRATE_POSTCOPY
    TLS = VIR_MIGRATE_TLS
    PARALLEL = VIR_MIGRATE_PARALLEL
    NON_SHARED_SYNCHRONOUS_WRITES = VIR_MIGRATE_NON_SHARED_SYNCHRONOUS_WRITES
    POSTCOPY_RESUME = VIR_MIGRATE_POSTCOPY_RESUME
    ZEROCOPY = VIR_MIGRATE_ZEROCOPY


class MigrateParam:
    """Typed-parameter keys of ``virDomainMigrate3``.

    Attribute names follow libvirt's ``VIR_MIGRATE_PARAM_<NAME>`` macros; the
    values are the strings those macros expand to (note ``DEST_NAME`` is
    ``"destination_name"``, not ``"dest_name"``).
    """

    URI = "migrate_uri"
    DEST_NAME = "destination_name"
    DEST_XML = "destination_xml"
    PERSIST_XML = "persistent_xml"
    BANDWIDTH = "bandwidth"
    BANDWIDTH_POSTCOPY = "bandwidth.postcopy"
    GRAPHICS_URI = "graphics_uri"
    LISTEN_ADDRESS = "listen_address"
    MIGRATE_DISKS = "migrate_disks"
    DISKS_PORT = "disks_port"
    DISKS_URI = "disks_uri"
    COMPRESSION = "compression"
    COMPRESSION_MT_LEVEL = "compression.mt.level"
    COMPRESSION_MT_THREADS = "compression.mt.threads"
    COMPRESSION_MT_DTHREADS = "compression.mt.dthreads"
    COMPRESSION_XBZRLE_CACHE = "compression.xbzrle.cache"
    COMPRESSION_ZLIB_LEVEL = "compression.zlib.level"
    COMPRESSION_ZSTD_LEVEL = "compression.zstd.level"
    AUTO_CONVERGE_INITIAL = "auto_converge.initial"
    AUTO_CONVERGE_INCREMENT = "auto_converge.increment"
    PARALLEL_CONNECTIONS = "parallel.connections"
    TLS_DESTINATION = "tls.destination"


COPY_STORAGE_FLAGS = {
    "none": MigrateFlag(0),
    "all": MigrateFlag.NON_SHARED_DISK,
    "incremental": MigrateFlag.NON_SHARED_INC,
}
# method -> the libvirt parameter of its compression level
COMPRESSION_LEVEL_PARAMS = {
    "mt": MigrateParam.COMPRESSION_MT_LEVEL,
    "zlib": MigrateParam.COMPRESSION_ZLIB_LEVEL,
    "zstd": MigrateParam.COMPRESSION_ZSTD_LEVEL,
}

# Options that only shape the data stream; an offline migration has none.
TRANSFER_OPTIONS = (
    "migrate_uri", "listen_address", "bandwidth", "compression", "parallel_connections",
    "tls", "tls_destination", "graphics_uri", "unsafe", "abort_on_error",
)
# Options that only matter while a running guest keeps dirtying memory.
LIVE_ONLY_OPTIONS = (
    "max_downtime", "auto_converge", "auto_converge_initial", "auto_converge_increment",
    "allow_postcopy", "postcopy_bandwidth",
)


@dataclass(frozen=True)
class MigrationSpec:
    """What to pass to ``migrateToURI3``/``migrate3``, plus what to report.

    ``flags`` is the integer flag word, ``params`` only holds parameters that are
    set (list values are passed as repeated typed parameters by libvirt-python),
    ``notes`` explains decisions a user may not expect, ``max_downtime_ms`` is the
    downtime bound to apply during the job (None: QEMU's default).
    """

    flags: int
    params: dict
    notes: list
    max_downtime_ms: int | None = None

    @property
    def flag_names(self) -> list[str]:
        """Sorted names of the set flags, e.g. ``['AUTO_CONVERGE', 'LIVE', ...]``."""
        return sorted(flag.name for flag in MigrateFlag if self.flags & flag)

    @property
    def postcopy_enabled(self) -> bool:
        """True when the job may be switched to post-copy (``migrateStartPostCopy``)."""
        return bool(self.flags & MigrateFlag.POSTCOPY)

    @property
    def auto_converge_enabled(self) -> bool:
        """True when QEMU may throttle the guest's vCPUs to converge."""
        return bool(self.flags & MigrateFlag.AUTO_CONVERGE)

    def as_dict(self) -> dict:
        """A JSON-friendly view for module results."""
        return {
            "flags": self.flags,
            "flag_names": self.flag_names,
            "params": dict(self.params),
            "notes": list(self.notes),
            "max_downtime_ms": self.max_downtime_ms,
        }


def _compression_settings(compression):
    params = {MigrateParam.COMPRESSION: compression_methods(compression)}
    for method in params[MigrateParam.COMPRESSION]:
        if method in COMPRESSION_LEVEL_PARAMS and compression.get("level") is not None:
            params[COMPRESSION_LEVEL_PARAMS[method]] = compression["level"]
    optional = (
        ("threads", MigrateParam.COMPRESSION_MT_THREADS),
        ("dthreads", MigrateParam.COMPRESSION_MT_DTHREADS),
        ("xbzrle_cache", MigrateParam.COMPRESSION_XBZRLE_CACHE),
    )
    params.update((param, compression[key]) for key, param in optional if compression.get(key) is not None)
    return params


def _transfer_settings(opts):
    """Flags and parameters of the data stream (live and paused migration)."""
    flags = COPY_STORAGE_FLAGS[opts["copy_storage"]]
    params = {}
    for enabled, flag in (
        (opts["tls"], MigrateFlag.TLS),
        (opts["tunnelled"], MigrateFlag.TUNNELLED),
        (opts["unsafe"], MigrateFlag.UNSAFE),
        (opts["abort_on_error"], MigrateFlag.ABORT_ON_ERROR),
        (opts["parallel_connections"] is not None, MigrateFlag.PARALLEL),
        (opts["compression"] is not None, MigrateFlag.COMPRESSED),
    ):
        if enabled:
            flags |= flag
    if opts["bandwidth"]:
        params[MigrateParam.BANDWIDTH] = opts["bandwidth"]
    if opts["parallel_connections"] is not None:
        params[MigrateParam.PARALLEL_CONNECTIONS] = opts["parallel_connections"]
    if opts["compression"] is not None:
        params.update(_compression_settings(opts["compression"]))
    for option, param in (
        ("migrate_uri", MigrateParam.URI),
        ("listen_address", MigrateParam.LISTEN_ADDRESS),
        ("tls_destination", MigrateParam.TLS_DESTINATION),
        ("graphics_uri", MigrateParam.GRAPHICS_URI),
        ("migrate_disks", MigrateParam.MIGRATE_DISKS),
        ("disks_port", MigrateParam.DISKS_PORT),
        ("disks_uri", MigrateParam.DISKS_URI),
    ):
        if opts[option] is not None:
            params[param] = list(opts[option]) if option == "migrate_disks" else opts[option]
    return flags, params


def _live_settings(opts):
    """Flags and parameters that only a live (pre-copy) migration uses."""
    flags = MigrateFlag.LIVE
    params = {}
    if opts["auto_converge"]:
        flags |= MigrateFlag.AUTO_CONVERGE
        if opts["auto_converge_initial"] is not None:
            params[MigrateParam.AUTO_CONVERGE_INITIAL] = opts["auto_converge_initial"]
        if opts["auto_converge_increment"] is not None:
            params[MigrateParam.AUTO_CONVERGE_INCREMENT] = opts["auto_converge_increment"]
    if opts["allow_postcopy"]:
        flags |= MigrateFlag.POSTCOPY
        if opts["postcopy_bandwidth"]:
            params[MigrateParam.BANDWIDTH_POSTCOPY] = opts["postcopy_bandwidth"]
    return flags, params


def _ignored_options(opts, names):
    return [name for name in names if opts[name] != DEFAULT_OPTIONS[name]]


def build_migration(options: dict) -> MigrationSpec:
    """Validate ``options`` and return the :class:`MigrationSpec` to migrate with.

    Raises :class:`MigrationOptionsError` (a ``ValueError``) on conflicts.
    """
    validate_options(options)
    opts = with_defaults(options)
    mode = opts["mode"]
    # The source libvirtd drives every mode: the module only needs a connection
    # to the source, and libvirt keeps the job alive if that connection drops.
    flags = MigrateFlag.PEER2PEER
    params = {}
    notes = []

    if opts["persistent"]:
        flags |= MigrateFlag.PERSIST_DEST
    if opts["undefine_source"]:
        flags |= MigrateFlag.UNDEFINE_SOURCE
        if not opts["persistent"] and opts["domain_persistent"]:
            notes.append(
                "persistent=false with undefine_source=true: the guest runs transient on the destination "
                "and its definition is removed from the source, so it disappears when it shuts down."
            )
    for option, param in (
        ("dest_name", MigrateParam.DEST_NAME),
        ("dest_xml", MigrateParam.DEST_XML),
        ("persistent_xml", MigrateParam.PERSIST_XML),
    ):
        if opts[option] is not None:
            params[param] = opts[option]

    if mode == "offline":
        flags |= MigrateFlag.OFFLINE
        ignored = _ignored_options(opts, TRANSFER_OPTIONS + LIVE_ONLY_OPTIONS)
        if ignored:
            notes.append("mode=offline transfers no data; ignored: %s." % ", ".join(ignored))
    else:
        transfer_flags, transfer_params = _transfer_settings(opts)
        flags |= transfer_flags
        params.update(transfer_params)
        if mode == "live":
            live_flags, live_params = _live_settings(opts)
            flags |= live_flags
            params.update(live_params)
        else:
            notes.append("mode=paused pauses the guest for the whole transfer; its downtime is the transfer time.")
            ignored = _ignored_options(opts, LIVE_ONLY_OPTIONS)
            if ignored:
                notes.append("mode=paused does not run pre-copy; ignored: %s." % ", ".join(ignored))

    return MigrationSpec(
        flags=int(flags),
        params=params,
        notes=notes,
        max_downtime_ms=opts["max_downtime"] if mode == "live" else None,
    )
