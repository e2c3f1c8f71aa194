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

Options (a plain dict; missing or ``None`` values take the defaults of
:data:`DEFAULT_OPTIONS`; unknown keys are ignored so a module may pass its whole
parameter dict):

=======================  ===================================================
mode                     ``live`` | ``paused`` | ``offline`` (default ``live``)
persistent               define the domain on the destination (default True)
undefine_source          remove the source definition afterwards (default True)
copy_storage             ``none`` | ``all`` | ``incremental`` (default ``none``)
migrate_disks            target devs (``vda`` ...) to copy; default: all writable
migrate_uri              native data URI, e.g. ``tcp://10.0.0.2``
listen_address           address the destination QEMU listens on
bandwidth                MiB/s during pre-copy; 0/None = unlimited
postcopy_bandwidth       MiB/s during post-copy; needs allow_postcopy
max_downtime             ms, the bound for the final stop-and-copy
compression              dict: methods (xbzrle|mt|zlib|zstd, default
                         [xbzrle]; zlib and zstd only with parallel
                         migration, xbzrle and mt only without), level,
                         threads, dthreads, xbzrle_cache (bytes)
parallel_connections     number of parallel (multifd) connections
tls / tls_destination    native TLS, and the certificate name to expect
tunnelled                carry data over the libvirtd connection
auto_converge            let QEMU throttle the vCPUs (default True) with
                         auto_converge_initial / auto_converge_increment (%)
allow_postcopy           start with post-copy enabled (default False)
unsafe, abort_on_error   the libvirt flags of the same name
dest_name, dest_xml,     passed through to the libvirt parameters of the
persistent_xml,          same meaning
graphics_uri, disks_port,
disks_uri
=======================  ===================================================

Facts about the domain are required: ``domain_active`` (running or paused) and
``domain_persistent`` (has a persistent definition).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class MigrateFlag(enum.IntFlag):
    """``virDomainMigrateFlags`` bits; the values are libvirt's ABI."""

    LIVE = 1 << 0
    PEER2PEER = 1 << 1
    TUNNELLED = 1 << 2
    PERSIST_DEST = 1 << 3
    UNDEFINE_SOURCE = 1 << 4
    PAUSED = 1 << 5
    NON_SHARED_DISK = 1 << 6
    NON_SHARED_INC = 1 << 7
    CHANGE_PROTECTION = 1 << 8
    UNSAFE = 1 << 9
    OFFLINE = 1 << 10
    COMPRESSED = 1 << 11
    ABORT_ON_ERROR = 1 << 12
    AUTO_CONVERGE = 1 << 13
    RDMA_PIN_ALL = 1 << 14
    POSTCOPY = 1 << 15
    TLS = 1 << 16
    PARALLEL = 1 << 17
    NON_SHARED_SYNCHRONOUS_WRITES = 1 << 18
    POSTCOPY_RESUME = 1 << 19
    ZEROCOPY = 1 << 20


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


MODES = ("live", "paused", "offline")
COPY_STORAGE_FLAGS = {
    "none": MigrateFlag(0),
    "all": MigrateFlag.NON_SHARED_DISK,
    "incremental": MigrateFlag.NON_SHARED_INC,
}

DEFAULT_OPTIONS = {
    "mode": "live",
    "persistent": True,
    "undefine_source": True,
    "copy_storage": "none",
    "migrate_disks": None,
    "migrate_uri": None,
    "listen_address": None,
    "bandwidth": None,
    "postcopy_bandwidth": None,
    "max_downtime": None,
    "compression": None,
    "parallel_connections": None,
    "tls": False,
    "tls_destination": None,
    "tunnelled": False,
    "auto_converge": True,
    "auto_converge_initial": None,
    "auto_converge_increment": None,
    "allow_postcopy": False,
    "unsafe": False,
    "abort_on_error": False,
    "dest_name": None,
    "dest_xml": None,
    "persistent_xml": None,
    "graphics_uri": None,
    "disks_port": None,
    "disks_uri": None,
}
REQUIRED_FACTS = ("domain_active", "domain_persistent")

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
# Options naming the native data connection, which tunnelled migration replaces.
NATIVE_TRANSPORT_OPTIONS = ("migrate_uri", "listen_address")

