# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Which migration options libvirt will accept, and why not: the options' defaults and every check.

Pure decision code: no libvirt or Ansible import, so it runs (and is unit
tested) anywhere.  ``validate_options`` raises :class:`MigrationOptionsError`
listing every problem, each naming what is wrong and how to fix it;
``_migration_flags.build_migration`` turns valid options into libvirt's flags
and typed parameters.

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

MODES = ("live", "paused", "offline")
COPY_STORAGE_MODES = ("none", "all", "incremental")

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

# Options naming the native data connection, which tunnelled migration replaces.
NATIVE_TRANSPORT_OPTIONS = ("migrate_uri", "listen_address")

MAX_BANDWIDTH_MIB_S = 1_000_000  # 8 Tbit/s: anything above is a unit mistake (bytes?)
MAX_DOWNTIME_MS = 600_000
MAX_THREADS = 255
MIN_XBZRLE_CACHE_BYTES = 4096  # QEMU wants a power of two of at least one page

COMPRESSION_METHODS = ("xbzrle", "mt", "zlib", "zstd")
# libvirt runs zlib/zstd on the multifd channels only, and xbzrle/mt never there.
PARALLEL_ONLY_METHODS = ("zlib", "zstd")
# method -> (lowest level, highest level); zstd's range is QEMU's.
COMPRESSION_LEVELS = {
    "mt": (0, 9),
    "zlib": (1, 9),
    "zstd": (1, 20),
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


def with_defaults(options):
    """``options`` with :data:`DEFAULT_OPTIONS` where a value is missing or None."""
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
    if opts["copy_storage"] not in COPY_STORAGE_MODES:
        problems.append(
            "copy_storage=%r is unknown: use one of %s." % (opts["copy_storage"], ", ".join(COPY_STORAGE_MODES))
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


def compression_methods(compression):
    """The methods to request; libvirt's own default is xbzrle, so name it explicitly."""
    methods = compression.get("methods") or ["xbzrle"]
    return list(methods) if isinstance(methods, (list, tuple)) else methods


def _compression_problems(opts):
    compression = opts["compression"]
    if compression is None:
        return []
    if not isinstance(compression, dict):
        return ["compression must be a dict such as {'methods': ['zstd'], 'level': 3}."]
    methods = compression_methods(compression)
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
            lowest, highest = COMPRESSION_LEVELS[method]
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
    opts = with_defaults(options)
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
