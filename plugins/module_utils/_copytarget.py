# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where a block copy goes: a path, a volume of a libvirt storage pool, or a network target.

Private module_utils file (leading underscore): its API may change without notice.

Everything here is pure (no libvirt, no file system) and unit-tested on its own:

- ``parse_dest(dest, dest_pool, dest_volume)`` turns the module's options into a ``CopyTarget``;
- ``source_key`` gives one comparable string per disk source given as text (a normalised path,
  or ``protocol://host:port/name`` as ``_domain_xml`` reads network sources), so "is the disk
  already there?" is a string comparison for every kind;
- ``set_disk_source`` / ``destination_disk_xml`` write a target into a ``<disk>`` element;
- ``check_pool``, ``plan_volume`` and friends are the verdicts on a pool/volume destination,
  from facts the glue read through libvirt (``_blockcopier.BlockCopier``).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from urllib.parse import unquote, urlsplit

from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError
from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import DEFAULT_PORTS, network_url
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_STORAGE_VOL_BLOCK,
    VIR_STORAGE_VOL_FILE,
)

PATH, VOLUME, NETWORK = 'path', 'volume', 'network'

# Network protocols a copy may go to, with their default ports (QEMU's and libvirt's defaults).
NETWORK_PORTS = dict((protocol, DEFAULT_PORTS[protocol]) for protocol in ('nbd', 'gluster'))

# Pool types whose volumes are files under the pool's target path: the module creates volumes there.
FILE_POOL_TYPES = ('dir', 'fs', 'netfs')
# virStorageVolType names, by value.
VOL_TYPE_NAMES = {0: 'file', 1: 'block', 2: 'dir', 3: 'network', 4: 'netdir', 5: 'ploop'}
MIB = 1024 * 1024


class CopyTarget:
    """One copy destination.

    ``kind`` is PATH, VOLUME or NETWORK. PATH and VOLUME have a local ``path`` (for a volume
    once it is resolved through its pool; None before) and ``is_block``; VOLUME also ``pool``
    and ``volume``; NETWORK has ``protocol``, ``host``, ``port`` and ``name`` (the NBD export,
    or ``volume/image`` for gluster).
    """

    FIELDS = ('kind', 'path', 'is_block', 'pool', 'volume', 'protocol', 'host', 'port', 'name')

    def __init__(self, kind, path=None, is_block=False, pool=None, volume=None, protocol=None, host=None,
                 port=None, name=None):
        self.kind = kind
        self.path = path
        self.is_block = bool(is_block)
        self.pool = pool
        self.volume = volume
        self.protocol = protocol
        self.host = host
        self.port = port
        self.name = name

    def replace(self, **changes):
        values = dict((f, getattr(self, f)) for f in self.FIELDS)
        values.update(changes)
        return CopyTarget(**values)

    @property
    def is_network(self):
        return self.kind == NETWORK

    @property
    def key(self):
        """What the disk's source is once it is on this target (see ``source_key``); None for an
        unresolved volume."""
        if self.kind == NETWORK:
            return network_url(self.protocol, self.host, self.port, self.name)
        return os.path.normpath(self.path) if self.path else None

    @property
    def label(self):
        """How messages name the target."""
        if self.kind == VOLUME:
            return 'volume %s in pool %s%s' % (self.volume, self.pool, ' (%s)' % self.path if self.path else '')
        return 'dest %s' % self.key

    def __eq__(self, other):
        return isinstance(other, CopyTarget) and all(getattr(self, f) == getattr(other, f) for f in self.FIELDS)

    def __ne__(self, other):
        return not self == other

    def __repr__(self):
        shown = [f for f in self.FIELDS if getattr(self, f) not in (None, False)]
        return 'CopyTarget(%s)' % ', '.join('%s=%r' % (f, getattr(self, f)) for f in shown)


def is_url(value):
    return '://' in (value or '')


def expand_path(value):
    """What Ansible's ``type: path`` did to ``dest`` before URLs were accepted: ~ and $VARS."""
    return os.path.expanduser(os.path.expandvars(value))


def parse_dest(dest=None, dest_pool=None, dest_volume=None):
    """The module's destination options as a CopyTarget. InvalidInputError when they make no sense."""
    if dest_pool is not None or dest_volume is not None:
        if dest is not None:
            raise InvalidInputError('dest and dest_pool/dest_volume are mutually exclusive')
        if not dest_pool or not dest_volume:
            raise InvalidInputError('dest_pool and dest_volume go together: the pool and the volume name in it')
        if '/' in dest_volume or dest_volume in ('.', '..') or not dest_volume.strip():
            raise InvalidInputError(
                'dest_volume must be the name of a volume in pool %s, not a path: got %r' % (dest_pool, dest_volume),
                remedy='Pass only the file name (e.g. web1.qcow2), or leave dest_pool out and give the path in dest.')
        return CopyTarget(VOLUME, pool=dest_pool, volume=dest_volume)
    if not dest:
        raise InvalidInputError('dest (a path or a network URL) or dest_pool with dest_volume is required')
    if is_url(dest):
        return parse_network_url(dest)
    return CopyTarget(PATH, path=os.path.normpath(expand_path(dest)))


