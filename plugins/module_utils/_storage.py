# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Storage on the hosts, through the libvirt API only (a domain's disks are read by ``_domain_xml``).

``is_shared(...)`` proves that a directory is the
same storage on both hosts: it writes a small probe volume through the source pool and
looks for it through a pool at the same path on the destination. ``ensure_dest_pool``
gives the destination a directory pool at a disk's directory, which libvirt needs to
pre-create volumes for storage-copy migration ("Storage pool not found" otherwise).
``copy_volume`` streams a volume between hosts (cold migration of non-shared disks).
``read_host_file`` reads a small file of another host (an evacuation's maintenance marks).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
import xml.etree.ElementTree as ET

from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    KvmopsError,
    MigrationError,
    is_libvirt_error,
    libvirt_error_details,
    translate_libvirt_error,
    translated,
)
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import VIR_ERR_NO_STORAGE_VOL

STREAM_CHUNK = 1024 * 1024

# libvirt refuses to refresh a pool while a volume is being created, cloned or wiped in it ("pool
# 'x' has asynchronous jobs running."): with two migrations out of one host at once, one's storage
# probe (a volume created in the shared directory) can meet the other's refresh of that pool.
POOL_BUSY_TEXT = 'has asynchronous jobs running'
POOL_BUSY_WAIT_S = 10.0


def refresh_pool(pool, timeout_s=POOL_BUSY_WAIT_S, interval_s=0.1, clock=time.monotonic, sleep=time.sleep):
    """``pool.refresh()``, tried again while libvirt says another job is running in the pool
    (creating a small volume, as a storage probe does, is such a job).

    libvirt stops a pool whose refresh fails, e.g. when a file in it is deleted by another host
    while the refresh reads it ("Stale file handle" on a shared file system). A pool that was
    running before is then started again, as it was, and refreshed once more; any other failure,
    or a second one, is raised."""
    deadline = clock() + timeout_s
    was_active = bool(pool.isActive())
    restarted = False
    while True:
        try:
            pool.refresh(0)
            return
        except Exception as exc:  # a libvirtError
            if POOL_BUSY_TEXT in str(exc) and clock() < deadline:
                sleep(interval_s)
                continue
            if was_active and not restarted and _start_if_stopped(pool):
                restarted = True
                continue
            raise


def _start_if_stopped(pool):
    """Start ``pool`` if libvirt stopped it; True when it runs again."""
    try:
        if pool.isActive():
            return False
        pool.create(0)
        return True
    except Exception:  # pylint: disable=broad-except
        return False  # it stays stopped: the caller raises the refresh error


def _pools_at(conn, directory):
    """The pools defined (running or not) whose target path is `directory`."""
    for pool in conn.listAllStoragePools(0):
        try:
            path = parse_pool_xml(pool.XMLDesc(0))['target_path']
        except ET.ParseError:
            continue
        if path and os.path.normpath(path) == os.path.normpath(directory):
            yield pool


def _pool_for_dir(conn, directory, refresh=True):
    """The active pool whose target path is `directory`, or None."""
    for pool in _pools_at(conn, directory):
        if pool.isActive():
            if refresh:
                refresh_pool(pool)
            return pool
    return None


def parse_pool_xml(xml):
    """{type, target_path} of a storage pool's XML."""
    root = ET.fromstring(xml)
    path = root.find('./target/path')
    return {'type': root.get('type'), 'target_path': path.text.strip() if path is not None and path.text else None}


def volume_format(xml):
    """The format a volume's XML declares (``<target><format type=...>``), or None."""
    fmt = ET.fromstring(xml).find('./target/format')
    return fmt.get('type') if fmt is not None else None


def dir_pool_xml(name, path):
    """A directory storage pool at ``path`` (storagePoolDefineXML/CreateXML). Built with ElementTree:
    a path or name holding ``<``, ``&`` or quotes stays data."""
    pool = ET.Element('pool', {'type': 'dir'})
    ET.SubElement(pool, 'name').text = name
    ET.SubElement(ET.SubElement(pool, 'target'), 'path').text = path
    return ET.tostring(pool, encoding='unicode')


def volume_xml(name, capacity, fmt, allocation=None):
    """A volume of ``capacity`` bytes in format ``fmt`` (storageVolCreateXML). Without ``allocation``
    libvirt allocates the whole capacity; ``allocation=0`` makes it sparse."""
    vol = ET.Element('volume')
    ET.SubElement(vol, 'name').text = name
    ET.SubElement(vol, 'capacity', {'unit': 'bytes'}).text = str(int(capacity))
    if allocation is not None:
        ET.SubElement(vol, 'allocation', {'unit': 'bytes'}).text = str(int(allocation))
    ET.SubElement(ET.SubElement(vol, 'target'), 'format', {'type': fmt})
    return ET.tostring(vol, encoding='unicode')


