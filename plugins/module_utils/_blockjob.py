# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Online block copy of one disk: the decisions and the block-job state machine, pure.

Private module_utils file (leading underscore): its API may change without notice.

Unit-tested without libvirt: ``parse_disks``, ``find_disk``, ``needed_bytes``, ``plan_copy``,
``disk_xml_with_source``, ``classify`` and ``BlockJobTracker`` (samples of ``blockJobInfo`` plus
the live XML's ``<mirror ready=...>`` -> waiting | mirroring | ready | failed | timed out, and the
throughput). Where the copy goes (a path, a pool volume, a network target) and the verdicts on it
are in ``_copytarget``; ``_blockcopier.BlockCopier`` runs a copy through libvirt with them.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from ansible_collections.kvmops.migration.plugins.module_utils._copytarget import (
    NETWORK,
    PATH,
    VOLUME,
    CopyTarget,
    check_network,
    destination_disk_xml,
    plan_volume,
    set_disk_source,
    source_key,
)
from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import read_domain
from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_DOMAIN_BLOCK_COPY_REUSE_EXT,
    VIR_DOMAIN_BLOCK_COPY_SHALLOW,
    VIR_DOMAIN_BLOCK_COPY_SYNCHRONOUS_WRITES,
    VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB,
)

WAITING, MIRRORING, READY, FAILED, TIMED_OUT = 'waiting', 'mirroring', 'ready', 'failed', 'timed out'
STATES = (WAITING, MIRRORING, READY, FAILED, TIMED_OUT)
SUPPORTED_FORMATS = ('raw', 'qcow2')
MIB = 1024 * 1024
SPACE_SLACK = MIB  # qcow2 header/metadata headroom on top of the data to copy


# ---------------------------------------------------------------------------
# Domain XML
# ---------------------------------------------------------------------------

def parse_disks(xml):
    """The disks of a domain XML as plain data (``_domain_xml.Disk.as_dict``): target, type, device, source
    path (a network disk's canonical URL), format, read-only, backing presence, mirror."""
    return [disk.as_dict() for disk in read_domain(xml).disks]


def find_disk(disks, disk):
    """The disk whose target dev or source (path, or URL of a network disk) is ``disk``; InvalidInputError if none."""
    for d in disks:
        if d['target'] == disk:
            return d
    for d in disks:
        if d['path'] and source_key(d['path']) == source_key(disk):
            return d
    known = ', '.join('%s (%s)' % (d['target'], d['path'] or 'no source') for d in disks) or 'none'
    raise InvalidInputError('the guest has no disk %r (by target dev or source path); its disks: %s' % (disk, known),
                            details={'disks': [d['target'] for d in disks]})


def as_target(dest, is_block=False):
    """``dest`` as a CopyTarget: a CopyTarget stays as it is, a string is a path."""
    if isinstance(dest, CopyTarget):
        return dest
    return CopyTarget(PATH, path=dest, is_block=is_block)


def disk_xml_with_source(disk_xml, dest, fmt=None, is_block=False):
    """The ``<disk>`` XML with its source replaced by ``dest`` (a path, or a CopyTarget), and driver
    type by ``fmt``; the backing chain below the old top is dropped for libvirt to re-detect."""
    disk = ET.fromstring(disk_xml)
    set_disk_source(disk, as_target(dest, is_block), fmt)
    return ET.tostring(disk, encoding='unicode')


def disk_element_xml(domain_xml, target):
    element = read_domain(domain_xml).disk_element(target)
    return ET.tostring(element, encoding='unicode') if element is not None else None


def domain_xml_with_disk_source(domain_xml, target, path, fmt=None, is_block=False):
    """The whole (inactive) domain XML with one disk's source replaced by ``path`` (a path, or a
    CopyTarget): the fallback for defineXML."""
    domain = read_domain(domain_xml)
    disk = domain.disk_element(target)
    if disk is None:
        raise InvalidInputError('no disk %s in the domain definition' % target)
    set_disk_source(disk, as_target(path, is_block), fmt)
    return ET.tostring(domain.root, encoding='unicode')


def copy_destination_xml(dest, fmt, is_block=False):
    """blockCopy's destination ``<disk>`` for ``dest`` (a path, or a CopyTarget)."""
    return destination_disk_xml(as_target(dest, is_block), fmt)


# ---------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------