MAX_BANDWIDTH_MIB_S = 1_000_000  # 8 Tbit/s: anything above is a unit mistake (bytes?)
MAX_DOWNTIME_MS = 600_000
MAX_THREADS = 255
MIN_XBZRLE_CACHE_BYTES = 4096  # QEMU wants a power of two of at least one page

COMPRESSION_METHODS = ("xbzrle", "mt", "zlib", "zstd")
# libvirt runs zlib/zstd on the multifd channels only, and xbzrle/mt never there.
PARALLEL_ONLY_METHODS = ("zlib", "zstd")
# method -> (lowest level, highest level, libvirt parameter); zstd's range is QEMU's.
COMPRESSION_LEVELS = {
    "mt": (0, 9, MigrateParam.COMPRESSION_MT_LEVEL),
    "zlib": (1, 9, MigrateParam.COMPRESSION_ZLIB_LEVEL),
    "zstd": (1, 20, MigrateParam.COMPRESSION_ZSTD_LEVEL),
}


class MigrationOptionsError(ValueError):
    """The options cannot produce a valid migration.

    ``problems`` lists every problem found; each names what is wrong and how to
    fix it.
    """

    def __init__(self, problems):
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            numbered = " ".join("(%d) %s" % (index, problem) for index, problem in enumerate(self.problems, 1))
            message = "%d problems with the migration options: %s" % (len(self.problems), numbered)
        super().__init__(message)


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


def _with_defaults(options):
    merged = dict(DEFAULT_OPTIONS)
    merged.update((key, value) for key, value in options.items() if value is not None)
    return merged


def _is_int(value):
    # bool is an int subclass; True as a bandwidth is a caller bug, not 1 MiB/s.
    return isinstance(value, int) and not isinstance(value, bool)


def _range_problem(name, value, lowest, highest, unit=""):
    """Return a problem message when ``value`` is not an integer within [lowest, highest]."""
    if value is None:
        return None
    if not _is_int(value) or not lowest <= value <= highest:
        return "%s=%r is out of range: use an integer from %d to %d%s." % (name, value, lowest, highest, unit)
    return None


def _structural_problems(opts):
    """Problems that make every further check meaningless."""
    problems = []
    if opts["mode"] not in MODES:
        problems.append("mode=%r is not a migration mode: use one of %s." % (opts["mode"], ", ".join(MODES)))
    if opts["copy_storage"] not in COPY_STORAGE_FLAGS:
        problems.append(
            "copy_storage=%r is unknown: use one of %s." % (opts["copy_storage"], ", ".join(COPY_STORAGE_FLAGS))
        )
    for fact in REQUIRED_FACTS:
        if not isinstance(opts.get(fact), bool):
            problems.append(
                "the domain fact %s is missing: pass it as a boolean (read it from the source domain "
                "before building the migration)." % fact
            )
    return problems


def _mode_problems(opts):
    mode = opts["mode"]
    problems = []
    if mode in ("live", "paused") and not opts["domain_active"]:
        problems.append(
            "mode=%s needs a running guest but the domain is shut off: use mode=offline to move its "
            "definition, or start the domain first." % mode
        )
    if mode == "offline":
        if opts["domain_active"]:
            problems.append(
                "mode=offline moves only the definition of a shut-off domain but the domain is running: "
                "use mode=live (or mode=paused), or shut the domain down first."
            )
        if opts["copy_storage"] != "none":
            problems.append(
                "mode=offline moves only the definition, it cannot copy storage (copy_storage=%s): set "
                "copy_storage=none and copy the disks separately, or migrate the running guest with "
                "mode=live or mode=paused." % opts["copy_storage"]
            )
        if not opts["persistent"]:
            problems.append(
                "mode=offline with persistent=false would leave no definition anywhere: set persistent=true."
            )
        if opts["tunnelled"]:
            problems.append("mode=offline sends no data to tunnel: set tunnelled=false.")
    if opts["undefine_source"] and not opts["domain_persistent"]:
        problems.append(
            "undefine_source=true but the domain is transient (it has no definition to remove): set "
            "undefine_source=false, or define the domain persistently first."
        )
    return problems


