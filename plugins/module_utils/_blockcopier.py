# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Online block copy of one disk through libvirt: ``BlockCopier``, the glue of ``virt_blockcopy``.

Private module_utils file (leading underscore): its API may change without notice.

``BlockCopier`` runs one copy with the decisions of ``_blockjob``: blockCopy, poll until ready,
pivot (blockJobAbort with PIVOT), verify that the live and the persistent definitions use the new
source, or abort and verify that the guest still uses the old one.

What libvirt 9.0 requires (verified on the lab): blockCopy on a persistent domain fails with
"domain is not transient" unless VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB is given; after a pivot, libvirt
9.0 rewrites the persistent definition's disk source itself. Older versions may not: the copier
checks the inactive XML and, if it still names the old source, updates that disk in the persistent
definition (updateDeviceFlags with AFFECT_CONFIG, or defineXML of the edited inactive XML).
"""

from __future__ import annotations

import os
import stat
import time
from urllib.parse import urlsplit

from ansible_collections.kvmops.migration.plugins.module_utils._blockjob import (
    FAILED,
    MIB,
    READY,
    TIMED_OUT,
    BlockJobTracker,
    copy_destination_xml,
    disk_element_xml,
    disk_xml_with_source,
    domain_xml_with_disk_source,
    find_disk,
    needed_bytes,
    parse_disks,
    plan_copy,
)
from ansible_collections.kvmops.migration.plugins.module_utils._copytarget import (
    NETWORK,
    PATH,
    VOLUME,
    check_pool,
    default_format,
    expected_volume_path,
    parse_dest,
    source_key,
)
from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import read_domain
from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    InvalidInputError,
    KvmopsError,
    LibvirtCallError,
    OperationTimeoutError,
    is_libvirt_error,
    translate_libvirt_error,
    translated,
)
from ansible_collections.kvmops.migration.plugins.module_utils._storage import parse_pool_xml, refresh_pool, volume_format, volume_xml
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_DOMAIN_AFFECT_CONFIG,
    VIR_DOMAIN_BLOCK_COPY_BANDWIDTH,
    VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT,
    VIR_DOMAIN_BLOCK_JOB_SPEED_BANDWIDTH_BYTES,
    VIR_DOMAIN_BLOCK_JOB_TYPE_COPY,
    VIR_DOMAIN_XML_INACTIVE,
    VIR_STORAGE_VOL_BLOCK,
)

JOB_TYPE_NAMES = {0: 'unknown', 1: 'pull', 2: 'copy', 3: 'commit', 4: 'active commit', 5: 'backup'}


def _norm(path):
    return os.path.normpath(path) if path else path


def uri_is_local(uri):
    return not urlsplit(uri or 'qemu:///system').hostname


def local_dest_state(dest):
    """How this host sees ``dest``: exists, block device, directory exists, free bytes there."""
    state = {'exists': False, 'block': False, 'dir_exists': os.path.isdir(os.path.dirname(dest) or '/')}
    try:
        st = os.stat(dest)
        state['exists'] = True
        state['block'] = stat.S_ISBLK(st.st_mode)
    except OSError:
        pass
    free = None
    probe = dest if state['exists'] else os.path.dirname(dest)
    try:
        vfs = os.statvfs(probe)
        free = vfs.f_bavail * vfs.f_frsize
    except OSError:
        pass
    return state, free


class BlockCopier:
    """Runs one copy. ``dom`` is the libvirt domain; ``params`` the module parameters; ``target``
    the CopyTarget (parsed from ``params`` when not given); ``conn`` the connection that owns
    ``dom`` (its storage pools are where a pool/volume destination is looked up)."""

    def __init__(self, dom, params, check_mode=False, clock=time.monotonic, sleep=time.sleep, local=True,
                 warn=None, target=None, conn=None):
        self.dom = dom
        self.p = params
        self.check_mode = check_mode
        self.clock = clock
        self.sleep = sleep
        self.local = local
        self.warn = warn or (lambda msg: None)
        self.name = dom.name()
        self.tracker = None
        self.target = target or parse_dest(params.get('dest'), params.get('dest_pool'), params.get('dest_volume'))
        self._conn = conn
        self.pool = None
        self.vol_state = None
        self.pool_free = None

    @property
    def conn(self):
        if self._conn is None:
            self._conn = self.dom.connect()
        return self._conn

    # -- reads -------------------------------------------------------------------
    def live_disks(self):
        with translated("Reading the definition of domain '%s'" % self.name):
            return parse_disks(self.dom.XMLDesc(0))

    def inactive_disk(self, target):
        if not self.dom.isPersistent():
            return None
        with translated("Reading the persistent definition of domain '%s'" % self.name):
            xml = self.dom.XMLDesc(VIR_DOMAIN_XML_INACTIVE)
        for d in parse_disks(xml):
            if d['target'] == target:
                return d
        return None

    def job_info(self, target):
        with translated("Reading the block job of disk %s of '%s'" % (target, self.name)):
            return self.dom.blockJobInfo(target, 0) or {}

    def sample(self, target):
        info = self.job_info(target)
        disk = next((d for d in self.live_disks() if d['target'] == target), None)
        ready = disk['mirror']['ready'] if disk and disk['mirror'] else None
        return info, ready, disk

    def resolve_volume(self, target):
        """Look the pool and the volume up through libvirt (read only); the target with its path.

        Sets ``vol_state`` ({exists, type, capacity, format, pool_type}) and ``pool_free`` (the
        pool's available bytes). Unknown or inactive pool: InvalidInputError (``check_pool``).
        """
        with translated('Listing the storage pools of this host'):
            pools = dict((pool.name(), pool) for pool in self.conn.listAllStoragePools(0))
            active = dict((name, bool(pool.isActive())) for name, pool in pools.items())
        check_pool(target.pool, active)
        pool = self.pool = pools[target.pool]
        try:
            # Volumes created or deleted outside libvirt since the pool was last looked at.
            refresh_pool(pool)
        except Exception as exc:  # pylint: disable=broad-except
            if not is_libvirt_error(exc):
                raise
            self.warn('refreshing pool %s failed (%s); its volume list may be stale' % (target.pool, exc))
        with translated('Reading storage pool %s' % target.pool):
            facts = parse_pool_xml(pool.XMLDesc(0))
            self.pool_free = pool.info()[3]
            names = pool.listVolumes()
        state = {'exists': target.volume in names, 'type': None, 'capacity': None, 'format': None,
                 'pool_type': facts['type'], 'dir_exists': True}
        path = expected_volume_path(facts['type'], facts['target_path'], target.volume)
        if state['exists']:
            with translated('Reading volume %s of pool %s' % (target.volume, target.pool)):
                vol = pool.storageVolLookupByName(target.volume)
                path = vol.path()
                state['type'], state['capacity'], dummy_allocation = vol.info()
                state['format'] = volume_format(vol.XMLDesc(0))
        state['block'] = state['type'] == VIR_STORAGE_VOL_BLOCK
        self.vol_state = state
        return target.replace(path=path, is_block=state['block'])

    # -- main --------------------------------------------------------------------
    def run(self):
        p = self.p
        target = self.target
        with translated("Checking the state of domain '%s'" % self.name):
            active = bool(self.dom.isActive())
            persistent = bool(self.dom.isPersistent())
        if not active:
            raise InvalidInputError("domain '%s' is not running: an online block copy needs a running guest; "
                                    'copy the image offline (qemu-img convert) instead' % self.name)
        if target.kind == VOLUME:
            target = self.target = self.resolve_volume(target)
        dest = target.key
        disks = self.live_disks()
        # Re-run after a pivot: `disk` may name the old path, which no disk uses any more.
        try:
            disk = find_disk(disks, p['disk'])
        except InvalidInputError:
            at_dest = [d for d in disks if dest and d['path'] and source_key(d['path']) == dest]
            if not at_dest:
                raise
            disk = at_dest[0]
        result = {'changed': False, 'disk': disk['target'], 'old_source': disk['path'], 'new_source': dest,
                  'dest_kind': target.kind, 'pivoted': False, 'mirroring': False, 'state': None, 'samples': [],
                  'bytes_copied': 0, 'duration_s': None, 'throughput_mib_s': None, 'persistent_updated_by': None,
                  'source_removed': False, 'aborted': False}
        if target.kind == VOLUME:
            result['volume_created'] = False

        info = self.job_info(disk['target'])
        if p.get('abort'):
            return self._abort_existing(disk, info, result)

        # Already there: idempotent, but make sure the persistent definition agrees.
        if dest and disk['path'] and source_key(disk['path']) == dest and not info:
            result['old_source'] = None
            result['state'] = 'done'
            if persistent:
                here = target.replace(is_block=disk['type'] == 'block') if target.kind != NETWORK else target
                result.update(self._ensure_persistent(disk['target'], here, disk['format'], dry=self.check_mode))
            return result

        if info:
            mirror = disk['mirror']
            if (info.get('type') != VIR_DOMAIN_BLOCK_JOB_TYPE_COPY or not mirror or not dest
                    or source_key(mirror['path'] or '') != dest):
                raise InvalidInputError(
                    'disk %s already has a %s block job%s; it must end before another copy' % (
                        disk['target'], JOB_TYPE_NAMES.get(info.get('type'), 'unknown'),
                        (' (mirroring to %s)' % mirror['path']) if mirror else ''),
                    remedy='Wait for it, or abort it with abort: true and the same dest (or virsh blockjob --abort).')
            # Our own job from an earlier run (wait: false or pivot: false): adopt it.
            fmt = mirror['format'] or p.get('format') or default_format(target, disk['format'])
            plan = {'disk': disk['target'], 'old_source': disk['path'], 'new_source': dest, 'format': fmt,
                    'adopted': True, 'steps': ['adopt the running copy job', 'wait for ready',
                                               'pivot' if p.get('pivot', True) else 'leave mirroring']}
            result['plan'] = plan
            if self.check_mode:
                result['changed'] = True
                result['state'] = 'planned'
                return result
            if p.get('bandwidth') is not None:
                with translated('Setting the copy bandwidth of %s' % disk['target']):
                    self.dom.blockJobSetSpeed(disk['target'], int(p['bandwidth']) * MIB,
                                              VIR_DOMAIN_BLOCK_JOB_SPEED_BANDWIDTH_BYTES)
            return self._wait_and_finish(disk, target, fmt, persistent, created=None, result=result)

        fmt = p.get('format') or default_format(target, disk['format'])
        free = None
        if target.kind == PATH:
            if self.local:
                dest_state, free = local_dest_state(dest)
            else:
                dest_state = {'exists': False, 'block': dest.startswith('/dev/'), 'dir_exists': None}
                self.warn('uri is remote: dest existence and free space were not checked on that host')
            target = target.replace(is_block=dest_state.get('block'))
        elif target.kind == VOLUME:
            dest_state, free = self.vol_state, self.pool_free
        else:
            dest_state = {}
        with translated('Reading the size of disk %s' % disk['target']):
            capacity, allocation, _physical = self.dom.blockInfo(disk['target'])
        need = needed_bytes(capacity, allocation, p.get('shallow'), disk['has_backing'])
        plan = plan_copy(disk, target, fmt, dest_state, free, need, persistent, p, capacity=capacity)
        result['plan'] = plan
        result['format'] = fmt
        if self.check_mode:
            result['changed'] = True
            result['state'] = 'planned'
            return result

        params = {}
        if plan['bandwidth_bytes']:
            params[VIR_DOMAIN_BLOCK_COPY_BANDWIDTH] = plan['bandwidth_bytes']
        created = None
        if plan.get('create_volume'):
            created, target = self._create_volume(target, capacity, fmt)
            result.update(volume_created=True, new_source=target.key)
            dest = target.key
        elif target.kind == PATH and not dest_state.get('exists'):
            created = 'file'
        try:
            with translated('Starting the block copy of %s to %s' % (disk['target'], dest)):
                self.dom.blockCopy(disk['target'], copy_destination_xml(target, fmt), params, plan['flags'])
        except BaseException as exc:
            if created is not None and created != 'file':
                self._delete_volume(created, result)
                if isinstance(exc, KvmopsError):
                    exc.details.update(self._details(result))
            raise
        result['changed'] = True
        return self._wait_and_finish(disk, target, fmt, persistent, created=created, result=result)

    def _create_volume(self, target, capacity, fmt):
        with translated('Creating %s' % target.label):
            vol = self.pool.createXML(volume_xml(target.volume, capacity, fmt, allocation=0), 0)
            path = vol.path()
        return vol, target.replace(path=path)

    def _delete_volume(self, vol, result):
        """Delete a volume this run created (the copy into it failed or was cancelled)."""
        try:
            vol.delete(0)
            result['partial_dest_removed'] = True
            result['volume_created'] = False
        except Exception as exc:  # pylint: disable=broad-except
            if not is_libvirt_error(exc):
                raise
            self.warn('deleting volume %s created by this run failed: %s' % (self.target.volume, exc))

    def _abort_existing(self, disk, info, result):
        if not info:
            result['state'] = 'no job'
            return result
        result['changed'] = True
        result['state'] = 'aborted'
        if self.check_mode:
            result['state'] = 'planned'
            return result
        with translated('Aborting the block job of %s' % disk['target']):
            self.dom.blockJobAbort(disk['target'], 0)
        after = next((d for d in self.live_disks() if d['target'] == disk['target']), None)
        result['aborted'] = True
        result['new_source'] = after['path'] if after else None
        return result

    def _wait_and_finish(self, disk, target, fmt, persistent, created, result):
        p = self.p
        dest = target.key
        target_dev = disk['target']
        self.tracker = tracker = BlockJobTracker(self.clock(), float(p.get('timeout') or 600))
        if p.get('wait') is False:
            info, ready, dummy = self.sample(target_dev)
            tracker.feed(self.clock(), info, ready)
            result.update(state=tracker.state, mirroring=tracker.state != FAILED, samples=tracker.samples)
            return result
        longest = float(p.get('poll_interval') or 0.5)
        pivoted = False
        try:
            while True:
                info, ready, dummy = self.sample(target_dev)
                now = self.clock()
                state = tracker.feed(now, info, ready)
                if tracker.done:
                    break
                # Poll at a tenth of the time elapsed so far (50 ms .. poll_interval): a short copy is not
                # held up waiting for the next sample, a long one is not sampled needlessly often.
                self.sleep(min(longest, max(0.05, 0.1 * (now - tracker.started))))
            nbytes, seconds, rate = tracker.throughput(until=self.clock())
            result.update(state=state, samples=tracker.samples, bytes_copied=nbytes, duration_s=seconds,
                          throughput_mib_s=rate)
            if state == FAILED:
                raise LibvirtCallError(
                    'the copy of %s to %s stopped before it was ready (the job disappeared: an I/O error or '
                    'someone aborted it); the guest stays on %s' % (target_dev, dest, disk['path']),
                    remedy='Check the destination storage and the QEMU log of the guest, then retry.%s' % (
                        ' A network target must hold an image of exactly the disk\'s virtual size.'
                        if target.kind == NETWORK else ''),
                    details=self._details(result))
            if state == TIMED_OUT:
                raise OperationTimeoutError(
                    'the copy of %s to %s was not ready after %ss (%.1f%% done)' % (
                        target_dev, dest, p.get('timeout'), tracker.progress()),
                    remedy='Raise timeout, raise or remove the bandwidth limit, or copy when the guest writes less.',
                    details=self._details(result))
            if not p.get('pivot', True):
                result.update(mirroring=True, state=READY)
                return result
            with translated('Pivoting disk %s to %s' % (target_dev, dest)):
                self.dom.blockJobAbort(target_dev, VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)
            pivoted = True
        except BaseException as exc:
            if not pivoted:
                self._abort_after_failure(disk, target, created, result, exc)
            raise
        result['pivoted'] = True
        result['state'] = 'pivoted'
        live = next((d for d in self.live_disks() if d['target'] == target_dev), None)
        if not live or source_key(live['path'] or '') != dest:
            raise LibvirtCallError('pivot of %s reported success but the live definition names %s, not %s' % (
                target_dev, live and live['path'], dest), details=self._details(result))
        if persistent:
            here = target.replace(is_block=live['type'] == 'block') if target.kind != NETWORK else target
            result.update(self._ensure_persistent(target_dev, here, fmt))
        if p.get('remove_source'):
            result['source_removed'] = self._remove_source(disk, dest)
        return result

    def _details(self, result):
        keep = ('disk', 'old_source', 'new_source', 'state', 'samples', 'bytes_copied', 'duration_s',
                'throughput_mib_s', 'aborted', 'partial_dest_removed', 'volume_created')
        return dict((k, result[k]) for k in keep if k in result)

    def _abort_after_failure(self, disk, target, created, result, exc):
        """Cancel the copy (no pivot), check the guest still uses its old disk, drop what this run created.

        ``created``: None, ``'file'`` (libvirt created the file at a path target) or the virStorageVol
        this run created; a network target is never touched."""
        target_dev = disk['target']
        dest = target.key
        try:
            if self.job_info(target_dev):
                self.dom.blockJobAbort(target_dev, 0)
                result['aborted'] = True
        except Exception as abort_exc:  # pylint: disable=broad-except
            if not (is_libvirt_error(abort_exc) or isinstance(abort_exc, KvmopsError)):
                raise
            self.warn('aborting the block job of %s failed: %s' % (target_dev, abort_exc))
        try:
            live = next((d for d in self.live_disks() if d['target'] == target_dev), None)
        except KvmopsError:
            live = None
        if live is not None and source_key(live['path'] or '') == source_key(disk['path'] or '') and not live['mirror']:
            result['state_after_abort'] = 'on original disk %s' % disk['path']
            if created == 'file' and self.local and os.path.isfile(dest):
                try:
                    os.unlink(dest)
                    result['partial_dest_removed'] = True
                except OSError:
                    pass
            elif created is not None and created != 'file':
                self._delete_volume(created, result)
        else:
            result['state_after_abort'] = 'unknown: live disk is %s' % (live and live['path'])
        if isinstance(exc, KvmopsError):
            exc.details.update(self._details(result))
            exc.details['state_after_abort'] = result['state_after_abort']

    def _ensure_persistent(self, target_dev, target, fmt, dry=False):
        """Make the persistent definition's disk name ``target``; report who did it."""
        dest = target.key
        inactive = self.inactive_disk(target_dev)
        if inactive is None:
            raise LibvirtCallError('the persistent definition of %s has no disk %s' % (self.name, target_dev))
        if source_key(inactive['path'] or '') == dest:
            return {'persistent_updated_by': 'libvirt' if self.tracker is not None else None,
                    'persistent_source': inactive['path']}
        if dry:
            return {'changed': True, 'persistent_updated_by': None, 'persistent_source': inactive['path'],
                    'plan': {'steps': ['update the persistent definition of %s to %s' % (target_dev, dest)]}}
        with translated('Reading the persistent definition of %s' % self.name):
            domain_xml = self.dom.XMLDesc(VIR_DOMAIN_XML_INACTIVE)
        disk_xml = disk_xml_with_source(disk_element_xml(domain_xml, target_dev), target, fmt)
        how = 'module (updateDeviceFlags)'
        try:
            self.dom.updateDeviceFlags(disk_xml, VIR_DOMAIN_AFFECT_CONFIG)
        except Exception as exc:  # pylint: disable=broad-except
            if not is_libvirt_error(exc):
                raise
            how = 'module (defineXML)'
            with translated('Redefining %s with the new source of %s' % (self.name, target_dev)):
                self.dom.connect().defineXML(domain_xml_with_disk_source(domain_xml, target_dev, target, fmt))
        after = self.inactive_disk(target_dev)
        if after is None or source_key(after['path'] or '') != dest:
            raise LibvirtCallError('the persistent definition of %s still names %s for %s after the update' % (
                self.name, after and after['path'], target_dev))
        return {'changed': True, 'persistent_updated_by': how, 'persistent_source': after['path']}

    def _remove_source(self, disk, dest):
        """Delete the old image, only if it is a local file and nothing on this host uses it any more."""
        old = disk['path']
        if not old or source_key(old) == dest or not self.local:
            return False
        if disk['type'] == 'network':
            self.warn('remove_source: the old source %s is a network disk; it is never deleted' % old)
            return False
        if not os.path.isfile(old):
            self.warn('remove_source: %s is not a regular file here; left alone' % old)
            return False
        conn = self.dom.connect()
        try:
            for other in conn.listAllDomains(0):
                try:
                    xmls = [other.XMLDesc(0)]
                    if other.isPersistent():
                        xmls.append(other.XMLDesc(VIR_DOMAIN_XML_INACTIVE))
                except Exception as exc:  # pylint: disable=broad-except
                    if is_libvirt_error(exc):
                        continue
                    raise
                for xml in xmls:
                    if _norm(old) in (_norm(p) for p in read_domain(xml).source_paths()):
                        self.warn('remove_source: %s is still used by domain %s; left alone' % (old, other.name()))
                        return False
        except Exception as exc:  # pylint: disable=broad-except
            if not is_libvirt_error(exc):
                raise
            raise translate_libvirt_error(exc, 'Listing domains before removing %s' % old)
        os.unlink(old)
        return True