def needed_bytes(capacity, allocation, shallow, has_backing):
    """Bytes the destination must have free: the allocated data of the top image, or, for a
    full copy of a disk with a backing chain, the whole virtual size (the chain is flattened)."""
    if has_backing and not shallow:
        return capacity + SPACE_SLACK
    return allocation + SPACE_SLACK


def copy_flags(shallow=False, reuse_external=False, transient_job=False, synchronous_writes=False):
    flags = 0
    if shallow:
        flags |= VIR_DOMAIN_BLOCK_COPY_SHALLOW
    if reuse_external:
        flags |= VIR_DOMAIN_BLOCK_COPY_REUSE_EXT
    if transient_job:
        flags |= VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
    if synchronous_writes:
        flags |= VIR_DOMAIN_BLOCK_COPY_SYNCHRONOUS_WRITES
    return flags


def plan_copy(disk, dest, fmt, dest_state, free_bytes, need, persistent, options, capacity=None):
    """Validate a copy and describe it. Raises InvalidInputError (nothing touched) when it cannot run.

    ``dest``: a path, or a CopyTarget (path, pool volume, network target). ``dest_state``: for a
    path {exists, block, dir_exists} as this host sees it; for a volume what libvirt says about it
    (``_copytarget.plan_volume``); unused for a network target. ``free_bytes``: free space where
    the copy goes (None: unknown); ``capacity``: the disk's virtual size; ``options``: shallow,
    reuse_external, synchronous_writes, bandwidth (MiB/s), pivot, remove_source.
    """
    target = as_target(dest)
    if disk['type'] not in ('file', 'block', 'network'):
        raise InvalidInputError('disk %s is a %s disk; blockcopy here copies file, block or network disks only' % (
            disk['target'], disk['type']))
    if disk['device'] not in ('disk', 'lun'):
        raise InvalidInputError('disk %s is a %s, not a disk' % (disk['target'], disk['device']))
    if fmt not in SUPPORTED_FORMATS:
        raise InvalidInputError('unsupported destination format %r: use one of %s (the source is %s)' % (
            fmt, ', '.join(SUPPORTED_FORMATS), disk['format']),
            remedy='Pass format: raw or format: qcow2.')
    if options.get('shallow') and fmt != 'qcow2':
        raise InvalidInputError('shallow copies keep the backing chain and need format qcow2, got %s' % fmt)
    create_volume = False
    reuse = bool(options.get('reuse_external'))
    if target.kind == NETWORK:
        check_network(target, fmt, options)
    elif target.kind == VOLUME:
        create_volume = plan_volume(target, dest_state, fmt, capacity, need, free_bytes, options)
        # The module creates the volume, then libvirt copies into it as into any existing image.
        reuse = True
    else:
        _check_path(target.key, dest_state, free_bytes, need, options)
    dest = target.key or target.label
    transient_job = bool(persistent)
    flags = copy_flags(options.get('shallow'), reuse, transient_job, options.get('synchronous_writes'))
    steps = []
    if create_volume:
        steps.append('create %s (%s, %d bytes)' % (target.label, fmt, capacity or 0))
    steps.append('blockCopy %s -> %s (%s%s%s)' % (disk['target'], dest, fmt,
                                                  ', shallow' if options.get('shallow') else '',
                                                  ', reuse external' if reuse else ''))
    steps.append('wait until the mirror is ready (cur == end and ready)')
    if options.get('pivot', True):
        steps.append('pivot to %s and verify the live definition' % dest)
        if persistent:
            steps.append('verify the persistent definition names %s (update it if libvirt did not)' % dest)
        if options.get('remove_source'):
            steps.append('remove %s after the verified pivot' % disk['path'])
    else:
        steps.append('leave the job mirroring (no pivot)')
    plan = {
        'disk': disk['target'],
        'old_source': disk['path'],
        'new_source': dest,
        'dest_kind': target.kind,
        'format': fmt,
        'flags': flags,
        'transient_job': transient_job,
        'needed_bytes': need,
        'free_bytes': free_bytes,
        'bandwidth_bytes': int(options['bandwidth']) * MIB if options.get('bandwidth') else 0,
        'steps': steps,
    }
    if target.kind == VOLUME:
        plan.update(pool=target.pool, volume=target.volume, create_volume=create_volume)
    return plan