def pool_name_for(directory):
    return 'kvmops-%s' % hashlib.sha256(directory.encode()).hexdigest()[:10]


def ensure_dest_pool(conn, directory, host):
    """Make sure `conn` has an active dir pool at `directory`; return (pool, created)."""
    pool = _pool_for_dir(conn, directory, refresh=False)
    if pool is not None:
        return pool, False
    xml = dir_pool_xml(pool_name_for(directory), directory)
    with translated('Creating a storage pool at %s on %s' % (directory, host)):
        pool = conn.storagePoolDefineXML(xml, 0)
        pool.build(0)
        pool.create(0)
        pool.setAutostart(1)
    return pool, True


class _PoolAt:
    """The active pool at `directory`, or a transient one made for the duration (no lasting change)."""

    def __init__(self, conn, directory, host):
        self.conn, self.directory, self.host = conn, directory, host
        self.transient = None

    def __enter__(self):
        pool = _pool_for_dir(self.conn, self.directory)
        if pool is None:
            xml = dir_pool_xml('%s-probe' % pool_name_for(self.directory), self.directory)
            with translated('Opening %s on %s as a transient storage pool' % (self.directory, self.host)):
                pool = self.transient = self.conn.storagePoolCreateXML(xml, 0)
        return pool

    def __exit__(self, *exc):
        if self.transient is not None:
            try:
                self.transient.destroy()
            except Exception:  # a transient pool vanishes with its host's libvirtd anyway
                pass
        return False


# A libvirt system error carries the errno in int1: ENOENT when a pool's directory does not exist.
ENOENT = 2
HOST_FILE_MAX_BYTES = 64 * 1024


def _missing_directory(exc):
    cause = getattr(exc, '__cause__', None) or exc
    try:
        return cause.get_int1() == ENOENT
    except Exception:  # not a libvirtError: not the missing-directory case
        return False


def read_host_file(conn, path, host, limit=HOST_FILE_MAX_BYTES):
    """The bytes of a small file on the host behind ``conn``, read through libvirt: its directory
    as a storage pool (the one defined there, or a transient one for the duration: no lasting
    change) and the file downloaded as a volume. An evacuation reads the other hosts' maintenance
    marks this way over the connections it holds anyway, instead of one SSH login per host.

    None when the directory or the file does not exist; a KvmopsError for anything else (the
    host refused, the file is larger than ``limit``)."""
    directory, name = os.path.split(path)
    try:
        with _PoolAt(conn, directory, host) as pool:
            try:
                volume = pool.storageVolLookupByName(name)
            except Exception as exc:  # a libvirtError: no such volume is the usual case
                if getattr(exc, 'get_error_code', lambda: None)() == VIR_ERR_NO_STORAGE_VOL:
                    return None
                raise
            with translated('Reading %s on %s' % (path, host)):
                size = volume.info()[1]
                if size > limit:
                    raise MigrationError('%s on %s is %d bytes, more than the %d expected' % (path, host, size, limit))
                stream = conn.newStream(0)
                volume.download(stream, 0, size, 0)
                data = b''
                while True:
                    chunk = stream.recv(STREAM_CHUNK)
                    if not chunk:
                        break
                    data += chunk
                stream.finish()
                return data
    except Exception as exc:  # a KvmopsError from _PoolAt, or a libvirtError from the lookup
        if _missing_directory(exc):
            return None
        if is_libvirt_error(exc):
            raise translate_libvirt_error(exc, 'Reading %s on %s' % (path, host)) from exc
        raise


def free_bytes_at(conn, directory, host):
    """Free bytes in `directory` as libvirt sees it (a transient pool when none is defined there;
    no lasting change), or None when no pool can be opened there (e.g. the directory is missing)."""
    try:
        with _PoolAt(conn, directory, host) as pool:
            refresh_pool(pool)
            return pool.info()[3]
    except Exception:  # reported as unknown by the caller's check, which then does not block
        return None


# One probe at a time per process: a probe file deleted on one host while another host's refresh
# reads it makes that refresh fail (and libvirt stop the pool there), and an evacuation runs
# several migrations, each probing its storage, at once.
_PROBING = threading.Lock()