def parse_network_url(url):
    """``nbd://HOST[:PORT]/EXPORT`` or ``gluster://HOST[:PORT]/VOLUME/IMAGE`` as a NETWORK CopyTarget."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    supported = ', '.join('%s://' % p for p in sorted(NETWORK_PORTS))
    if scheme not in NETWORK_PORTS:
        raise InvalidInputError(
            'network dest %s: protocol %r is not supported; supported: %s' % (url, parts.scheme, supported),
            remedy='Use nbd://HOST:PORT/EXPORT or gluster://HOST/VOLUME/IMAGE, or a path on this host.')
    if parts.username is not None or parts.password is not None:
        raise InvalidInputError('network dest %s: credentials in the URL are not supported' % _redact(url))
    if parts.query or parts.fragment:
        raise InvalidInputError('network dest %s: URL options (?...#...) are not supported' % url,
                                remedy='Give only %s://HOST[:PORT]/NAME.' % scheme)
    try:
        port = parts.port
    except ValueError:
        raise InvalidInputError('network dest %s: the port is not a number from 1 to 65535' % url) from None
    host = parts.hostname
    if not host:
        raise InvalidInputError('network dest %s names no host' % url,
                                remedy='Use %s://HOST[:PORT]/NAME.' % scheme)
    name = unquote(parts.path.lstrip('/'))
    if scheme == 'gluster':
        volume, dummy_sep, image = name.partition('/')
        if not volume or not image.strip('/'):
            raise InvalidInputError('network dest %s: a gluster URL is gluster://HOST[:PORT]/VOLUME/IMAGE' % url)
    elif not name:
        raise InvalidInputError('network dest %s names no NBD export' % url,
                                remedy='Use nbd://HOST[:PORT]/EXPORT (the name given to the NBD server, '
                                       'e.g. qemu-nbd -x EXPORT).')
    return CopyTarget(NETWORK, protocol=scheme, host=host.lower(), port=port or NETWORK_PORTS[scheme], name=name)


def _redact(url):
    parts = urlsplit(url)
    return '%s://***@%s%s' % (parts.scheme, parts.hostname or '', parts.path)


def source_key(value):
    """A comparable form of a source given as text: a normalised path, or a canonical URL."""
    if not value:
        return value
    if is_url(value):
        parts = urlsplit(value)
        scheme = parts.scheme.lower()
        try:
            port = parts.port
        except ValueError:
            return value
        return network_url(scheme, parts.hostname, port or DEFAULT_PORTS.get(scheme), unquote(parts.path.lstrip('/')))
    return os.path.normpath(value)


def _source_element(target):
    if target.kind == NETWORK:
        src = ET.Element('source', {'protocol': target.protocol, 'name': target.name})
        ET.SubElement(src, 'host', {'name': target.host, 'port': str(target.port)})
        return src
    return ET.Element('source', {'dev' if target.is_block else 'file': target.path})


def disk_type(target):
    if target.kind == NETWORK:
        return 'network'
    return 'block' if target.is_block else 'file'


def destination_disk_xml(target, fmt):
    """The ``<disk>`` XML blockCopy takes as its destination."""
    disk = ET.Element('disk', {'type': disk_type(target)})
    disk.append(_source_element(target))
    ET.SubElement(disk, 'driver', {'type': fmt})
    return ET.tostring(disk, encoding='unicode')


def set_disk_source(disk, target, fmt=None):
    """Point a ``<disk>`` element at ``target`` (in place): type, ``<source>``, driver type; the
    old backing chain and mirror go (libvirt re-detects the chain)."""
    disk.set('type', disk_type(target))
    for tag in ('source', 'backingStore', 'mirror'):
        for old in disk.findall(tag):
            disk.remove(old)
    # <source> goes right after <driver> (order does not matter to libvirt, but keep it tidy).
    drv = disk.find('driver')
    index = list(disk).index(drv) + 1 if drv is not None else 0
    disk.insert(index, _source_element(target))
    if fmt and drv is not None:
        drv.set('type', fmt)
    return disk


def default_format(target, source_format):
    """The copy's format when none is given: raw on a network target (an NBD export or a gluster
    image holds the disk's bytes), else the source's."""
    return 'raw' if target.kind == NETWORK else source_format


# ---------------------------------------------------------------------------
# Pool / volume destinations
# ---------------------------------------------------------------------------

def check_pool(name, pools):
    """``pools``: {name: active} of every pool on the host. InvalidInputError unless ``name`` is active."""
    if name not in pools:
        raise InvalidInputError(
            'storage pool %r does not exist on this host (its pools: %s)' % (name, ', '.join(sorted(pools)) or 'none'),
            remedy='Name an existing pool in dest_pool, or define and start it first '
                   '(kvmops.migration.virt_storage_pool).',
            details={'pools': sorted(pools)})
    if not pools[name]:
        raise InvalidInputError(
            'storage pool %r is not active: its volumes cannot be listed or created' % name,
            remedy='Start it (virsh pool-start %s, or kvmops.migration.virt_storage_pool with active: true), '
                   'then run again.' % name)


def expected_volume_path(pool_type, target_path, volume):
    """Where a new volume of a file pool will be; None for other pool types (known only once created)."""
    if pool_type in FILE_POOL_TYPES and target_path:
        return os.path.normpath(os.path.join(target_path, volume))
    return None


def plan_volume(target, vol, fmt, capacity, need, free_bytes, options):
    """Verdict on a pool/volume destination; returns whether the module must create the volume.

    ``vol``: what libvirt says about it: {exists, type (virStorageVolType), capacity, format,
    pool_type}. ``capacity``: the disk's virtual size; ``need``: bytes the copy needs free;
    ``free_bytes``: the pool's available bytes.
    """
    reuse = options.get('reuse_external')
    if vol.get('exists'):
        if not reuse:
            raise InvalidInputError(
                '%s already exists; refusing to overwrite it' % target.label,
                remedy='Delete it if it is stale (virsh vol-delete --pool %s %s), choose another dest_volume, or '
                       'pass reuse_external: true to copy into it (same size as the disk, format %s).' % (
                           target.pool, target.volume, fmt))
        if vol.get('type') not in (VIR_STORAGE_VOL_FILE, VIR_STORAGE_VOL_BLOCK):
            raise InvalidInputError('%s is a %s volume; the copy needs a file or block volume' % (
                target.label, VOL_TYPE_NAMES.get(vol.get('type'), 'unknown')),
                remedy='Use a pool of files or block devices, or give a network target as dest '
                       '(nbd://HOST:PORT/EXPORT).')
        if vol.get('capacity') is not None and capacity and vol['capacity'] != capacity:
            raise InvalidInputError(
                '%s has %d bytes, the disk %d: QEMU copies only into an image of the same size' % (
                    target.label, vol['capacity'], capacity),
                remedy='Resize the volume (virsh vol-resize) or create it with the disk size.')
        if vol.get('format') and vol['format'] != fmt and vol.get('type') == VIR_STORAGE_VOL_FILE:
            raise InvalidInputError('%s is a %s image, the copy is %s' % (target.label, vol['format'], fmt),
                                    remedy='Pass format: %s, or use a volume of format %s.' % (vol['format'], fmt))
        return False
    if reuse:
        raise InvalidInputError('reuse_external is set but %s does not exist' % target.label,
                                remedy='Create the volume first (virsh vol-create-as) or drop reuse_external.')
    if vol.get('pool_type') not in FILE_POOL_TYPES:
        raise InvalidInputError(
            'the module creates volumes only in pools of type %s; pool %s is %s' % (
                ', '.join(FILE_POOL_TYPES), target.pool, vol.get('pool_type')),
            remedy='Create the volume yourself (same size as the disk) and pass reuse_external: true.')
    if options.get('shallow'):
        raise InvalidInputError(
            'a shallow copy into a new volume needs the source backing chain in it; the module does not create that',
            remedy='Create the volume with its backing file (qemu-img create -b) and pass reuse_external: true, '
                   'or drop shallow.')
    if free_bytes is not None and free_bytes < need:
        raise InvalidInputError('not enough space in pool %s for %s: need %.1f MiB, %.1f MiB available' % (
            target.pool, target.volume, need / float(MIB), free_bytes / float(MIB)),
            remedy='Free space in the pool or copy to another pool.',
            details={'needed_bytes': need, 'free_bytes': free_bytes})
    return True


def check_network(target, fmt, options):
    """Verdict on a network destination (nothing on it can be checked from here)."""
    if options.get('shallow'):
        raise InvalidInputError('shallow copies to a network target are not supported (%s)' % target.key,
                                remedy='Drop shallow: the whole chain is copied into the target.')
    if not options.get('reuse_external'):
        raise InvalidInputError(
            'a network dest (%s) is an existing image that the copy overwrites: pass reuse_external: true' % target.key,
            remedy='The module never creates or formats anything on a network target. Export an image of exactly '
                   "the disk's virtual size (format %s) there, then pass reuse_external: true." % fmt)