def _tunnel_problems(opts):
    if not opts["tunnelled"]:
        return []
    conflicts = []
    if opts["allow_postcopy"]:
        conflicts.append(("allow_postcopy=true", "post-copy needs QEMU's return path, which a tunnel lacks",
                          "set allow_postcopy=false"))
    if opts["parallel_connections"] is not None:
        conflicts.append(("parallel_connections", "a tunnel is a single stream",
                          "remove parallel_connections"))
    if opts["tls"]:
        conflicts.append(("tls=true", "the libvirtd connection already encrypts the tunnel", "set tls=false"))
    if opts["copy_storage"] != "none":
        conflicts.append(("copy_storage=%s" % opts["copy_storage"],
                          "libvirt cannot copy disks through a tunnel with current QEMU",
                          "set copy_storage=none and copy the disks separately"))
    for name in NATIVE_TRANSPORT_OPTIONS:
        if opts[name] is not None:
            conflicts.append((name, "it configures the native data connection that a tunnel replaces",
                              "remove %s" % name))
    return ["%s cannot be combined with tunnelled=true (%s): %s, or set tunnelled=false (tls=true encrypts "
            "the native connection)." % conflict
            for conflict in conflicts]


def _dependency_problems(opts):
    """Options that only make sense together with another option."""
    problems = []
    if opts["copy_storage"] == "none":
        for name in ("migrate_disks", "disks_port", "disks_uri"):
            if opts[name] is not None:
                problems.append(
                    "%s is set but copy_storage=none copies no disk: set copy_storage=all (or incremental), "
                    "or remove %s." % (name, name)
                )
    if opts["migrate_disks"] is not None and (
        not isinstance(opts["migrate_disks"], (list, tuple))
        or not all(isinstance(dev, str) and dev for dev in opts["migrate_disks"])
    ):
        problems.append("migrate_disks must be a list of disk target names such as ['vda', 'vdb'].")
    if opts["postcopy_bandwidth"] is not None and not opts["allow_postcopy"]:
        problems.append(
            "postcopy_bandwidth only limits the post-copy phase: set allow_postcopy=true or remove it."
        )
    for name in ("auto_converge_initial", "auto_converge_increment"):
        if opts[name] is not None and not opts["auto_converge"]:
            problems.append("%s tunes auto-convergence: set auto_converge=true or remove %s." % (name, name))
    if opts["tls_destination"] is not None and not opts["tls"]:
        problems.append("tls_destination names the TLS certificate to expect: set tls=true or remove it.")
    if opts["persistent_xml"] is not None and not opts["persistent"]:
        problems.append(
            "persistent_xml is the definition to store on the destination: set persistent=true or remove it."
        )
    return problems


def _number_problems(opts):
    checks = (
        ("bandwidth", 0, MAX_BANDWIDTH_MIB_S, " MiB/s (0 = unlimited)"),
        ("postcopy_bandwidth", 0, MAX_BANDWIDTH_MIB_S, " MiB/s (0 = unlimited)"),
        ("max_downtime", 1, MAX_DOWNTIME_MS, " ms"),
        ("parallel_connections", 1, MAX_THREADS, ""),
        ("auto_converge_initial", 1, 99, " percent"),
        ("auto_converge_increment", 1, 99, " percent"),
        ("disks_port", 1, 65535, ""),
    )
    problems = [_range_problem(name, opts[name], lowest, highest, unit) for name, lowest, highest, unit in checks]
    return [problem for problem in problems if problem]


def _compression_methods(compression):
    """The methods to request; libvirt's own default is xbzrle, so name it explicitly."""
    methods = compression.get("methods") or ["xbzrle"]
    return list(methods) if isinstance(methods, (list, tuple)) else methods