def is_shared(src_conn, dst_conn, directory, src_host, dst_host):
    """True when `directory` is the same storage on both hosts, proven with a probe volume:
    written through the source's pool, looked up through a pool at the same path on the
    destination. Pools made for the probe are transient; the probe is always deleted."""
    with _PROBING:
        return _probe(src_conn, dst_conn, directory, src_host, dst_host)


def _probe(src_conn, dst_conn, directory, src_host, dst_host):
    name = '.kvmops-probe-%s' % uuid.uuid4().hex[:12]
    xml = volume_xml(name, 4096, 'raw')
    with _PoolAt(src_conn, directory, src_host) as src_pool:
        with translated('Writing a storage probe in %s on %s' % (directory, src_host)):
            probe = src_pool.createXML(xml, 0)
        try:
            return _probe_seen(dst_conn, directory, name, dst_host)
        finally:
            probe.delete(0)


def _probe_seen(conn, directory, name, host):
    """Whether the probe volume `name` is in `directory` on `host`: False when the directory
    or the probe is not there (other storage). Any other failure means the destination's
    storage at `directory` cannot be read now (a mount that is down answers "Transport endpoint
    is not connected", and libvirt then stops the pool there): that is raised, because "not
    shared" would send the user to copy storage onto a mount that is only broken."""
    try:
        with _PoolAt(conn, directory, host) as pool:
            pool.storageVolLookupByName(name)
            return True
    except Exception as exc:  # a KvmopsError from _PoolAt, or a libvirtError from refresh or lookup
        cause = getattr(exc, '__cause__', None) or exc
        if _missing_directory(exc) or (is_libvirt_error(cause) and cause.get_error_code() == VIR_ERR_NO_STORAGE_VOL):
            return False
        if not (is_libvirt_error(cause) or isinstance(exc, KvmopsError)):
            raise
        inactive = _stopped_pool_names(conn, directory)
        raise MigrationError(
            'Cannot tell whether %s is shared storage: %s cannot read it (%s)%s' % (
                directory, host, getattr(exc, 'msg', None) or libvirt_error_details(cause)['libvirt_error_message'],
                '; its storage pool %s there is stopped' % ', '.join(inactive) if inactive else ''),
            remedy='Check that %s is mounted and readable on %s, then start its storage pool there if libvirt '
                   'stopped it (libvirt stops a pool whose refresh failed, e.g. while its mount was down).' % (
                       directory, host)) from exc


def _stopped_pool_names(conn, directory):
    """Names of the pools defined at `directory` that do not run."""
    try:
        return [pool.name() for pool in _pools_at(conn, directory) if not pool.isActive()]
    except Exception:  # only a detail of the message: the error itself is raised anyway
        return []


def volume_exists(conn, path):
    try:
        conn.storageVolLookupByPath(path)
        return True
    except Exception:  # libvirtError: no volume with that path
        return False


def copy_volume(src_conn, dst_conn, disk, src_host, dst_host):
    """Stream a volume from the source host to the same path on the destination (cold migration).
    On any failure the partial destination volume is deleted; the source is never touched."""
    dst_pool, dummy = ensure_dest_pool(dst_conn, disk.directory, dst_host)
    if volume_exists(dst_conn, disk.path):
        raise MigrationError('%s already exists on %s; refusing to overwrite it' % (disk.path, dst_host),
                             remedy='Remove or rename the file on the destination, or use shared storage.')
    with _PoolAt(src_conn, disk.directory, src_host) as src_pool:
        with translated('Finding %s on %s' % (disk.path, src_host)):
            src_vol = src_pool.storageVolLookupByName(os.path.basename(disk.path))
            _kind, capacity, _alloc = src_vol.info()
        xml = volume_xml(os.path.basename(disk.path), capacity, disk.format or 'raw')
        with translated('Copying %s from %s to %s' % (disk.path, src_host, dst_host)):
            dst_vol = dst_pool.createXML(xml, 0)
            try:
                copied = _stream(src_conn, dst_conn, src_vol, dst_vol)
            except Exception:
                dst_vol.delete(0)
                raise
    return {'path': disk.path, 'bytes': copied}


def _stream(src_conn, dst_conn, src_vol, dst_vol):
    down = src_conn.newStream(0)
    up = dst_conn.newStream(0)
    src_vol.download(down, 0, 0, 0)
    dst_vol.upload(up, 0, 0, 0)
    copied = 0
    try:
        while True:
            chunk = down.recv(STREAM_CHUNK)
            if not chunk:
                break
            up.send(chunk)
            copied += len(chunk)
        down.finish()
        up.finish()
    except Exception:
        for stream in (down, up):
            try:
                stream.abort()
            except Exception:  # already finished or broken: nothing more to undo
                pass
        raise
    return copied
