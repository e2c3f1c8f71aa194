# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight's runner against fake libvirt connections and a fake ssh session."""

from __future__ import annotations

import os

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils import _compat_checks, _host_facts, _preflight_runner
from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import parse_domain
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_spec import should_fail
from ansible_collections.kvmops.migration.tests.unit.plugins.module_utils.preflight_data import CAPS_XML, DOMCAPS_XML, MIB, dom_xml


class FakeLvError(Exception):
    def __init__(self, msg, code=1):
        super().__init__(msg)
        self.msg, self.code = msg, code

    def get_error_code(self):
        return self.code

    def get_error_domain(self):
        return 0

    def get_error_message(self):
        return self.msg


@pytest.fixture
def fake_lv_errors(monkeypatch):
    for module in (_preflight_runner, _host_facts, _compat_checks):
        monkeypatch.setattr(module, 'is_libvirt_error', lambda exc: isinstance(exc, FakeLvError))


class FakeDom:
    def __init__(self, xml, inactive=None):
        self.xml, self.inactive = xml, inactive or xml

    def name(self):
        return parse_domain(self.xml)['name']

    def XMLDesc(self, flags=0):  # noqa: N802
        return self.inactive if flags & _preflight_runner.VIR_DOMAIN_XML_INACTIVE else self.xml

    def isActive(self):  # noqa: N802
        return 1

    def isPersistent(self):  # noqa: N802
        return 1

    def blockInfo(self, target):  # noqa: N802
        return [64 * MIB, MIB, MIB]

    def info(self):
        return [1, 131072, 131072, 1, 0]


class FakeNet:
    def __init__(self, active):
        self.active = active

    def isActive(self):  # noqa: N802
        return self.active

    def bridgeName(self):  # noqa: N802
        return 'virbr9'


class FakePool:
    def __init__(self, name, available):
        self._name, self.available = name, available

    def name(self):
        return self._name

    def isActive(self):  # noqa: N802
        return 1

    def refresh(self, flags):
        return 0

    def info(self):
        return [2, 100 * MIB, 0, self.available]


class FakeConn:
    def __init__(self, hostname, uuid, doms=(), networks=None, pools=None, cpu_result=2, cpu_error=None):
        self.hostname, self.uuid = hostname, uuid
        self.doms = dict((d.name(), d) for d in doms)
        self.networks = networks or {}
        self.pools = pools or {}
        self.cpu_result, self.cpu_error = cpu_result, cpu_error

    def getHostname(self):  # noqa: N802
        return self.hostname

    def getCapabilities(self):  # noqa: N802
        return CAPS_XML.format(uuid=self.uuid)

    def getLibVersion(self):  # noqa: N802
        return 9000000

    def getVersion(self):  # noqa: N802
        return 7002000

    def listAllDomains(self, flags=0):  # noqa: N802
        return list(self.doms.values())

    def lookupByName(self, name):  # noqa: N802
        if name not in self.doms:
            raise FakeLvError("Domain not found: no domain with matching name '%s'" % name, 42)
        return self.doms[name]

    def compareHypervisorCPU(self, *args):  # noqa: N802
        if self.cpu_error:
            raise FakeLvError(self.cpu_error, 91)
        return self.cpu_result

    def getDomainCapabilities(self, *args):  # noqa: N802
        return DOMCAPS_XML

    def baselineHypervisorCPU(self, *args):  # noqa: N802
        return "<cpu mode='custom' match='exact'><model fallback='forbid'>EPYC</model></cpu>"

    def networkLookupByName(self, name):  # noqa: N802
        if name not in self.networks:
            raise FakeLvError('Network not found', 43)
        return self.networks[name]

    def storagePoolLookupByTargetPath(self, path):  # noqa: N802
        if path not in self.pools:
            raise FakeLvError('Storage pool not found: no storage pool with matching target path', 49)
        return self.pools[path]

    def getMemoryStats(self, cell, flags):  # noqa: N802
        return {'total': 4096 * 1024, 'free': 1024 * 1024, 'buffers': 0, 'cached': 1024 * 1024}

    def getInfo(self):  # noqa: N802
        return ['x86_64', 4096, 2, 2100, 1, 1, 2, 1]


