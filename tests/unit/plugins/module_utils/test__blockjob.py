# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Block-copy decisions, the block-job state machine, and BlockCopier against a fake domain."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils import _blockcopier as bc
from ansible_collections.kvmops.migration.plugins.module_utils import _blockjob as bj
from ansible_collections.kvmops.migration.plugins.module_utils import _copytarget as ct
from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    InvalidInputError,
    KvmopsError,
    LibvirtCallError,
    OperationTimeoutError,
)

MIB = 1024 * 1024

DOMAIN = """<domain type='qemu'>
  <name>vm1</name>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='{src}' index='1'/>
      {backing}
      <target dev='vda' bus='virtio'/>
      {mirror}
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
  </devices>
</domain>"""

SRC = '/var/lib/libvirt/images/vm1.qcow2'
DST = '/var/lib/libvirt/local/vm1.qcow2'


def domain_xml(src=SRC, mirror=None, ready=None, backing=False):
    m = ''
    if mirror:
        m = "<mirror type='file' file='%s' format='qcow2' job='copy'%s><format type='qcow2'/></mirror>" % (
            mirror, " ready='%s'" % ready if ready else '')
    b = ("<backingStore type='file' index='2'><format type='qcow2'/><source file='/base.qcow2'/></backingStore>"
         if backing else '<backingStore/>')
    return DOMAIN.format(src=src, mirror=m, backing=b)


class TestXml:
    def test_parse_disks(self):
        disks = bj.parse_disks(domain_xml(mirror=DST, ready='yes', backing=True))
        vda, cd = disks
        assert (vda['target'], vda['path'], vda['format'], vda['has_backing']) == ('vda', SRC, 'qcow2', True)
        assert vda['mirror'] == {'path': DST, 'format': 'qcow2', 'job': 'copy', 'ready': 'yes'}
        assert cd['device'] == 'cdrom' and cd['path'] is None and cd['readonly']
        assert not bj.parse_disks(domain_xml())[0]['has_backing']

    def test_parse_network_disk_and_mirror(self):
        xml = domain_xml(mirror=DST).replace(
            "<source file='%s' index='1'/>" % SRC,
            "<source protocol='nbd' name='vm1' tls='no'><host name='storage-1' port='10851'/></source>").replace(
            "type='file' device='disk'", "type='network' device='disk'")
        vda = bj.parse_disks(xml)[0]
        assert (vda['type'], vda['path']) == ('network', 'nbd://storage-1:10851/vm1')
        assert bj.find_disk([vda], 'nbd://STORAGE-1:10851/vm1')['target'] == 'vda'
        mirror = ("<mirror type='network' job='copy' ready='yes'><format type='raw'/>"
                  "<source protocol='gluster' name='vmstore/vm1.raw'><host name='st1'/></source></mirror>")
        vda = bj.parse_disks(domain_xml().replace('<target ', mirror + '<target '))[0]
        assert vda['mirror'] == {'path': 'gluster://st1:24007/vmstore/vm1.raw', 'format': 'raw', 'job': 'copy',
                                 'ready': 'yes'}

    def test_find_disk(self):
        disks = bj.parse_disks(domain_xml())
        assert bj.find_disk(disks, 'vda')['target'] == 'vda'
        assert bj.find_disk(disks, SRC + '/.')['target'] == 'vda'
        with pytest.raises(InvalidInputError) as exc:
            bj.find_disk(disks, 'vdz')
        assert 'vda (%s)' % SRC in str(exc.value)

    def test_disk_xml_with_source(self):
        root = ET.fromstring(domain_xml(backing=True, mirror=DST))
        disk = ET.tostring(root.find('./devices/disk'), encoding='unicode')
        new = ET.fromstring(bj.disk_xml_with_source(disk, DST, 'raw'))
        assert new.find('source').get('file') == DST and new.find('driver').get('type') == 'raw'
        assert new.find('backingStore') is None and new.find('mirror') is None
        assert new.find('target').get('dev') == 'vda' and new.find('address') is not None
        blk = ET.fromstring(bj.disk_xml_with_source(disk, '/dev/sdb', None, is_block=True))
        assert blk.get('type') == 'block' and blk.find('source').get('dev') == '/dev/sdb'

    def test_domain_xml_with_disk_source(self):
        new = bj.domain_xml_with_disk_source(domain_xml(), 'vda', DST)
        assert bj.parse_disks(new)[0]['path'] == DST and bj.parse_disks(new)[1]['device'] == 'cdrom'
        with pytest.raises(InvalidInputError):
            bj.domain_xml_with_disk_source(domain_xml(), 'vdq', DST)

    def test_copy_destination_xml_escapes(self):
        xml = bj.copy_destination_xml("/a/it's.qcow2", 'qcow2')
        assert ET.fromstring(xml).find('source').get('file') == "/a/it's.qcow2"
        assert ET.fromstring(bj.copy_destination_xml('/dev/sdb', 'raw', True)).get('type') == 'block'