def _compression_problems(opts):
    compression = opts["compression"]
    if compression is None:
        return []
    if not isinstance(compression, dict):
        return ["compression must be a dict such as {'methods': ['zstd'], 'level': 3}."]
    methods = _compression_methods(compression)
    if not isinstance(methods, list):
        return ["compression.methods must be a list such as ['xbzrle'] or ['zstd']."]
    unknown = [method for method in methods if method not in COMPRESSION_METHODS]
    if unknown:
        return ["compression method(s) %s unknown: use %s." % (", ".join(map(str, unknown)), ", ".join(COMPRESSION_METHODS))]
    problems = []
    if len(set(methods)) != len(methods):
        problems.append("compression.methods lists a method twice: list each method once.")
    parallel = opts["parallel_connections"] is not None
    for method in methods:
        if method in PARALLEL_ONLY_METHODS and not parallel:
            problems.append(
                "compression method %s only works with parallel migration: set parallel_connections "
                "(e.g. 4), or use xbzrle or mt." % method
            )
        if method not in PARALLEL_ONLY_METHODS and parallel:
            problems.append(
                "compression method %s is not supported with parallel migration: use zlib or zstd, or remove "
                "parallel_connections." % method
            )
    if all(method in methods for method in PARALLEL_ONLY_METHODS):
        problems.append("parallel migration compresses with one method: choose zlib or zstd, not both.")

    level = compression.get("level")
    levelled = [method for method in methods if method in COMPRESSION_LEVELS]
    if level is not None:
        if not levelled:
            problems.append("compression.level tunes mt, zlib or zstd: add one of them to methods or remove level.")
        for method in levelled:
            lowest, highest = COMPRESSION_LEVELS[method][:2]
            problems.append(_range_problem("compression.level (%s)" % method, level, lowest, highest))
    for key in ("threads", "dthreads"):
        if compression.get(key) is not None:
            if "mt" not in methods:
                problems.append("compression.%s tunes the mt method: add mt to methods or remove %s." % (key, key))
            problems.append(_range_problem("compression.%s" % key, compression[key], 1, MAX_THREADS))
    cache = compression.get("xbzrle_cache")
    if cache is not None:
        if "xbzrle" not in methods:
            problems.append("compression.xbzrle_cache sizes the xbzrle cache: add xbzrle to methods or remove it.")
        if not _is_int(cache) or cache < MIN_XBZRLE_CACHE_BYTES or cache & (cache - 1):
            problems.append(
                "compression.xbzrle_cache=%r is not a power of two of at least %d bytes, as QEMU requires: use "
                "e.g. 268435456 (256 MiB)." % (cache, MIN_XBZRLE_CACHE_BYTES)
            )
    return [problem for problem in problems if problem]


def validate_options(options: dict) -> None:
    """Raise :class:`MigrationOptionsError` listing every conflict in ``options``.

    Returns ``None`` when the options describe a migration libvirt will accept
    (as far as can be known without asking the hosts).
    """
    opts = _with_defaults(options)
    problems = _structural_problems(opts)
    if problems:
        raise MigrationOptionsError(problems)
    problems = (
        _mode_problems(opts)
        + _tunnel_problems(opts)
        + _dependency_problems(opts)
        + _number_problems(opts)
        + _compression_problems(opts)
    )
    if problems:
        raise MigrationOptionsError(problems)


def validate_options_before_connecting(options: dict) -> None:
    """Raise :class:`MigrationOptionsError` for every problem the options have whatever the
    domain is like, so that bad input is refused before any host is contacted.

    The domain facts are assumed to agree with the options (a running guest for a live or
    paused migration, a shut-off one for offline, a persistent definition); what depends on the
    real domain is checked again by :func:`validate_options` once it has been read.
    """
    opts = dict(options)
    opts["domain_active"] = (opts.get("mode") or DEFAULT_OPTIONS["mode"]) in ("live", "paused")
    opts["domain_persistent"] = True
    validate_options(opts)


def _compression_settings(compression):
    params = {MigrateParam.COMPRESSION: _compression_methods(compression)}
    for method in params[MigrateParam.COMPRESSION]:
        if method in COMPRESSION_LEVELS and compression.get("level") is not None:
            params[COMPRESSION_LEVELS[method][2]] = compression["level"]
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
    opts = _with_defaults(options)
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