class FakeClient:
    def __init__(self, src, dst=None, dst_error=None):
        self.conn, self.dst, self.dst_error = src, dst, dst_error
        self.uri = 'qemu:///system'

    def open_peer(self, uri):
        if self.dst_error:
            raise FakeLvError(self.dst_error, 38)
        return self.dst


class FakeSsh:
    """Stands in for SshHelper: facts as given; every port open unless `closed`."""
    instances = []

    def __init__(self, destination, options=(), connect_timeout=5, facts=None, fail=None, shared=True):
        self.host, self.facts_in, self.fail, self.shared = destination.host, facts, fail, shared
        self.error = None
        self.elapsed_s = 0.1
        self.args = None
        FakeSsh.instances.append(self)

    def start(self, args):
        self.args = args

    def read_facts(self, timeout):
        if self.fail:
            self.error = self.fail
            return None
        files = {}
        for path in self.args['files']:
            if path in self.args['read']:
                files[path] = {'exists': True, 'regular': True, 'content': open(path).read()} if self.shared else {
                    'exists': False}
            else:
                files[path] = {'exists': False}
        facts = {'hostname': self.host, 'conf': {}, 'files': files, 'netdevs': {}}
        facts.update(self.facts_in or {})
        return facts

    def listen(self, ports):
        return {'bound': [], 'busy': list(ports)}

    def close(self):
        pass


def ssh_factory(**kw):
    def make(destination, **args):
        args.update(kw)
        return FakeSsh(destination, **args)
    return make


def make_runner(tmp_path, monkeypatch, doms_xml, dst_kwargs=None, dst_error=None, ssh_kw=None, params=None):
    monkeypatch.setattr(_preflight_runner, 'resolve', lambda host: ['192.0.2.10'])
    monkeypatch.setattr(_preflight_runner, 'tcp_connect_many', lambda addr, ports, timeout=3, expect_token=None:
                        dict((p, {'ok': True, 'ms': 0.1}) for p in ports))
    src = FakeConn('host-a', 'uuid-a', [FakeDom(x) for x in doms_xml])
    dst = FakeConn('host-b', 'uuid-b', **(dst_kwargs or {}))
    mountinfo = tmp_path / 'mountinfo'
    mountinfo.write_text('22 1 0:21 / / rw - ext4 /dev/sda1 rw\n'
                         '40 22 0:40 / %s rw - fuse.glusterfs storage-1:/vmstore rw\n' % tmp_path)
    p = {'dest': 'host-b', 'transport': 'ssh', 'guests': [], 'fail_on': 'fail', 'measure_bandwidth': False,
         'bandwidth_seconds': 3, 'memory_margin_mib': 256, 'vcpu_overcommit_ratio': 4.0, 'storage_probe': 'auto',
         'ssh_options': [], 'connect_timeout': 5}
    p.update(params or {})
    return _preflight_runner.PreflightRunner(FakeClient(src, dst, dst_error), p, ssh_factory=ssh_factory(**(ssh_kw or {})),
                                             mountinfo_path=str(mountinfo))


def by_name(result, name, guest=None):
    return [c for c in result['checks'] if c['name'] == name and (guest is None or c.get('guest') == guest)]


