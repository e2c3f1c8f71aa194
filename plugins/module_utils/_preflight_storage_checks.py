# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight's storage checks: is each disk shared (proven), or can it be copied, and is its cache mode safe.

Private module_utils file (leading underscore): its API may change without notice.

Pure functions, like ``_preflight_checks``; they follow what libvirt 9.0 itself decides before a
migration (qemuMigrationSrcIsSafe): which filesystems it calls shared, when the cache mode matters.
"""

from __future__ import annotations

import os

from ansible_collections.kvmops.migration.plugins.module_utils._preflight_spec import (
    FAIL,
    OK,
    WARN,
    check,
    format_version,
    mib,
)

# Filesystem types libvirt 9.0 treats as shared (virFileIsSharedFS), as /proc/self/mountinfo
# names them; FUSE filesystems appear as fuse.<subtype>.
LIBVIRT_SHARED_FS = frozenset((
    'nfs', 'nfs4', 'gfs2', 'gfs', 'ocfs2', 'afs', 'smb', 'smb3', 'smbfs', 'cifs', 'ceph',
    'fuse.ceph', 'fuse.ceph-fuse', 'gpfs', 'fuse.quobyte', 'acfs', 'fuse.glusterfs', 'beegfs',
))

# Coherent cluster filesystems: libvirt skips the cache-mode rule for them (virFileIsClusterFS).
LIBVIRT_CLUSTER_FS = frozenset(('gfs2', 'gfs', 'ocfs2', 'ceph', 'fuse.ceph', 'fuse.ceph-fuse'))
SAFE_CACHE_MODES = ('none', 'directsync')
# QEMU >= 4.0 drops the page cache of image files on incoming migration; libvirt then
# accepts any cache mode (QEMU_CAPS_MIGRATION_FILE_DROP_CACHE).
QEMU_DROP_CACHE_VERSION = 4000000


def _cache_problem(disk, fstype, src_qemu_version):
    """None, or why libvirt would call this disk's cache mode unsafe (qemuMigrationSrcIsSafe)."""
    if disk['shareable'] or disk['readonly'] or disk['cache'] in SAFE_CACHE_MODES:
        return None
    if fstype in LIBVIRT_CLUSTER_FS:
        return None
    if src_qemu_version is not None and src_qemu_version >= QEMU_DROP_CACHE_VERSION:
        return None
    return ("cache='%s': libvirt refuses the migration as unsafe (QEMU %s cannot drop the destination's page "
            'cache)' % (disk['cache'], format_version(src_qemu_version)))


