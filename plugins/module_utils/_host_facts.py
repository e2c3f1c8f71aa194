# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a hypervisor offers a migration, beyond its domain and capabilities XML (``_domain_xml``).

Private module_utils file (leading underscore): its API may change without notice.

Pure parsers of what the preflight's helper reads on a host (libvirtd.conf/qemu.conf lines,
``/proc/self/mountinfo``), and facts read through a destination's libvirt: the memory it can give
and a libvirt network's state (the migration asks these too before it moves a guest), a storage
pool at a directory, a small file read through that pool. No SSH here: virt_migrate imports this
without the preflight's remote probes.
"""

from __future__ import annotations

from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    KvmopsError,
    is_libvirt_error,
    libvirt_error_details,
)
from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import as_int
from ansible_collections.kvmops.migration.plugins.module_utils._storage import refresh_pool
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import VIR_ERR_NO_STORAGE_VOL

DEFAULT_MIGRATION_PORTS = (49152, 49215)
DEFAULT_LIBVIRT_PORTS = {'tcp': 16509, 'tls': 16514}


# ---------------------------------------------------------------------------
# libvirtd.conf / qemu.conf
# ---------------------------------------------------------------------------

def parse_conf(lines):
    """``key = value`` lines of libvirtd.conf/qemu.conf (comments already dropped) -> dict.
    Values: int, bool-ish int, quoted string, or the raw text for lists."""
    conf = {}
    for line in lines or ():
        line = line.strip()
        if not line or line.startswith('#') or '=' not in line:
            continue
        key, dummy, value = line.partition('=')
        key = key.strip()
        value = value.split('#', 1)[0].strip() if not value.strip().startswith(('"', "'")) else value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in '"\'':
            conf[key] = value[1:-1]
        else:
            parsed = as_int(value)
            conf[key] = parsed if parsed is not None else value
    return conf


def migration_port_range(qemu_conf):
    low = as_int(qemu_conf.get('migration_port_min'), DEFAULT_MIGRATION_PORTS[0])
    high = as_int(qemu_conf.get('migration_port_max'), DEFAULT_MIGRATION_PORTS[1])
    return low, high


def libvirt_port(libvirtd_conf, transport, uri_port=None):
    """The TCP port the transport connects to on the destination."""
    if uri_port:
        return uri_port
    if transport == 'ssh':
        return 22
    key = 'tcp_port' if transport == 'tcp' else 'tls_port'
    return as_int(libvirtd_conf.get(key), DEFAULT_LIBVIRT_PORTS[transport])


# ---------------------------------------------------------------------------
# Mounts
# ---------------------------------------------------------------------------

def parse_mountinfo(text):
    """/proc/self/mountinfo -> [(mount point, fstype)], fstype as ``fuse.<subtype>`` for FUSE."""
    mounts = []
    for line in (text or '').splitlines():
        left, sep, right = line.partition(' - ')
        if not sep:
            continue
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or not rfields:
            continue
        point = fields[4].replace('\\040', ' ').replace('\\011', '\t').replace('\\134', '\\')
        mounts.append((point, rfields[0]))
    return mounts


def filesystem_of(path, mounts):
    """(mount point, fstype) of the mount holding ``path`` (the last, longest matching mount)."""
    best = None
    for point, fstype in mounts:
        prefix = point.rstrip('/') + '/'
        if path == point or path.startswith(prefix) or point == '/':
            if best is None or len(point) >= len(best[0]):
                best = (point, fstype)
    return best


# ---------------------------------------------------------------------------
# Read through the destination's libvirt
# ---------------------------------------------------------------------------

def available_memory(stats_kib, free_bytes=None):
    """Bytes the destination can give to new guests now: free + buffers + page cache
    (getMemoryStats, KiB), or getFreeMemory's bytes when the stats are missing."""
    if stats_kib and 'free' in stats_kib:
        return (stats_kib.get('free', 0) + stats_kib.get('buffers', 0) + stats_kib.get('cached', 0)) * 1024
    return free_bytes