class TestRunner:
    def test_healthy_pair(self, tmp_path, monkeypatch, fake_lv_errors):
        disk = tmp_path / 'vm1.qcow2'
        disk.write_text('x')
        runner = make_runner(tmp_path, monkeypatch, [dom_xml(disk=str(disk))])
        result = runner.run()
        assert result['summary']['verdict'] in ('ok', 'warn'), result['summary']
        assert by_name(result, 'storage.disk', 'vm1')[0]['status'] == 'ok'
        assert by_name(result, 'cpu.model', 'vm1')[0]['status'] == 'ok'
        assert by_name(result, 'connectivity.distinct_hosts')[0]['status'] == 'ok'
        # the probe file is gone afterwards
        assert not [f for f in os.listdir(tmp_path) if f.startswith('kvmops-preflight-')]
        assert result['guests'] == ['vm1']

    def test_local_disk_not_shared(self, tmp_path, monkeypatch, fake_lv_errors):
        disk = tmp_path / 'vm1.qcow2'
        disk.write_text('x')
        runner = make_runner(tmp_path, monkeypatch, [dom_xml(disk=str(disk))], ssh_kw={'shared': False},
                             dst_kwargs={'pools': {str(tmp_path): FakePool('local', 100 * MIB)}})
        c = by_name(runner.run(), 'storage.disk', 'vm1')[0]
        assert c['status'] == 'warn' and 'copy_storage' in c['detail']

    def test_cpu_incompatible_and_network_missing(self, tmp_path, monkeypatch, fake_lv_errors):
        disk = tmp_path / 'vm1.qcow2'
        disk.write_text('x')
        iface = "<interface type='network'><mac address='52:54:00:00:00:01'/><source network='pf-net'/></interface>"
        runner = make_runner(tmp_path, monkeypatch, [dom_xml(disk=str(disk), interfaces=iface)], dst_kwargs={
            'cpu_error': 'the CPU is incompatible with host CPU: Host CPU does not provide required features: avx512f'})
        result = runner.run()
        cpu = by_name(result, 'cpu.model', 'vm1')[0]
        assert cpu['status'] == 'fail' and 'avx512f' in cpu['detail'] and 'EPYC' in cpu['remedy']
        net = by_name(result, 'network.interface', 'vm1')[0]
        assert net['status'] == 'fail' and 'pf-net' in net['detail']
        assert should_fail(result['checks'], 'fail')

    def test_dest_libvirt_down(self, tmp_path, monkeypatch, fake_lv_errors):
        disk = tmp_path / 'vm1.qcow2'
        disk.write_text('x')
        runner = make_runner(tmp_path, monkeypatch, [dom_xml(disk=str(disk))],
                             dst_error="Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file")
        result = runner.run()
        c = by_name(result, 'connectivity.libvirt')[0]
        assert c['status'] == 'fail' and 'libvirt-sock' in c['detail']
        assert result['summary']['skipped'] and not by_name(result, 'cpu.model')
        # storage still proven over ssh
        assert by_name(result, 'storage.disk', 'vm1')[0]['status'] == 'ok'

    def test_ssh_down(self, tmp_path, monkeypatch, fake_lv_errors):
        disk = tmp_path / 'vm1.qcow2'
        disk.write_text('x')
        runner = make_runner(tmp_path, monkeypatch, [dom_xml(disk=str(disk))], ssh_kw={'fail': 'Connection refused'})
        result = runner.run()
        assert by_name(result, 'connectivity.ssh')[0]['status'] == 'fail'
        assert by_name(result, 'firewall.migration_ports')[0]['status'] == 'warn'

    def test_unknown_guest(self, tmp_path, monkeypatch, fake_lv_errors):
        runner = make_runner(tmp_path, monkeypatch, [], params={'guests': ['nope']})
        c = by_name(runner.run(), 'guest.exists', 'nope')[0]
        assert c['status'] == 'fail'

    def test_guest_that_leaves_while_the_preflight_reads_it(self, tmp_path, monkeypatch, fake_lv_errors):
        """An evacuation running meanwhile migrates it away between listing and reading."""
        runner = make_runner(tmp_path, monkeypatch, [dom_xml()])

        def gone(flags=0):
            raise FakeLvError("Domain not found: no domain with matching uuid 'x' (vm1)", 42)
        runner.client.conn.doms['vm1'].XMLDesc = gone
        result = runner.run()
        c = by_name(result, 'guest.exists', 'vm1')[0]
        assert c['status'] == 'warn' and 'left this host while the preflight ran' in c['detail']
        assert not by_name(result, 'capacity.memory', 'vm1')

    def test_memory_too_small(self, tmp_path, monkeypatch, fake_lv_errors):
        disk = tmp_path / 'vm1.qcow2'
        disk.write_text('x')
        runner = make_runner(tmp_path, monkeypatch, [dom_xml(disk=str(disk))], params={'memory_margin_mib': 4000})
        c = by_name(runner.run(), 'capacity.memory', 'vm1')[0]
        assert c['status'] == 'fail'
