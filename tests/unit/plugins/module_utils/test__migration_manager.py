# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError
from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import read_domain
from ansible_collections.kvmops.migration.plugins.module_utils._live_migration import postcopy_halves, resumed_after_s
from ansible_collections.kvmops.migration.plugins.module_utils._migration_spec import default_timeout_s, dest_uri


@pytest.mark.parametrize('dest,transport,uri', [
    ('host-b', 'ssh', 'qemu+ssh://host-b/system'),
    ('host-b.example.org', 'tls', 'qemu+tls://host-b.example.org/system'),
    ('10.0.0.2', 'tcp', 'qemu+tcp://10.0.0.2/system'),
    ('qemu+ssh://root@host-b/system?keyfile=/k', 'ssh', 'qemu+ssh://root@host-b/system?keyfile=/k'),
])
def test_dest_uri(dest, transport, uri):
    assert dest_uri(dest, transport) == uri


@pytest.mark.parametrize('dest', ['qemu+ssh://', 'qemu:///system', 'host b', 'hôst', '-host', ''])
def test_dest_uri_rejects_what_names_no_remote_host(dest):
    with pytest.raises(InvalidInputError) as err:
        dest_uri(dest, 'ssh')
    assert err.value.remedy


def test_default_timeout_scales_per_gib():
    assert default_timeout_s(0) == 120
    assert default_timeout_s(4 * 1024 ** 3) == 360
    assert default_timeout_s(1024 ** 3, 2 * 1024 ** 3) == 300


# --- the destination prechecks (cases 10-12 of the fault suite, before anything moves) -------

GUEST_XML = """<domain type='qemu'><name>web1</name><uuid>2d9c7c0e-8a5e-4a36-9c0b-6c1c1e0a4d01</uuid>
<memory unit='KiB'>1048576</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
<source file='/var/lib/libvirt/local/web1.qcow2'/><target dev='vda' bus='virtio'/></disk>
<interface type='network'><source network='prod'/><mac address='52:54:00:00:00:01'/></interface>
</devices></domain>"""


class FakeDom:
    def XMLDesc(self, flags):
        return GUEST_XML

    def blockInfo(self, path, flags):
        return [10 * 1024 ** 3, 300 * 1024 ** 2, 300 * 1024 ** 2]  # capacity, allocation, physical


class FakeNet:
    def isActive(self):
        return True

    def bridgeName(self):
        return 'br-prod'


class FakeDestConn:
    def __init__(self, networks=('prod',), free_mib=8192):
        self.networks = networks
        self.free_mib = free_mib

    def networkLookupByName(self, name):
        if name not in self.networks:
            import libvirt
            raise libvirt.libvirtError("Network not found: no network with matching name '%s'" % name)
        return FakeNet()

    def getMemoryStats(self, cell, flags):
        return {'total': 16 * 1024 ** 2, 'free': self.free_mib * 1024, 'buffers': 0, 'cached': 0}


class FakeKvm:
    def __init__(self, **params):
        from ansible_collections.kvmops.migration.plugins.module_utils._migration_spec import option_defaults
        self.params = dict(option_defaults(), name='web1', dest='host-b', **params)
        self.client = None
        self.check_mode = False


def manager(monkeypatch, free_disk_mib=4096, active=True, compat=(), **params):
    from ansible_collections.kvmops.migration.plugins.module_utils import _migration_manager as mm
    monkeypatch.setattr(mm, 'free_bytes_at', lambda conn, directory, host: free_disk_mib * 1024 ** 2)
    # Versions, machine type and CPU (_compat_checks, tested in test__compat_checks): given here.
    monkeypatch.setattr(mm, 'guest_compatibility', lambda dom, dst_conn, mode, postcopy=False: list(compat))
    mgr = mm.MigrationManager(FakeKvm(**params))
    mgr.domain_active = active
    mgr.dst_host = 'host-b'
    return mgr


COPY = [{'target': 'vda', 'path': '/var/lib/libvirt/local/web1.qcow2', 'action': 'copy (all)'}]


def test_prechecks_pass_when_the_destination_can_take_the_guest(monkeypatch):
    checks = manager(monkeypatch)._destination_checks(FakeDom(), read_domain(GUEST_XML), FakeDestConn(), COPY)
    assert [(c['name'], c['status']) for c in checks] == [
        ('network.interface', 'ok'), ('capacity.memory', 'ok'), ('storage.copy_space', 'ok')]


@pytest.mark.parametrize('conn,free_disk_mib,words', [
    (FakeDestConn(networks=()), 4096, "network 'prod' is not defined on the destination"),
    (FakeDestConn(free_mib=1000), 4096, 'but the destination has only 1000.0 MiB'),
    (FakeDestConn(), 100, 'but only 100.0 MiB free'),
])
def test_a_failed_precheck_refuses_naming_check_and_remedy(monkeypatch, conn, free_disk_mib, words):
    from ansible_collections.kvmops.migration.plugins.module_utils._errors import MigrationError
    with pytest.raises(MigrationError) as err:
        manager(monkeypatch, free_disk_mib=free_disk_mib)._destination_checks(FakeDom(), read_domain(GUEST_XML), conn, COPY)
    assert err.value.msg.startswith('web1 cannot go to host-b: ') and words in err.value.msg
    assert 'precheck: false' in err.value.remedy
    assert [c for c in err.value.details['checks'] if c['status'] == 'fail']