def _check_path(dest, dest_state, free_bytes, need, options):
    if not os.path.isabs(dest):
        raise InvalidInputError('dest must be an absolute path, got %r' % dest,
                                remedy='Give an absolute path, a network URL (nbd://HOST:PORT/EXPORT), '
                                       'or dest_pool with dest_volume for a volume of a storage pool.')
    if dest_state.get('exists') and not options.get('reuse_external'):
        raise InvalidInputError(
            'dest %s already exists; refusing to overwrite it' % dest,
            remedy='Remove it if it is stale, choose another path, or pass reuse_external: true to copy into it '
                   '(it must be an image of the right format and at least the disk size).')
    if options.get('reuse_external') and not dest_state.get('exists'):
        raise InvalidInputError('reuse_external is set but dest %s does not exist' % dest,
                                remedy='Pre-create the image (qemu-img create) or drop reuse_external.')
    if not dest_state.get('exists') and dest_state.get('dir_exists') is False:
        raise InvalidInputError('the directory of dest %s does not exist' % dest)
    if free_bytes is not None and not dest_state.get('block') and not options.get('reuse_external') and free_bytes < need:
        raise InvalidInputError('not enough space for %s: need %.1f MiB, %.1f MiB free there' % (
            dest, need / float(MIB), free_bytes / float(MIB)),
            remedy='Free space at the destination or copy to another filesystem.',
            details={'needed_bytes': need, 'free_bytes': free_bytes})


# ---------------------------------------------------------------------------
# Block job state machine
# ---------------------------------------------------------------------------

def classify(info, ready_flag, ready_streak=0, grace=3):
    """State of a copy job from one ``blockJobInfo`` sample and the live XML's mirror ``ready``.

    ``info`` is {} when libvirt has no job on the disk (it ended: failed or cancelled, since we
    never let it complete by itself). Ready needs libvirt's ready flag (``ready='yes'``, set from
    QEMU's BLOCK_JOB_READY event; cur == end alone is not enough) and cur == end. A guest that
    keeps writing moves ``end`` ahead of ``cur`` all the time once mirroring is synchronous, so
    after ``grace`` consecutive samples with the ready flag the job counts as ready anyway: QEMU
    flushes the remaining dirty blocks during the pivot.
    """
    if not info:
        return FAILED
    cur, end = info.get('cur', 0), info.get('end', 0)
    if ready_flag == 'yes' and end and (cur == end or ready_streak >= grace):
        return READY
    if not end or (not cur and ready_flag != 'yes'):
        return WAITING
    return MIRRORING


class BlockJobTracker:
    """Feeds on samples, keeps a bounded list of them, and knows when the job is done.

    ``feed(t, info, ready_flag)`` returns the state; after ``timeout_s`` without reaching
    ready the state is ``timed out``. Times are seconds from any monotonic clock.
    """

    def __init__(self, started, timeout_s, max_samples=60):
        self.started = started
        self.timeout_s = timeout_s
        self.max_samples = max(4, max_samples)
        self.samples = []
        self.state = WAITING
        self.ready_at = None
        self.end = 0
        self.cur = 0
        self.count = 0
        self.ready_streak = 0

    def feed(self, t, info, ready_flag):
        self.count += 1
        self.ready_streak = self.ready_streak + 1 if (info and ready_flag == 'yes') else 0
        state = classify(info, ready_flag, self.ready_streak - 1)
        if info:
            self.cur = info.get('cur', 0)
            self.end = info.get('end', 0)
        if state == READY and self.ready_at is None:
            self.ready_at = t
        if state not in (READY, FAILED) and t - self.started >= self.timeout_s:
            state = TIMED_OUT
        self.state = state
        self._record({'t': round(t - self.started, 3), 'cur': self.cur, 'end': self.end, 'state': state})
        return state

    def _record(self, sample):
        self.samples.append(sample)
        if len(self.samples) > self.max_samples:
            # Keep the first and the newest, thin out the middle evenly.
            first, middle, last = self.samples[0], self.samples[1:-1], self.samples[-1]
            self.samples = [first] + middle[1::2] + [last]

    @property
    def done(self):
        return self.state in (READY, FAILED, TIMED_OUT)

    def progress(self):
        return round(100.0 * self.cur / self.end, 1) if self.end else 0.0

    def throughput(self, until=None):
        """(bytes, seconds, MiB/s) from the start to ready (or ``until``)."""
        end_t = self.ready_at if self.ready_at is not None else until
        if end_t is None:
            return self.cur, None, None
        seconds = max(end_t - self.started, 1e-6)
        nbytes = self.end if self.ready_at is not None else self.cur
        return nbytes, round(seconds, 3), round(nbytes / float(MIB) / seconds, 1)