class TestPlan:
    DISK = {'target': 'vda', 'device': 'disk', 'type': 'file', 'path': SRC, 'format': 'qcow2', 'has_backing': False}
    NEW = {'exists': False, 'block': False, 'dir_exists': True}

    def opts(self, **kw):
        o = {'shallow': False, 'reuse_external': False, 'synchronous_writes': False, 'bandwidth': None,
             'pivot': True, 'remove_source': False}
        o.update(kw)
        return o

    def test_needed_bytes(self):
        assert bj.needed_bytes(64 * MIB, MIB, False, False) == MIB + bj.SPACE_SLACK
        assert bj.needed_bytes(64 * MIB, MIB, False, True) == 64 * MIB + bj.SPACE_SLACK
        assert bj.needed_bytes(64 * MIB, MIB, True, True) == MIB + bj.SPACE_SLACK

    def test_flags(self):
        assert bj.copy_flags() == 0
        assert bj.copy_flags(True, True, True, True) == 1 | 2 | 4 | 8

    def test_plan_persistent_uses_transient_job(self):
        plan = bj.plan_copy(self.DISK, DST, 'qcow2', self.NEW, 10 * MIB, MIB, True, self.opts(bandwidth=20))
        assert plan['transient_job'] and plan['flags'] == bj.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
        assert plan['bandwidth_bytes'] == 20 * MIB
        assert any('persistent' in s for s in plan['steps'])
        plan = bj.plan_copy(self.DISK, DST, 'raw', self.NEW, None, MIB, False, self.opts(pivot=False))
        assert plan['flags'] == 0 and 'leave the job mirroring (no pivot)' in plan['steps']

    @pytest.mark.parametrize('kwargs, state, free, message', [
        ({}, {'exists': True}, 10 * MIB, 'already exists'),
        ({'reuse_external': True}, {'exists': False, 'dir_exists': True}, 10 * MIB, 'does not exist'),
        ({}, {'exists': False, 'dir_exists': False}, 10 * MIB, 'directory'),
        ({}, {'exists': False, 'dir_exists': True}, MIB // 2, 'not enough space'),
        ({'shallow': True}, {'exists': False, 'dir_exists': True}, 10 * MIB, 'qcow2'),
    ])
    def test_plan_refusals(self, kwargs, state, free, message):
        fmt = 'raw' if kwargs.get('shallow') else 'qcow2'
        with pytest.raises(InvalidInputError) as exc:
            bj.plan_copy(self.DISK, DST, fmt, state, free, MIB, True, self.opts(**kwargs))
        assert message in str(exc.value)

    def test_plan_refuses_formats_and_disk_kinds(self):
        with pytest.raises(InvalidInputError) as exc:
            bj.plan_copy(dict(self.DISK, format='vmdk'), DST, 'vmdk', self.NEW, None, 0, False, self.opts())
        assert 'unsupported destination format' in str(exc.value)
        with pytest.raises(InvalidInputError) as exc:
            bj.plan_copy(dict(self.DISK, type='volume'), DST, 'raw', self.NEW, None, 0, False, self.opts())
        assert 'copies file, block or network disks only' in str(exc.value)
        with pytest.raises(InvalidInputError):
            bj.plan_copy(dict(self.DISK, device='cdrom'), DST, 'raw', self.NEW, None, 0, False, self.opts())
        with pytest.raises(InvalidInputError):
            bj.plan_copy(self.DISK, 'relative.qcow2', 'raw', self.NEW, None, 0, False, self.opts())

    def test_plan_from_network_source_to_path(self):
        disk = dict(self.DISK, type='network', path='nbd://st1:10809/e1', format='raw')
        plan = bj.plan_copy(disk, DST, 'raw', self.NEW, 10 * MIB, MIB, True, self.opts())
        assert plan['old_source'] == 'nbd://st1:10809/e1' and plan['dest_kind'] == 'path'

    def test_plan_network_target(self):
        target = ct.parse_dest('nbd://st1:10851/e1')
        with pytest.raises(InvalidInputError) as exc:
            bj.plan_copy(self.DISK, target, 'raw', {}, None, MIB, True, self.opts())
        assert 'reuse_external' in str(exc.value)
        plan = bj.plan_copy(self.DISK, target, 'raw', {}, None, MIB, True, self.opts(reuse_external=True))
        assert plan['flags'] == bj.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT | bj.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
        assert plan['new_source'] == 'nbd://st1:10851/e1' and plan['dest_kind'] == 'network'
        assert 'pool' not in plan

    def test_plan_volume_target(self):
        target = ct.parse_dest(dest_pool='local', dest_volume='vm1.qcow2').replace(path=DST)
        plan = bj.plan_copy(self.DISK, target, 'qcow2', {'exists': False, 'pool_type': 'dir'}, 10 * MIB, MIB, True,
                            self.opts(), capacity=64 * MIB)
        # The module creates the volume, then libvirt copies into the existing image.
        assert plan['create_volume'] is True and (plan['pool'], plan['volume']) == ('local', 'vm1.qcow2')
        assert plan['flags'] == bj.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT | bj.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
        assert plan['steps'][0] == 'create volume vm1.qcow2 in pool local (%s) (qcow2, %d bytes)' % (DST, 64 * MIB)
        with pytest.raises(InvalidInputError) as exc:
            bj.plan_copy(self.DISK, target, 'qcow2', {'exists': False, 'pool_type': 'dir'}, MIB // 2, MIB, True,
                         self.opts(), capacity=64 * MIB)
        assert 'not enough space in pool local' in str(exc.value)

    def test_relative_path_names_the_other_kinds(self):
        with pytest.raises(InvalidInputError) as exc:
            bj.plan_copy(self.DISK, ct.parse_dest('vm1.qcow2'), 'qcow2', self.NEW, None, 0, False, self.opts())
        assert "dest must be an absolute path, got 'vm1.qcow2'" in str(exc.value) and 'dest_pool' in exc.value.remedy

    def test_reuse_external_skips_space_check(self):
        plan = bj.plan_copy(self.DISK, DST, 'qcow2', {'exists': True}, 0, MIB, False, self.opts(reuse_external=True))
        assert plan['flags'] == bj.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT


class TestStateMachine:
    @pytest.mark.parametrize('info, ready, streak, state', [
        ({}, None, 0, bj.FAILED),
        ({'cur': 0, 'end': 0}, None, 0, bj.WAITING),
        ({'cur': 0, 'end': 100}, None, 0, bj.WAITING),
        ({'cur': 50, 'end': 100}, None, 0, bj.MIRRORING),
        ({'cur': 100, 'end': 100}, None, 0, bj.MIRRORING),
        ({'cur': 100, 'end': 100}, 'yes', 0, bj.READY),
        ({'cur': 90, 'end': 100}, 'yes', 0, bj.MIRRORING),
        ({'cur': 90, 'end': 100}, 'yes', 3, bj.READY),
    ])
    def test_classify(self, info, ready, streak, state):
        assert bj.classify(info, ready, streak) == state

    def test_tracker_to_ready_and_throughput(self):
        t = bj.BlockJobTracker(started=100.0, timeout_s=10)
        assert t.feed(100.0, {'cur': 0, 'end': 64 * MIB}, None) == bj.WAITING
        assert t.feed(100.5, {'cur': 32 * MIB, 'end': 64 * MIB}, None) == bj.MIRRORING
        assert t.progress() == 50.0 and not t.done
        assert t.feed(101.0, {'cur': 64 * MIB, 'end': 64 * MIB}, 'yes') == bj.READY
        assert t.done and t.ready_at == 101.0
        assert t.throughput() == (64 * MIB, 1.0, 64.0)
        assert [s['state'] for s in t.samples] == ['waiting', 'mirroring', 'ready']

    def test_tracker_busy_guest_ready_after_grace(self):
        t = bj.BlockJobTracker(started=0.0, timeout_s=10)
        states = [t.feed(i * 0.1, {'cur': 90, 'end': 100}, 'yes') for i in range(5)]
        # the ready flag on 3 earlier samples and this one: ready although cur < end
        assert states[:3] == [bj.MIRRORING] * 3 and states[3:] == [bj.READY] * 2

    def test_tracker_timeout(self):
        t = bj.BlockJobTracker(started=0.0, timeout_s=2)
        t.feed(1.0, {'cur': 10, 'end': 100}, None)
        assert t.feed(2.0, {'cur': 20, 'end': 100}, None) == bj.TIMED_OUT
        nbytes, seconds, rate = t.throughput(until=2.0)
        assert nbytes == 20 and seconds == 2.0

    def test_tracker_job_disappears(self):
        t = bj.BlockJobTracker(started=0.0, timeout_s=2)
        t.feed(0.1, {'cur': 10, 'end': 100}, None)
        assert t.feed(0.2, {}, None) == bj.FAILED and t.done
        assert t.cur == 10

    def test_samples_are_bounded(self):
        t = bj.BlockJobTracker(started=0.0, timeout_s=1000, max_samples=10)
        for i in range(500):
            t.feed(float(i), {'cur': i, 'end': 1000}, None)
        assert len(t.samples) <= 10
        assert t.samples[0]['cur'] == 0 and t.samples[-1]['cur'] == 499


# ---------------------------------------------------------------------------
# BlockCopier against a fake domain
# ---------------------------------------------------------------------------

class FakeLvError(Exception):
    def get_error_code(self):
        return 1

    def get_error_domain(self):
        return 10

    def get_error_message(self):
        return str(self)


@pytest.fixture(autouse=True)
def fake_lv_errors(monkeypatch):
    from ansible_collections.kvmops.migration.plugins.module_utils import _errors
    monkeypatch.setattr(_errors, 'is_libvirt_error', lambda exc: isinstance(exc, FakeLvError))
    monkeypatch.setattr(bc, 'is_libvirt_error', lambda exc: isinstance(exc, FakeLvError))


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


class FakeDomain:
    """A running guest whose copy job advances `step` bytes per sample."""

    def __init__(self, step=16 * MIB, end=64 * MIB, persistent=True, libvirt_updates_config=True, fail_at=None):
        self.src = SRC
        self.config_src = SRC
        self.persistent = persistent
        self.job = None
        self.step, self.end = step, end
        self.libvirt_updates_config = libvirt_updates_config
        self.fail_at = fail_at
        self.calls = []
        self.updated_config = None

    def name(self):
        return 'vm1'

    def isActive(self):  # noqa: N802
        return 1

    def isPersistent(self):  # noqa: N802
        return 1 if self.persistent else 0

    def XMLDesc(self, flags=0):  # noqa: N802
        if flags & bc.VIR_DOMAIN_XML_INACTIVE:
            return domain_xml(src=self.config_src)
        if self.job:
            return domain_xml(src=self.src, mirror=self.job['dest'], ready='yes' if self.job['ready'] else None)
        return domain_xml(src=self.src)

    def blockInfo(self, disk):  # noqa: N802
        return [self.end, MIB, MIB]

    def blockCopy(self, disk, xml, params, flags):  # noqa: N802
        self.calls.append(('blockCopy', disk, xml, params, flags))
        dest = ET.fromstring(xml).find('source').get('file')
        self.job = {'dest': dest, 'cur': 0, 'ready': False}

    def blockJobInfo(self, disk, flags):  # noqa: N802
        if not self.job:
            return {}
        job = self.job
        info = {'type': bc.VIR_DOMAIN_BLOCK_JOB_TYPE_COPY, 'bandwidth': 0, 'cur': job['cur'], 'end': self.end}
        if self.fail_at is not None and job['cur'] >= self.fail_at:
            self.job = None
            return {}
        if job['cur'] >= self.end:
            job['ready'] = True
        job['cur'] = min(self.end, job['cur'] + self.step)
        return info

    def blockJobAbort(self, disk, flags):  # noqa: N802
        self.calls.append(('blockJobAbort', disk, flags))
        if flags & bc.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT:
            if not self.job or not self.job['ready']:
                raise FakeLvError('block job not ready for pivot')
            self.src = self.job['dest']
            if self.libvirt_updates_config:
                self.config_src = self.src
        self.job = None

    def blockJobSetSpeed(self, disk, bandwidth, flags):  # noqa: N802
        self.calls.append(('blockJobSetSpeed', disk, bandwidth, flags))

    def updateDeviceFlags(self, xml, flags):  # noqa: N802
        self.calls.append(('updateDeviceFlags', flags))
        self.config_src = ET.fromstring(xml).find('source').get('file')

    def connect(self):
        return None


def params(**kw):
    p = {'name': 'vm1', 'disk': 'vda', 'dest': DST, 'format': None, 'shallow': False, 'reuse_external': False,
         'bandwidth': None, 'synchronous_writes': False, 'pivot': True, 'abort': False, 'wait': True,
         'timeout': 60, 'poll_interval': 0.5, 'remove_source': False}
    p.update(kw)
    return p


def copier(dom, clock=None, check_mode=False, **kw):
    clock = clock or Clock()
    c = bc.BlockCopier(dom, params(**kw), check_mode=check_mode, clock=clock, sleep=clock.sleep, local=True)
    return c


@pytest.fixture
def dest_free(monkeypatch):
    """dest does not exist yet and has plenty of room."""
    monkeypatch.setattr(bc, 'local_dest_state', lambda dest: ({'exists': False, 'block': False, 'dir_exists': True},
                                                              1024 * MIB))


class TestBlockCopier:
    def test_copy_pivot_verify(self, dest_free):
        dom = FakeDomain()
        result = copier(dom).run()
        assert result['changed'] and result['pivoted'] and result['state'] == 'pivoted'
        assert result['old_source'] == SRC and result['new_source'] == DST
        assert result['persistent_updated_by'] == 'libvirt' and result['persistent_source'] == DST
        assert result['bytes_copied'] == 64 * MIB and result['throughput_mib_s'] > 0
        assert result['samples'][0]['state'] == 'waiting' and result['samples'][-1]['state'] == 'ready'
        call = dom.calls[0]
        assert call[0] == 'blockCopy' and call[4] == bj.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
        assert ('blockJobAbort', 'vda', bc.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT) in dom.calls

    def test_persistent_definition_fixed_when_libvirt_does_not(self, dest_free):
        dom = FakeDomain(libvirt_updates_config=False)
        result = copier(dom).run()
        assert result['persistent_updated_by'] == 'module (updateDeviceFlags)' and dom.config_src == DST
        assert ('updateDeviceFlags', bc.VIR_DOMAIN_AFFECT_CONFIG) in dom.calls

    def test_transient_domain_has_no_transient_job_flag(self, dest_free):
        dom = FakeDomain(persistent=False)
        result = copier(dom, bandwidth=10).run()
        assert dom.calls[0][4] == 0 and dom.calls[0][3] == {'bandwidth': 10 * MIB}
        assert result['persistent_updated_by'] is None

    def test_idempotent(self, dest_free):
        dom = FakeDomain()
        dom.src = dom.config_src = DST
        for disk in ('vda', SRC):
            result = copier(dom, disk=disk).run()
            assert not result['changed'] and result['state'] == 'done'
        assert not dom.calls

    def test_idempotent_run_repairs_persistent_definition(self, dest_free):
        dom = FakeDomain()
        dom.src = DST
        assert copier(dom, check_mode=True).run()['changed'] and dom.config_src == SRC
        result = copier(dom).run()
        assert result['changed'] and dom.config_src == DST

    def test_check_mode_plans_only(self, dest_free):
        dom = FakeDomain()
        result = copier(dom, check_mode=True).run()
        assert result['changed'] and result['state'] == 'planned' and not dom.calls
        assert result['plan']['new_source'] == DST

    def test_timeout_aborts_and_stays(self, dest_free):
        dom = FakeDomain(step=MIB, end=1024 * MIB)
        with pytest.raises(OperationTimeoutError) as exc:
            copier(dom, timeout=2).run()
        assert ('blockJobAbort', 'vda', 0) in dom.calls and dom.src == SRC and dom.job is None
        assert exc.value.details['state'] == bj.TIMED_OUT
        assert exc.value.details['state_after_abort'].startswith('on original disk')

    def test_job_failure(self, dest_free):
        dom = FakeDomain(fail_at=32 * MIB)
        with pytest.raises(LibvirtCallError) as exc:
            copier(dom).run()
        assert 'stopped before it was ready' in str(exc.value) and dom.src == SRC

    def test_pivot_false_leaves_mirror_then_adopt(self, dest_free):
        dom = FakeDomain()
        result = copier(dom, pivot=False).run()
        assert result['mirroring'] and result['state'] == 'ready' and dom.job and dom.src == SRC
        result = copier(dom, bandwidth=5).run()
        assert result['pivoted'] and dom.src == DST and result['plan']['adopted']
        assert ('blockJobSetSpeed', 'vda', 5 * MIB, 1) in dom.calls

    def test_wait_false(self, dest_free):
        dom = FakeDomain()
        result = copier(dom, wait=False).run()
        assert result['changed'] and result['mirroring'] and not result['pivoted'] and dom.job

    def test_abort_option(self, dest_free):
        dom = FakeDomain()
        copier(dom, pivot=False).run()
        result = copier(dom, abort=True).run()
        assert result['aborted'] and result['new_source'] == SRC and dom.job is None
        assert copier(dom, abort=True).run()['state'] == 'no job'

    def test_other_job_refused(self, dest_free):
        dom = FakeDomain()
        dom.job = {'dest': '/elsewhere.qcow2', 'cur': 0, 'ready': False}
        with pytest.raises(InvalidInputError) as exc:
            copier(dom).run()
        assert 'already has a copy block job' in str(exc.value)

    def test_unknown_disk(self, dest_free):
        with pytest.raises(InvalidInputError):
            copier(FakeDomain(), disk='vdq').run()

    def test_remove_source(self, tmp_path, monkeypatch):
        old = tmp_path / 'old.qcow2'
        old.write_text('x')
        new = tmp_path / 'new.qcow2'
        dom = FakeDomain()
        dom.src = dom.config_src = str(old)

        class Conn:
            def listAllDomains(self, flags):
                return [dom]
        dom.connect = Conn
        result = copier(dom, disk='vda', dest=str(new), remove_source=True).run()
        assert result['source_removed'] and not old.exists()

    def test_errors_are_kvmops_errors(self):
        assert issubclass(OperationTimeoutError, KvmopsError)


# ---------------------------------------------------------------------------
# Pool volumes and network targets, against fakes that keep real <disk> elements
# ---------------------------------------------------------------------------

NBD = 'nbd://storage-1:10851/vm1'
NBD_KEY = 'nbd://storage-1:10851/vm1'


def file_disk(path):
    return ET.fromstring("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                         "<source file='%s'/><target dev='vda' bus='virtio'/></disk>" % path)


class XmlDomain(FakeDomain):
    """FakeDomain whose disk is a real <disk> element: blockCopy to any destination XML (file, block,
    network) and a pivot swap it in, as libvirt does."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.live = file_disk(SRC)
        self.config = file_disk(SRC)

    @property
    def src(self):
        return bj.parse_disks(self._xml(self.live))[0]['path']

    @src.setter
    def src(self, value):
        pass  # FakeDomain.__init__ sets it; the element is the truth here

    def _xml(self, disk, mirror=None):
        disk = ET.fromstring(ET.tostring(disk))
        if mirror is not None:
            disk.append(mirror)
        return "<domain type='qemu'><name>vm1</name><devices>%s</devices></domain>" % ET.tostring(
            disk, encoding='unicode')

    def XMLDesc(self, flags=0):  # noqa: N802
        if flags & bc.VIR_DOMAIN_XML_INACTIVE:
            return self._xml(self.config)
        mirror = None
        if self.job:
            dest = ET.fromstring(self.job['xml'])
            mirror = ET.Element('mirror', {'type': dest.get('type'), 'job': 'copy'})
            if self.job['ready']:
                mirror.set('ready', 'yes')
            ET.SubElement(mirror, 'format', {'type': dest.find('driver').get('type')})
            mirror.append(dest.find('source'))
        return self._xml(self.live, mirror)

    def blockCopy(self, disk, xml, params, flags):  # noqa: N802
        self.calls.append(('blockCopy', disk, xml, params, flags))
        self.job = {'xml': xml, 'cur': 0, 'ready': False}

    def _swapped(self, disk):
        dest = ET.fromstring(self.job['xml'])
        new = ET.fromstring(ET.tostring(disk))
        new.remove(new.find('source'))
        new.set('type', dest.get('type'))
        new.insert(1, dest.find('source'))
        new.find('driver').set('type', dest.find('driver').get('type'))
        return new

    def blockJobAbort(self, disk, flags):  # noqa: N802
        self.calls.append(('blockJobAbort', disk, flags))
        if flags & bc.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT:
            if not self.job or not self.job['ready']:
                raise FakeLvError('block job not ready for pivot')
            self.live = self._swapped(self.live)
            if self.libvirt_updates_config:
                self.config = self._swapped(self.config)
        self.job = None

    def updateDeviceFlags(self, xml, flags):  # noqa: N802
        self.calls.append(('updateDeviceFlags', flags))
        self.config = ET.fromstring(xml)

    def connect(self):
        return self.conn


class FakeVol:
    def __init__(self, pool, name, capacity, fmt, vtype=0):
        self.pool, self._name, self.capacity, self.fmt, self.vtype = pool, name, capacity, fmt, vtype

    def path(self):
        return '%s/%s' % (self.pool.target_path, self._name)

    def info(self):
        return [self.vtype, self.capacity, 0]

    def XMLDesc(self, flags):  # noqa: N802
        return "<volume><name>%s</name><target><format type='%s'/></target></volume>" % (self._name, self.fmt)

    def delete(self, flags):
        self.pool.calls.append(('delete', self._name))
        del self.pool.vols[self._name]


class FakePool:
    def __init__(self, name, active=True, ptype='dir', target_path='/var/lib/libvirt/local', avail=1024 * MIB):
        self._name, self.active, self.ptype, self.target_path, self.avail = name, active, ptype, target_path, avail
        self.vols = {}
        self.calls = []

    def name(self):
        return self._name

    def isActive(self):  # noqa: N802
        return 1 if self.active else 0

    def refresh(self, flags):
        self.calls.append(('refresh',))

    def XMLDesc(self, flags):  # noqa: N802
        return "<pool type='%s'><name>%s</name><target><path>%s</path></target></pool>" % (
            self.ptype, self._name, self.target_path)

    def info(self):
        return [2, 10 * self.avail, 0, self.avail]

    def listVolumes(self):  # noqa: N802
        return list(self.vols)

    def storageVolLookupByName(self, name):  # noqa: N802
        return self.vols[name]

    def createXML(self, xml, flags):  # noqa: N802
        vol = ET.fromstring(xml)
        name = vol.find('name').text
        self.calls.append(('createXML', name, int(vol.find('capacity').text), vol.find('./target/format').get('type')))
        self.vols[name] = FakeVol(self, name, int(vol.find('capacity').text), vol.find('./target/format').get('type'))
        return self.vols[name]


class FakeConn:
    def __init__(self, *pools):
        self.pools = list(pools)

    def listAllStoragePools(self, flags):  # noqa: N802
        return self.pools


def xml_domain(*pools, **kw):
    dom = XmlDomain(**kw)
    dom.conn = FakeConn(*pools)
    return dom


VOL_DST = '/var/lib/libvirt/local/vm1.qcow2'


class TestVolumeTarget:
    def run(self, dom, check_mode=False, **kw):
        kw.setdefault('dest', None)
        kw.setdefault('dest_pool', 'local')
        kw.setdefault('dest_volume', 'vm1.qcow2')
        return copier(dom, check_mode=check_mode, **kw).run()

    def test_creates_volume_copies_pivots_then_idempotent(self):
        pool = FakePool('local')
        dom = xml_domain(FakePool('images'), pool)
        result = self.run(dom)
        assert result['changed'] and result['pivoted'] and result['volume_created'] is True
        assert (result['new_source'], result['dest_kind'], result['persistent_source']) == (VOL_DST, 'volume', VOL_DST)
        assert ('createXML', 'vm1.qcow2', 64 * MIB, 'qcow2') in pool.calls
        call = [c for c in dom.calls if c[0] == 'blockCopy'][0]
        assert call[4] == bj.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT | bj.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
        assert ET.fromstring(call[2]).find('source').get('file') == VOL_DST
        assert dom.src == VOL_DST
        dom.calls, pool.calls = [], []
        again = self.run(dom, disk=SRC)
        assert not again['changed'] and again['state'] == 'done' and again['volume_created'] is False
        assert not dom.calls and not [c for c in pool.calls if c[0] != 'refresh']

    def test_check_mode_creates_nothing(self):
        pool = FakePool('local')
        dom = xml_domain(pool)
        result = self.run(dom, check_mode=True)
        assert result['changed'] and result['state'] == 'planned' and result['plan']['create_volume'] is True
        assert result['new_source'] == VOL_DST and not pool.vols and not dom.calls

    @pytest.mark.parametrize('pools, message', [
        ([FakePool('images')], "storage pool 'local' does not exist on this host (its pools: images)"),
        ([FakePool('local', active=False)], "storage pool 'local' is not active"),
        ([FakePool('local', avail=MIB)], 'not enough space in pool local'),
    ])
    def test_refusals_touch_nothing(self, pools, message):
        dom = xml_domain(*pools)
        with pytest.raises(InvalidInputError) as exc:
            self.run(dom)
        assert message in str(exc.value)
        assert not dom.calls and not any(p.vols for p in pools)

    def test_existing_volume_needs_reuse_external(self):
        pool = FakePool('local')
        pool.vols['vm1.qcow2'] = FakeVol(pool, 'vm1.qcow2', 64 * MIB, 'qcow2')
        dom = xml_domain(pool)
        with pytest.raises(InvalidInputError) as exc:
            self.run(dom)
        assert 'already exists; refusing to overwrite it' in str(exc.value) and not dom.calls
        result = self.run(dom, reuse_external=True)
        assert result['pivoted'] and result['volume_created'] is False
        assert not [c for c in pool.calls if c[0] == 'createXML']

    def test_failed_copy_deletes_the_volume_it_created(self):
        pool = FakePool('local')
        dom = xml_domain(pool, fail_at=32 * MIB)
        with pytest.raises(LibvirtCallError) as exc:
            self.run(dom)
        assert ('delete', 'vm1.qcow2') in pool.calls and not pool.vols and dom.src == SRC
        assert exc.value.details['partial_dest_removed'] is True and exc.value.details['volume_created'] is False

    def test_refused_blockcopy_deletes_the_volume_it_created(self):
        pool = FakePool('local')
        dom = xml_domain(pool)

        def refuse(*args):
            raise FakeLvError('unsupported configuration')
        dom.blockCopy = refuse
        with pytest.raises(KvmopsError) as exc:
            self.run(dom)
        assert ('delete', 'vm1.qcow2') in pool.calls and not pool.vols
        assert exc.value.details['partial_dest_removed'] is True and exc.value.details['volume_created'] is False

    def test_volume_left_by_earlier_run_is_adopted_not_deleted(self):
        pool = FakePool('local')
        dom = xml_domain(pool)
        self.run(dom, pivot=False)
        result = self.run(dom)
        assert result['pivoted'] and result['plan']['adopted'] and 'vm1.qcow2' in pool.vols


class TestNetworkTarget:
    def run(self, dom, **kw):
        kw.setdefault('dest', NBD)
        kw.setdefault('reuse_external', True)
        return copier(dom, **kw).run()

    def test_copy_pivot_verify_then_idempotent(self, monkeypatch):
        monkeypatch.setattr(bc.os, 'unlink', lambda path: pytest.fail('unlink %s' % path))
        dom = xml_domain()
        result = self.run(dom)
        assert result['pivoted'] and (result['new_source'], result['dest_kind']) == (NBD_KEY, 'network')
        assert result['format'] == 'raw' and result['persistent_updated_by'] == 'libvirt'
        call = dom.calls[0]
        dest = ET.fromstring(call[2])
        assert dest.get('type') == 'network' and dest.find('source').get('protocol') == 'nbd'
        assert call[4] == bj.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT | bj.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
        live = bj.parse_disks(dom.XMLDesc(0))[0]
        assert (live['type'], live['path'], live['format']) == ('network', NBD_KEY, 'raw')
        assert bj.parse_disks(dom.XMLDesc(bc.VIR_DOMAIN_XML_INACTIVE))[0]['path'] == NBD_KEY
        dom.calls = []
        for disk in ('vda', SRC, 'NBD://Storage-1:10851/vm1'):
            again = self.run(dom, disk=disk)
            assert not again['changed'] and again['state'] == 'done', disk
        assert not dom.calls

    def test_needs_reuse_external(self):
        dom = xml_domain()
        with pytest.raises(InvalidInputError) as exc:
            self.run(dom, reuse_external=False)
        assert 'reuse_external' in str(exc.value) and not dom.calls

    def test_persistent_definition_fixed_with_network_source(self):
        dom = xml_domain(libvirt_updates_config=False)
        result = self.run(dom)
        assert result['persistent_updated_by'] == 'module (updateDeviceFlags)'
        config = bj.parse_disks(dom.XMLDesc(bc.VIR_DOMAIN_XML_INACTIVE))[0]
        assert (config['type'], config['path'], config['format']) == ('network', NBD_KEY, 'raw')

    def test_failure_aborts_and_never_deletes(self, monkeypatch):
        monkeypatch.setattr(bc.os, 'unlink', lambda path: pytest.fail('unlink %s' % path))
        dom = xml_domain(fail_at=32 * MIB)
        with pytest.raises(LibvirtCallError) as exc:
            self.run(dom)
        assert 'exactly the disk' in exc.value.remedy and dom.src == SRC
        assert 'partial_dest_removed' not in exc.value.details

    def test_mirror_abort_then_adopt(self):
        dom = xml_domain()
        result = self.run(dom, pivot=False)
        assert result['mirroring'] and result['state'] == 'ready' and dom.src == SRC
        aborted = self.run(dom, abort=True)
        assert aborted['aborted'] and aborted['new_source'] == SRC and dom.job is None
        self.run(dom, wait=False)
        adopted = self.run(dom)
        assert adopted['pivoted'] and adopted['plan']['adopted'] and dom.src == NBD_KEY

    def test_copy_back_from_network_to_a_path(self, dest_free):
        dom = xml_domain()
        self.run(dom)
        back = copier(dom, dest=DST, remove_source=True).run()
        assert back['pivoted'] and back['old_source'] == NBD_KEY and dom.src == DST
        assert back['format'] == 'raw' and back['source_removed'] is False