def test_a_machine_type_the_destination_lacks_refuses_before_anything_moves(monkeypatch):
    from ansible_collections.kvmops.migration.plugins.module_utils._errors import MigrationError
    from ansible_collections.kvmops.migration.plugins.module_utils._preflight_spec import check
    compat = [check('versions.qemu', 'warn', 'destination QEMU 7.2.0 is older than the source QEMU 10.0.0', remedy='upgrade'),
              check('versions.machine_type', 'fail', "machine type 'pc-i440fx-10.0' is not offered", remedy='Move it.')]
    with pytest.raises(MigrationError) as err:
        manager(monkeypatch, compat=compat)._destination_checks(FakeDom(), read_domain(GUEST_XML), FakeDestConn(), COPY)
    assert "machine type 'pc-i440fx-10.0' is not offered" in err.value.msg and 'Move it.' in err.value.remedy
    assert 'upgrade' not in err.value.remedy, 'a warning does not refuse and adds no remedy'


def test_memory_is_not_checked_for_a_guest_that_will_not_run_there(monkeypatch):
    checks = manager(monkeypatch, active=False)._destination_checks(FakeDom(), read_domain(GUEST_XML), FakeDestConn(free_mib=10), [])
    assert [c['name'] for c in checks] == ['network.interface']


def test_precheck_false_checks_nothing(monkeypatch):
    assert manager(monkeypatch, precheck=False)._destination_checks(FakeDom(), read_domain(GUEST_XML), FakeDestConn(networks=()), COPY) == []


def test_unknown_free_space_warns_and_does_not_block(monkeypatch):
    mgr = manager(monkeypatch)
    from ansible_collections.kvmops.migration.plugins.module_utils import _migration_manager as mm
    monkeypatch.setattr(mm, 'free_bytes_at', lambda conn, directory, host: None)
    checks = mgr._destination_checks(FakeDom(), read_domain(GUEST_XML), FakeDestConn(), COPY)
    assert checks[-1]['status'] == 'warn' and 'unknown' in checks[-1]['detail']


def test_postcopy_halves_report_the_last_figures_libvirt_gave():
    samples = [{'t_ms': 500, 'remaining': 90 << 20}, {'t_ms': 1000, 'remaining': 40 << 20}, {'t_ms': 1500}]
    halves = postcopy_halves('host-a', 'host-b', samples)
    assert halves == {'vcpus_on': 'host-b', 'unfetched_memory_on': 'host-a',
                      'unfetched_memory_bytes': 40 << 20, 'as_of_ms': 1000}
    assert postcopy_halves('host-a', 'host-b', [])['unfetched_memory_bytes'] is None


def test_a_run_waits_for_a_detached_run_of_the_same_guest_and_takes_its_result_once(monkeypatch, tmp_path):
    import subprocess
    import threading
    from ansible_collections.kvmops.migration.plugins.module_utils._statefile import read_json, write_json
    from ansible_collections.kvmops.migration.plugins.module_utils._migration_spec import outcome_path
    mgr = manager(monkeypatch, state_dir=str(tmp_path), timeout=30)
    path = outcome_path(str(tmp_path), 'u-1')
    assert mgr._wait_for_detached_run('u-1') is False  # none: nothing to wait for
    sleeper = subprocess.Popen(['sleep', '30'])  # stands for the detached process
    try:
        write_json(path, {'name': 'web1', 'running': True, 'pid': sleeper.pid})

        def finish():
            write_json(path, {'name': 'web1', 'running': False, 'pid': sleeper.pid, 'msg': 'Migrated web1',
                              'location': {'verdict': 'destination'}, 'finished_at': 1.0})
        threading.Timer(1.5, finish).start()
        assert mgr._wait_for_detached_run('u-1') is True
    finally:
        sleeper.kill()
        sleeper.wait()
    assert mgr.result['detached_outcome'] == {'msg': 'Migrated web1', 'location': {'verdict': 'destination'},
                                              'finished_at': 1.0}
    assert read_json(path)['collected'] is True
    assert manager(monkeypatch, state_dir=str(tmp_path))._wait_for_detached_run('u-1') is False  # handed over once


def test_a_detached_run_whose_process_died_without_a_result_is_reported(monkeypatch, tmp_path):
    from ansible_collections.kvmops.migration.plugins.module_utils._statefile import write_json
    from ansible_collections.kvmops.migration.plugins.module_utils._migration_spec import outcome_path
    write_json(outcome_path(str(tmp_path), 'u-2'), {'name': 'web1', 'running': True, 'pid': 2 ** 22 + 9})
    mgr = manager(monkeypatch, state_dir=str(tmp_path))
    assert mgr._wait_for_detached_run('u-2') is True
    assert 'without writing a result' in mgr.result['detached_outcome']['msg']


def test_wait_false_refuses_cold_and_offline_before_doing_anything(monkeypatch):
    for mode in ('cold', 'offline'):
        with pytest.raises(InvalidInputError, match='wait=false is for mode=live'):
            manager(monkeypatch, wait=False, mode=mode).run()


def test_the_resume_that_succeeded_is_the_one_reported():
    recovery = {'action': 'resume', 'attempts': [{'at_s': 150.9, 'error': 'cannot acquire state change lock'},
                                                 {'at_s': 161.2, 'result': 'resumed'}]}
    assert resumed_after_s(recovery) == 161.2
    assert resumed_after_s({'attempts': [{'at_s': 150.9, 'error': 'x'}]}) is None
    assert resumed_after_s(None) is None