def check_disk(guest, disk, facts):
    """One verdict per disk.

    ``facts`` (all optional): ``fs`` (mount point, fstype) on the source; ``probe``
    {method, written, write_error, seen, error}; ``dest_file`` {exists, size, block, regular}
    as the destination sees the disk's path; ``dest_pool`` {name, active, available} (the
    destination pool whose target is the disk's directory, or {error}); ``need_bytes``
    (to copy); ``src_qemu_version``; ``resolved_path`` for volume disks.
    """
    name = 'storage.disk'
    label = '%s (%s)' % (disk['target'], disk['path'] or facts.get('resolved_path') or
                         ('%s/%s' % (disk['pool'], disk['volume']) if disk['pool'] else 'no source'))
    if disk['type'] == 'nvme':
        return check(name, FAIL, '%s is an NVMe device assigned to the guest: libvirt calls that unsafe' % label,
                     remedy='Move the disk to shared storage (virt_blockcopy) or detach it before migrating.',
                     guest=guest)
    if not disk['path'] and not facts.get('resolved_path'):
        return check(name, OK, '%s: %s without a medium, nothing to share' % (disk['target'], disk['device']),
                     guest=guest)
    if disk['type'] == 'network':
        return check(name, OK, '%s: network disk (%s), QEMU on both hosts opens it from the storage server' % (
            label, disk['protocol']), guest=guest)
    fs = facts.get('fs') or (None, None)
    fstype = fs[1]
    cache_problem = _cache_problem(disk, fstype, facts.get('src_qemu_version'))
    probe = facts.get('probe') or {}
    dest_file = facts.get('dest_file')
    if disk['type'] == 'block':
        if dest_file is None:
            return check(name, WARN, '%s: block device; the destination could not be asked whether it has it' % label,
                         remedy='Make sure the destination sees the same LUN at the same path (multipath/by-id names).',
                         guest=guest)
        if not dest_file.get('exists') or not dest_file.get('block'):
            return check(name, FAIL, '%s: the destination has no block device at this path' % label,
                         remedy='Present the same LUN to the destination at the same path, or copy the disk '
                                '(copy_storage / virt_blockcopy to shared storage).', guest=guest)
        if cache_problem:
            return check(name, FAIL, '%s: %s' % (label, cache_problem), guest=guest,
                         remedy="Set cache='none' (or directsync) on the disk.")
        return check(name, WARN, '%s: block device present on the destination (size %s MiB); a probe cannot '
                     'prove it is the same LUN without writing to it' % (label, mib(dest_file.get('size') or 0)),
                     remedy='Confirm both hosts use the same LUN (compare WWNs / by-id names).', guest=guest)
    seen = probe.get('seen')
    if seen:
        if fstype and fstype not in LIBVIRT_SHARED_FS:
            return check(name, FAIL, '%s: both hosts see the same files in %s, but it is on %s, which libvirt does not '
                         'recognise as shared: it refuses the live migration as unsafe' % (label, fs[0], fstype),
                         remedy=('Keep images on a filesystem libvirt treats as shared (NFS, GlusterFS, CephFS, GFS2, '
                                 'OCFS2, ...), or migrate with copy_storage, or (only if you are sure the storage is '
                                 'coherent) migrate with the unsafe flag.'), guest=guest)
        if cache_problem:
            return check(name, FAIL, '%s: on shared storage, but %s' % (label, cache_problem), guest=guest,
                         remedy="Set cache='none' (or directsync) on the disk, or upgrade QEMU.")
        return check(name, OK, '%s: shared storage (%s at %s), probe file written here was read on the destination '
                     'via %s' % (label, fstype or 'unknown fs', fs[0], probe.get('method')), guest=guest)
    if seen is None:
        why = probe.get('write_error') or probe.get('error') or 'no probe method available'
        return check(name, WARN, '%s: could not prove the destination shares this storage: %s' % (label, why),
                     remedy=('Make the probe possible (SSH to the destination, or a storage pool on the destination '
                             'whose target is the disk directory), or verify the mount by hand.'), guest=guest)
    # Not shared: the destination does not see what this host sees in that directory.
    if disk['readonly']:
        if dest_file and dest_file.get('exists'):
            return check(name, OK, '%s: read-only, not shared, but the destination has its own file at this path' % label,
                         guest=guest)
        return check(name, FAIL, '%s: read-only and not shared, and the destination has no file at this path' % label,
                     remedy='Copy the image to the same path on the destination, or detach/eject it.', guest=guest)
    if dest_file and dest_file.get('exists'):
        return check(name, FAIL, '%s: not shared, and the destination already has a different file at this path '
                     '(%s MiB): copy_storage would write over it' % (label, mib(dest_file.get('size') or 0)),
                     remedy='Find out what that file is on the destination; remove or rename it if stale, or copy '
                            'the disk to another path first (virt_blockcopy).', guest=guest)
    need = facts.get('need_bytes') or 0
    pool = facts.get('dest_pool')
    directory = os.path.dirname(facts.get('resolved_path') or disk['path'])
    if not pool or pool.get('error'):
        return check(name, FAIL, '%s: local storage (%s) not shared with the destination, and the destination has no '
                     'storage pool at %s to copy it into (libvirt: "Storage pool not found")' % (
                         label, fstype or 'unknown fs', directory),
                     remedy=('Define and start a directory pool with target %s on the destination (virsh pool-define-as '
                             'NAME dir --target %s; pool-start; pool-autostart, or kvmops.migration.virt_storage_pool), '
                             'then migrate with copy_storage; or move the disk to shared storage first with '
                             'virt_blockcopy.' % (directory, directory)),
                     guest=guest)
    if not pool.get('active'):
        return check(name, FAIL, '%s: not shared; destination pool %s at %s is inactive' % (label, pool.get('name'), directory),
                     remedy='Start the pool on the destination (virsh pool-start %s) before a copy_storage migration.'
                     % pool.get('name'), guest=guest)
    available = pool.get('available')
    if available is not None and available < need:
        return check(name, FAIL, '%s: not shared, needs %s MiB copied but destination pool %s has %s MiB free' % (
            label, mib(need), pool.get('name'), mib(available)),
            remedy='Free space in pool %s on the destination, or choose another destination.' % pool.get('name'),
            guest=guest)
    return check(name, WARN, '%s: local storage (%s), not shared with the destination: the migration needs '
                 'copy_storage (%s MiB into pool %s, %s MiB free)' % (
                     label, fstype or 'unknown fs', mib(need), pool.get('name'), mib(available or 0)),
                 remedy=('Migrate with copy_storage: all (VIR_MIGRATE_NON_SHARED_DISK; copies the disk over NBD in '
                         'the migration port range), or move the disk to shared storage first with virt_blockcopy.'),
                 guest=guest)


def check_copy_space(guest, directory, need_bytes, available_bytes):
    """Room on the destination for the disks a migration copies into ``directory``."""
    name = 'storage.copy_space'
    if available_bytes is None:
        return check(name, WARN, 'free space in %s on the destination unknown (no storage pool can be opened there); '
                     '%s MiB to copy' % (directory, mib(need_bytes)), guest=guest,
                     remedy='Check the free space by hand, or define a directory pool with that target on the destination.')
    detail = '%s MiB to copy into %s, %s MiB free there on the destination' % (
        mib(need_bytes), directory, mib(available_bytes))
    if available_bytes >= need_bytes:
        return check(name, OK, detail, guest=guest)
    return check(name, FAIL, detail.replace(', %s MiB free' % mib(available_bytes),
                                            ' but only %s MiB free' % mib(available_bytes)), guest=guest,
                 remedy='Free space in %s on the destination (or grow that filesystem), choose another destination, '
                        'or copy only some disks (migrate_disks).' % directory)