def dest_available_memory(dconn):
    """``available_memory`` of the host behind ``dconn`` (None when libvirt cannot say)."""
    stats = free = None
    try:
        stats = dconn.getMemoryStats(-1, 0)  # VIR_NODE_MEMORY_STATS_ALL_CELLS
    except Exception as exc:  # pylint: disable=broad-except
        if not is_libvirt_error(exc):
            raise
        try:
            free = dconn.getFreeMemory()
        except Exception as exc2:  # pylint: disable=broad-except
            if not is_libvirt_error(exc2):
                raise
    return available_memory(stats, free)


def dest_network_facts(dconn, name):
    """{exists, active, bridge} of the libvirt network ``name`` behind ``dconn`` (for check_interface)."""
    try:
        net = dconn.networkLookupByName(name)
    except Exception as exc:  # pylint: disable=broad-except
        if not is_libvirt_error(exc):
            raise
        return {'exists': False}
    active = bool(net.isActive())
    bridge = None
    if active:
        try:
            bridge = net.bridgeName()
        except Exception:  # pylint: disable=broad-except
            bridge = None
    return {'exists': True, 'active': active, 'bridge': bridge}


def dest_pool_facts(dconn, directory):
    """{name, active, available} of the pool whose target is ``directory`` on the host behind
    ``dconn`` (where a storage-copy migration creates the disk), or {error}."""
    try:
        pool = dconn.storagePoolLookupByTargetPath(directory)
    except Exception as exc:  # pylint: disable=broad-except
        if not is_libvirt_error(exc):
            raise
        return {'error': lv_message(exc)}
    active = bool(pool.isActive())
    available = None
    if active:
        try:
            refresh_pool(pool)
        except Exception:  # pylint: disable=broad-except
            pass
        available = pool.info()[3]
    return {'name': pool.name(), 'active': active, 'available': available}


def read_through_pool(dconn, directory, path, limit):
    """The first ``limit`` bytes of the file ``path`` in ``directory`` of the host behind ``dconn``
    (the preflight's probe file), read through its libvirt: the pool whose target is the directory
    (refreshed), the volume at that path, downloaded. {content, pool}; {content: None, pool} when
    the file is not there; {error} without such a pool or when libvirt refuses."""
    try:
        pool = dconn.storagePoolLookupByTargetPath(directory)
    except Exception as exc:  # pylint: disable=broad-except
        return {'error': 'no storage pool at %s on the destination to read the probe through (%s)' % (
            directory, lv_message(exc))}
    try:
        refresh_pool(pool)
        vol = dconn.storageVolLookupByPath(path)
    except Exception as exc:  # pylint: disable=broad-except
        if lv_code(exc) == VIR_ERR_NO_STORAGE_VOL:  # the file is not there
            return {'content': None, 'pool': pool.name()}
        return {'error': lv_message(exc)}
    data = b''
    try:
        stream = dconn.newStream(0)
        vol.download(stream, 0, limit, 0)
        while True:
            chunk = stream.recv(limit)
            if not chunk or not isinstance(chunk, bytes):
                break
            data += chunk
        stream.finish()
    except Exception as exc:  # pylint: disable=broad-except
        return {'error': 'probe volume visible on the destination but unreadable: %s' % lv_message(exc)}
    return {'content': data.decode('ascii', 'replace'), 'pool': pool.name()}


# ---------------------------------------------------------------------------
# libvirt errors as text
# ---------------------------------------------------------------------------

def library_version(conn):
    """The libvirt version of the daemon behind `conn` (an int, e.g. 9000000), or None when there is
    no connection or the daemon does not answer (the caller then treats the version as unknown)."""
    if conn is None:
        return None
    try:
        return conn.getLibVersion()
    except Exception as exc:  # pylint: disable=broad-except
        if not is_libvirt_error(exc):
            raise
        return None


def lv_message(exc):
    """The message of a libvirt (or kvmops) error, without the exception's decoration."""
    if is_libvirt_error(exc) or hasattr(exc, 'get_error_message'):
        return libvirt_error_details(exc)['libvirt_error_message']
    if isinstance(exc, KvmopsError):
        return exc.msg
    return str(exc)


def lv_code(exc):
    """libvirt's error code of ``exc``, or None."""
    try:
        return exc.get_error_code()
    except Exception:  # pylint: disable=broad-except
        return None
