# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Decision logic of the preflight checks, the destination helper (run locally instead of over
SSH), and the runner against fake libvirt connections."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils import _preflight as pf
from ansible_collections.kvmops.migration.plugins.module_utils._destination import parse_destination

MIB = 1024 * 1024

DOMAIN_XML = """<domain type='qemu' id='4'>
  <name>{name}</name>
  <uuid>cfbc8daf-0083-437b-9dfa-76ebfb61eb49</uuid>
  <memory unit='KiB'>131072</memory>
  <currentMemory unit='KiB'>131072</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>
  {cpu}
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='{cache}'/>
      <source file='{disk}' index='1'/>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    {interfaces}
  </devices>
</domain>"""

CPU_QEMU64 = ("<cpu mode='custom' match='exact' check='full'><model fallback='forbid'>qemu64</model>"
              "<feature policy='require' name='hypervisor'/></cpu>")

CAPS_XML = """<capabilities>
  <host><uuid>{uuid}</uuid><cpu><arch>x86_64</arch></cpu></host>
  <guest>
    <os_type>hvm</os_type>
    <arch name='x86_64'>
      <wordsize>64</wordsize>
      <emulator>/usr/bin/qemu-system-x86_64</emulator>
      <machine maxCpus='255'>pc-i440fx-7.2</machine>
      <machine canonical='pc-i440fx-7.2' maxCpus='255'>pc</machine>
      <machine maxCpus='288'>pc-q35-7.2</machine>
      <domain type='qemu'/>
      <domain type='kvm'/>
    </arch>
  </guest>
</capabilities>"""

DOMCAPS_XML = """<domainCapabilities><cpu>
  <mode name='host-passthrough' supported='no'/>
  <mode name='host-model' supported='yes'><model fallback='forbid'>EPYC</model><vendor>AMD</vendor>
    <feature policy='require' name='acpi'/></mode>
</cpu></domainCapabilities>"""


def dom_xml(name='vm1', disk='/var/lib/libvirt/images/vm1.qcow2', cpu=CPU_QEMU64, cache='none', interfaces=''):
    return DOMAIN_XML.format(name=name, disk=disk, cpu=cpu, cache=cache, interfaces=interfaces)


# ---------------------------------------------------------------------------
# verdicts, summary, fail_on
# ---------------------------------------------------------------------------

class TestVerdicts:
    def test_check_shape(self):
        c = pf.check('firewall.migration_ports', 'fail', 'closed', remedy='open it')
        assert c == {'name': 'firewall.migration_ports', 'category': 'firewall', 'status': 'fail',
                     'detail': 'closed', 'remedy': 'open it'}
        g = pf.check('cpu.model', 'ok', 'fine', remedy='ignored', guest='vm1')
        assert g['guest'] == 'vm1' and g['remedy'] is None

    def test_bad_status(self):
        with pytest.raises(ValueError):
            pf.check('x.y', 'bad', 'd')

    def test_summary(self):
        checks = [pf.check('a.b', 'ok', ''), pf.check('c.d', 'warn', '', 'r', guest='g'), pf.check('e.f', 'fail', '', 'r')]
        s = pf.summarize(checks, ['cpu: no connection'])
        assert s['verdict'] == 'fail' and (s['ok'], s['warn'], s['fail'], s['total']) == (1, 1, 1, 3)
        assert s['failed_checks'] == ['e.f'] and s['warned_checks'] == ['c.d(g)']
        assert s['skipped'] == ['cpu: no connection']
        assert pf.summarize([])['verdict'] == 'ok'
        assert pf.summarize(checks[:2])['verdict'] == 'warn'

    @pytest.mark.parametrize('statuses, fail_on, expected', [
        (['ok', 'warn'], 'fail', False),
        (['ok', 'fail'], 'fail', True),
        (['ok', 'warn'], 'warn', True),
        (['ok'], 'warn', False),
        (['fail'], 'never', False),
    ])
    def test_should_fail(self, statuses, fail_on, expected):
        checks = [pf.check('a.b', s, 'd', 'r') for s in statuses]
        assert pf.should_fail(checks, fail_on) is expected

    def test_should_fail_rejects_unknown(self):
        with pytest.raises(ValueError):
            pf.should_fail([], 'sometimes')

    def test_failure_message_lists_problems(self):
        checks = [pf.check('firewall.migration_ports', 'fail', 'blocked', 'r'),
                  pf.check('storage.disk', 'warn', 'local', 'r', guest='vm1')]
        assert 'firewall.migration_ports: blocked' in pf.failure_message(checks, 'fail')
        assert 'storage.disk (vm1): local' in pf.failure_message(checks, 'warn')


# ---------------------------------------------------------------------------
# helpers and parsers
# ---------------------------------------------------------------------------

class TestHelpers:
    def test_format_version(self):
        assert pf.format_version(9000000) == '9.0.0'
        assert pf.format_version(7002022) == '7.2.22'
        assert pf.format_version(None) == 'unknown'

    def test_compress_ranges(self):
        assert pf.compress_ranges([49155, 49152, 49153, 49154, 49200]) == '49152-49155, 49200'
        assert pf.compress_ranges([]) == ''

    def test_sample_ports(self):
        assert pf.sample_ports(49152, 49215) == list(range(49152, 49216))
        big = pf.sample_ports(10000, 20000, cap=16)
        assert len(big) == 16 and big[0] == 10000 and big[-1] == 20000
        assert pf.sample_ports(5, 4) == []

    def test_parse_domain(self):
        iface = ("<interface type='network'><mac address='52:54:00:aa:bb:cc'/><source network='pf-net'/></interface>"
                 "<interface type='bridge'><source bridge='br0'/></interface>")
        d = pf.parse_domain(dom_xml(interfaces=iface, cache='writeback'))
        assert (d['name'], d['virt_type'], d['arch'], d['machine']) == ('vm1', 'qemu', 'x86_64', 'pc-i440fx-7.2')
        assert d['memory_kib'] == 131072 and d['vcpus'] == 1
        assert d['cpu']['mode'] == 'custom' and d['cpu']['model'] == 'qemu64'
        assert ('require', 'hypervisor') in d['cpu']['features']
        vda, cdrom = d['disks']
        assert vda['path'] == '/var/lib/libvirt/images/vm1.qcow2' and vda['cache'] == 'writeback'
        assert cdrom['path'] is None and cdrom['readonly']
        assert [i['type'] for i in d['interfaces']] == ['network', 'bridge']
        assert d['interfaces'][0]['network'] == 'pf-net' and d['interfaces'][1]['bridge'] == 'br0'

    def test_live_xml_of_a_network_interface_is_a_network(self):
        # libvirt shows a network's actual type (bridge) in the live XML; the migration carries the network.
        iface = "<interface type='bridge'><source network='pf-net' portid='x' bridge='pfbr0'/></interface>"
        d = pf.parse_domain(dom_xml(interfaces=iface))
        assert d['interfaces'][0]['type'] == 'network' and d['interfaces'][0]['network'] == 'pf-net'

    def test_parse_domain_without_cpu_and_memory_units(self):
        xml = dom_xml(cpu='').replace("<memory unit='KiB'>131072</memory>", "<memory unit='GiB'>2</memory>")
        d = pf.parse_domain(xml)
        assert d['cpu'] is None and d['memory_kib'] == 2 * 1024 * 1024

    def test_parse_capabilities(self):
        caps = pf.parse_capabilities(CAPS_XML.format(uuid='u-1'))
        assert caps['uuid'] == 'u-1'
        arch = caps['archs']['x86_64']
        assert {'pc', 'pc-i440fx-7.2', 'pc-q35-7.2'} <= arch['machines']
        assert arch['domain_types'] == {'qemu', 'kvm'}

    def test_host_model_cpu(self):
        xml = pf.host_model_cpu_xml(DOMCAPS_XML)
        assert "mode=\"custom\"" in xml and pf.cpu_model_of(xml) == 'EPYC'

    def test_parse_conf_and_ports(self):
        conf = pf.parse_conf(['migration_port_min = 50000', 'migration_port_max = 50010  # end',
                              'migration_host = "mig.example"', 'listen_tls = 0', 'garbage'])
        assert conf == {'migration_port_min': 50000, 'migration_port_max': 50010,
                        'migration_host': 'mig.example', 'listen_tls': 0}
        assert pf.migration_port_range(conf) == (50000, 50010)
        assert pf.migration_port_range({}) == (49152, 49215)
        assert pf.libvirt_port({}, 'tcp') == 16509 and pf.libvirt_port({'tls_port': '1234'}, 'tls') == 1234
        assert pf.libvirt_port({}, 'ssh') == 22 and pf.libvirt_port({}, 'tcp', uri_port=99) == 99

    def test_mountinfo(self):
        text = ("22 1 0:21 / / rw - ext4 /dev/sda1 rw\n"
                "40 22 0:40 / /var/lib/libvirt/images rw,relatime shared:1 - fuse.glusterfs storage-1:/vmstore rw\n"
                "41 22 0:41 / /mnt/with\\040space rw - nfs4 srv:/x rw\n")
        mounts = pf.parse_mountinfo(text)
        assert pf.filesystem_of('/var/lib/libvirt/images/a.qcow2', mounts) == ('/var/lib/libvirt/images', 'fuse.glusterfs')
        assert pf.filesystem_of('/var/lib/libvirt/imagesX/a', mounts) == ('/', 'ext4')
        assert pf.filesystem_of('/mnt/with space/disk', mounts) == ('/mnt/with space', 'nfs4')

    def test_missing_features(self):
        msg = 'the CPU is incompatible with host CPU: Host CPU does not provide required features: avx512f, vmx'
        assert pf.parse_missing_features(msg) == ['avx512f', 'vmx']
        assert pf.parse_missing_features('something else') == []


# ---------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------

class TestConnectivityChecks:
    def test_ssh(self):
        assert pf.check_ssh({'ok': True, 'elapsed_s': 0.3}, 'ssh', 'b')['status'] == 'ok'
        bad = pf.check_ssh({'ok': False, 'error': 'Permission denied'}, 'ssh', 'b')
        assert bad['status'] == 'fail' and 'Permission denied' in bad['detail'] and 'authorized_keys' in bad['remedy']
        assert pf.check_ssh({'ok': False, 'error': 'x'}, 'tls', 'b')['status'] == 'warn'

    def test_libvirt(self):
        assert pf.check_libvirt_connection('qemu+ssh://b/system', None, 0.2)['status'] == 'ok'
        c = pf.check_libvirt_connection('qemu+ssh://b/system', "Failed to connect socket: No such file")
        assert c['status'] == 'fail' and 'libvirtd' in c['remedy']

    def test_distinct_hosts(self):
        assert pf.check_distinct_hosts('a', 'b', 'u1', 'u2')['status'] == 'ok'
        same_uuid = pf.check_distinct_hosts('a', 'b', 'u1', 'u1')
        assert same_uuid['status'] == 'fail' and 'host_uuid' in same_uuid['remedy']
        assert pf.check_distinct_hosts('a', 'a', None, None)['status'] == 'fail'
        assert pf.check_distinct_hosts('a', 'localhost.localdomain', 'u1', 'u2')['status'] == 'fail'


class TestVersionCpuChecks:
    def test_versions(self):
        assert pf.check_version('libvirt', 9000000, 9000000)['status'] == 'ok'
        older = pf.check_version('qemu', 7002000, 6002000)
        assert older['status'] == 'warn' and '6.2.0' in older['detail'] and older['name'] == 'versions.qemu'
        assert pf.check_version('libvirt', None, 9000000)['status'] == 'warn'

    def test_machine_type(self):
        caps = pf.parse_capabilities(CAPS_XML.format(uuid='u'))
        dom = pf.parse_domain(dom_xml())
        assert pf.check_machine_type('vm1', dom, caps)['status'] == 'ok'
        dom['machine'] = 'pc-i440fx-8.2'
        c = pf.check_machine_type('vm1', dom, caps)
        assert c['status'] == 'fail' and 'pc-i440fx-8.2' in c['detail'] and 'pc-i440fx-7.2' in c['remedy']
        dom = pf.parse_domain(dom_xml())
        dom['emulator'] = '/opt/qemu/bin/qemu-system-x86_64'
        assert 'emulator' in pf.check_machine_type('vm1', dom, caps)['detail']
        dom = pf.parse_domain(dom_xml())
        dom['arch'] = 'aarch64'
        assert pf.check_machine_type('vm1', dom, caps)['status'] == 'fail'
        caps['archs']['x86_64']['domain_types'] = {'qemu'}
        dom = pf.parse_domain(dom_xml())
        dom['virt_type'] = 'kvm'
        assert "domain type 'kvm'" in pf.check_machine_type('vm1', dom, caps)['detail']

    def test_cpu_ok(self):
        cpu = pf.parse_domain(dom_xml())['cpu']
        assert pf.check_cpu('vm1', cpu, {'result': pf.CPU_COMPARE_SUPERSET})['status'] == 'ok'
        assert pf.check_cpu('vm1', cpu, {'result': pf.CPU_COMPARE_IDENTICAL})['status'] == 'ok'
        assert pf.check_cpu('vm1', None, None)['status'] == 'ok'

    def test_cpu_incompatible_names_features_and_baseline(self):
        cpu = pf.parse_domain(dom_xml())['cpu']
        msg = 'the CPU is incompatible with host CPU: Host CPU does not provide required features: avx512f'
        c = pf.check_cpu('vm1', cpu, {'error_code': pf.VIR_ERR_CPU_INCOMPATIBLE, 'message': msg}, 'EPYC')
        assert c['status'] == 'fail' and 'avx512f' in c['detail']
        assert 'cpu_baseline' in c['remedy'] and 'EPYC' in c['remedy']

    def test_cpu_persistent(self):
        msg = 'Host CPU does not provide required features: avx512f'
        cpu = pf.parse_domain(dom_xml())['cpu']
        c = pf.check_cpu('vm1', cpu, {'error_code': 91, 'message': msg}, which='persistent')
        assert c['name'] == 'cpu.persistent' and c['status'] == 'fail' and 'would not start' in c['detail']
        cpu['check'] = 'none'
        assert pf.check_cpu('vm1', cpu, {'error_code': 91, 'message': msg}, which='persistent')['status'] == 'warn'

    def test_cpu_passthrough_and_errors(self):
        cpu = {'mode': 'host-passthrough', 'model': None, 'check': None, 'features': [], 'xml': ''}
        assert pf.check_cpu('vm1', cpu, None)['status'] == 'warn'
        cpu = pf.parse_domain(dom_xml())['cpu']
        assert pf.check_cpu('vm1', cpu, {'error_code': 8, 'message': 'bad'})['status'] == 'warn'
        assert pf.check_cpu('vm1', cpu, None)['status'] == 'warn'


def _disk(**kw):
    d = {'target': 'vda', 'device': 'disk', 'type': 'file', 'path': '/var/lib/libvirt/images/vm1.qcow2',
         'format': 'qcow2', 'cache': 'none', 'readonly': False, 'shareable': False, 'protocol': None,
         'pool': None, 'volume': None}
    d.update(kw)
    return d


GLUSTER = ('/var/lib/libvirt/images', 'fuse.glusterfs')
LOCAL = ('/', 'ext4')


class TestStorageCheck:
    def test_shared_proven(self):
        c = pf.check_disk('vm1', _disk(), {'fs': GLUSTER, 'probe': {'method': 'ssh', 'seen': True},
                                           'src_qemu_version': 7002000})
        assert c['status'] == 'ok' and 'shared storage' in c['detail'] and c['guest'] == 'vm1'

    def test_same_files_but_not_a_shared_fs_for_libvirt(self):
        c = pf.check_disk('vm1', _disk(), {'fs': ('/srv', 'xfs'), 'probe': {'method': 'ssh', 'seen': True}})
        assert c['status'] == 'fail' and 'unsafe' in c['detail']

    def test_cache_mode_unsafe_only_with_old_qemu(self):
        facts = {'fs': GLUSTER, 'probe': {'method': 'ssh', 'seen': True}}
        disk = _disk(cache='writeback')
        assert pf.check_disk('vm1', disk, dict(facts, src_qemu_version=7002000))['status'] == 'ok'
        c = pf.check_disk('vm1', disk, dict(facts, src_qemu_version=3001000))
        assert c['status'] == 'fail' and "cache='writeback'" in c['detail']
        assert pf.check_disk('vm1', disk, dict(facts, fs=('/c', 'gfs2'), src_qemu_version=3001000))['status'] == 'ok'

    def test_local_copyable_warns_naming_disk(self):
        c = pf.check_disk('vm1', _disk(path='/var/lib/libvirt/local/vm1.qcow2'), {
            'fs': LOCAL, 'probe': {'method': 'ssh', 'seen': False}, 'dest_file': {'exists': False},
            'dest_pool': {'name': 'local', 'active': True, 'available': 10 * MIB}, 'need_bytes': MIB})
        assert c['status'] == 'warn' and 'copy_storage' in c['detail'] and 'vda' in c['detail']
        assert 'copy_storage' in c['remedy']

    def test_local_without_pool_or_space_fails(self):
        base = {'fs': LOCAL, 'probe': {'method': 'ssh', 'seen': False}, 'dest_file': {'exists': False}, 'need_bytes': 5 * MIB}
        disk = _disk(path='/var/lib/libvirt/local/vm1.qcow2')
        c = pf.check_disk('vm1', disk, dict(base, dest_pool={'error': 'Storage pool not found'}))
        assert c['status'] == 'fail' and 'pool-define-as' in c['remedy']
        c = pf.check_disk('vm1', disk, dict(base, dest_pool={'name': 'local', 'active': True, 'available': MIB}))
        assert c['status'] == 'fail' and 'free' in c['detail']
        c = pf.check_disk('vm1', disk, dict(base, dest_pool={'name': 'local', 'active': False}))
        assert c['status'] == 'fail' and 'pool-start' in c['remedy']

    def test_local_with_foreign_file_at_same_path(self):
        c = pf.check_disk('vm1', _disk(), {'fs': LOCAL, 'probe': {'seen': False},
                                           'dest_file': {'exists': True, 'size': 3 * MIB}})
        assert c['status'] == 'fail' and 'write over it' in c['detail']

    def test_unprovable(self):
        c = pf.check_disk('vm1', _disk(), {'fs': GLUSTER, 'probe': {'seen': None, 'write_error': 'read-only fs'}})
        assert c['status'] == 'warn' and 'read-only fs' in c['detail']

    def test_other_disk_kinds(self):
        assert pf.check_disk('vm1', _disk(path=None, device='cdrom'), {})['status'] == 'ok'
        assert pf.check_disk('vm1', _disk(type='network', protocol='rbd', path='pool/img'), {})['status'] == 'ok'
        assert pf.check_disk('vm1', _disk(type='nvme', path='nvme:pci'), {})['status'] == 'fail'
        blk = _disk(type='block', path='/dev/sdb')
        assert pf.check_disk('vm1', blk, {'dest_file': {'exists': False}})['status'] == 'fail'
        assert pf.check_disk('vm1', blk, {'dest_file': {'exists': True, 'block': True, 'size': MIB}})['status'] == 'warn'
        ro = _disk(readonly=True, path='/isos/x.iso')
        assert pf.check_disk('vm1', ro, {'probe': {'seen': False}, 'dest_file': {'exists': True}})['status'] == 'ok'
        assert pf.check_disk('vm1', ro, {'probe': {'seen': False}, 'dest_file': {'exists': False}})['status'] == 'fail'


class TestNetworkCheck:
    NET = {'type': 'network', 'network': 'pf-net', 'bridge': None, 'dev': None, 'target': 'vnet0', 'mac': '52:54:00:00:00:01'}

    def test_network(self):
        assert pf.check_interface('vm1', self.NET, {'exists': True, 'active': True, 'bridge': 'virbr1'})['status'] == 'ok'
        missing = pf.check_interface('vm1', self.NET, {'exists': False})
        assert missing['status'] == 'fail' and "'pf-net' is not defined" in missing['detail']
        assert 'net-define' in missing['remedy']
        inactive = pf.check_interface('vm1', self.NET, {'exists': True, 'active': False})
        assert inactive['status'] == 'fail' and 'net-start' in inactive['remedy']

    def test_bridge_and_direct(self):
        br = dict(self.NET, type='bridge', network=None, bridge='br0')
        assert pf.check_interface('vm1', br, None, {'exists': True, 'bridge': True, 'operstate': 'up'})['status'] == 'ok'
        assert pf.check_interface('vm1', br, None, {'exists': False, 'bridge': False})['status'] == 'fail'
        assert pf.check_interface('vm1', br, None, {'exists': True, 'bridge': False})['status'] == 'fail'
        assert pf.check_interface('vm1', br, None, {'exists': True, 'bridge': True, 'operstate': 'down'})['status'] == 'warn'
        assert pf.check_interface('vm1', br, None, None)['status'] == 'warn'
        direct = dict(self.NET, type='direct', network=None, dev='eth1')
        assert pf.check_interface('vm1', direct, None, {'exists': True, 'bridge': False})['status'] == 'ok'

    def test_other_types(self):
        assert pf.check_interface('vm1', dict(self.NET, type='hostdev'))['status'] == 'fail'
        assert pf.check_interface('vm1', dict(self.NET, type='user'))['status'] == 'ok'
        assert pf.check_interface('vm1', dict(self.NET, type='vhostuser'))['status'] == 'warn'


class TestFirewallChecks:
    def test_tcp_port(self):
        assert pf.check_tcp_port('firewall.ssh', 'b', 22, {'ok': True, 'ms': 0.3}, 'ssh')['status'] == 'ok'
        refused = pf.check_tcp_port('firewall.libvirt', 'b', 16509, {'ok': False, 'error': 'refused'}, 'libvirt over tcp')
        assert refused['status'] == 'fail' and 'nothing listens' in refused['detail']
        blocked = pf.check_tcp_port('firewall.libvirt', 'b', 16514, {'ok': False, 'error': 'unreachable'}, 'x')
        assert 'firewall-cmd' in blocked['remedy'] and '16514' in blocked['remedy']

    def test_migration_ports_all_open(self):
        ports = list(range(49152, 49216))
        results = dict((p, {'ok': True}) for p in ports)
        c = pf.check_migration_ports('b', (49152, 49215), ports, [], results)
        assert c['status'] == 'ok' and 'all 64' in c['detail']

    def test_migration_ports_blocked(self):
        ports = list(range(49152, 49216))
        results = dict((p, {'ok': p < 49160}) for p in ports)
        for p in ports[8:]:
            results[p]['error'] = 'unreachable'
        c = pf.check_migration_ports('b', (49152, 49215), ports, [], results)
        assert c['status'] == 'fail' and '49160-49215' in c['detail'] and 'no route to host' in c['detail']
        assert '--add-port=49152-49215/tcp' in c['remedy']

    def test_migration_ports_untestable(self):
        assert pf.check_migration_ports('b', (1, 2), [], [1, 2], {})['status'] == 'warn'
        assert pf.check_migration_ports('b', (1, 2), [], [], {}, listener_error='ssh failed')['status'] == 'warn'

    def test_migration_address(self):
        assert pf.check_migration_address('b', ['10.0.0.2'])['status'] == 'ok'
        assert pf.check_migration_address('b', ['127.0.1.1'])['status'] == 'fail'
        c = pf.check_migration_address('b', [], error='Name or service not known')
        assert c['status'] == 'fail' and 'migration_host' in c['remedy']


class TestCapacityChecks:
    def test_memory(self):
        assert pf.check_memory('vm1', 131072, 1024 * MIB, 256)['status'] == 'ok'
        c = pf.check_memory('vm1', 131072, 300 * MIB, 256)
        assert c['status'] == 'fail' and 'only' in c['detail']
        assert pf.check_memory('vm1', 131072, None, 256)['status'] == 'warn'

    def test_memory_total(self):
        assert pf.check_memory_total([131072, 131072], 600 * MIB, 256)['status'] == 'ok'
        assert pf.check_memory_total([131072, 131072], 400 * MIB, 256)['status'] == 'fail'

    def test_available_memory(self):
        assert pf.available_memory({'free': 100, 'buffers': 10, 'cached': 50, 'total': 1000}) == 160 * 1024
        assert pf.available_memory(None, 12345) == 12345

    def test_vcpus(self):
        assert pf.check_vcpus(2, 2, 2, 4.0)['status'] == 'ok'
        c = pf.check_vcpus(2, 8, 2, 4.0)
        assert c['status'] == 'warn' and '5.00 per CPU' in c['detail']
        assert pf.check_vcpus(0, 1, 1, 4.0)['status'] == 'warn'

    def test_bandwidth_and_estimate(self):
        ok = pf.check_bandwidth({'mib_s': 300.0, 'bytes': 900 * MIB, 'seconds': 3.0})
        assert ok['status'] == 'ok' and '300.0 MiB/s' in ok['detail']
        assert pf.check_bandwidth({'mib_s': 5.0, 'bytes': 15 * MIB, 'seconds': 3.0}, min_mib_s=100)['status'] == 'warn'
        assert pf.check_bandwidth({'error': 'refused'})['status'] == 'warn'
        assert pf.estimate_seconds(256 * MIB, 0, 128) == 2.0
        assert pf.estimate_seconds(256 * MIB, 256 * MIB, 128) == 4.0
        assert pf.estimate_seconds(1, 0, None) is None


# ---------------------------------------------------------------------------
# the destination helper, run locally (sh -c instead of ssh)
# ---------------------------------------------------------------------------

class LocalHelper(pf.SshHelper):
    """The real helper script and protocol, on this machine instead of over SSH."""

    def argv(self, command):
        return ['sh', '-c', command.replace('P=/usr/bin/python3;', 'P=%s;' % _python())]


def _python():
    import sys
    return sys.executable


def _free_port_range(count=4):
    """A run of free local ports (best effort)."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    base = s.getsockname()[1]
    s.close()
    return base, base + count - 1


class TestRemoteHelper:
    def test_facts_listen_connect_and_bandwidth(self, tmp_path):
        probe = tmp_path / 'kvmops-preflight-x.probe'
        probe.write_text('tok123')
        conf = tmp_path / 'qemu.conf'
        conf.write_text('# comment\nmigration_port_min = 49152\n')
        helper = LocalHelper(parse_destination('localhost'))
        helper.start({'token': 'tok123', 'files': [str(probe), str(tmp_path / 'missing')], 'read': [str(probe)],
                      'netdevs': ['lo', 'nonexistent0'], 'conf_files': [str(conf), str(tmp_path / 'nope.conf')],
                      'max_seconds': 20})
        try:
            facts = helper.read_facts(10)
            assert facts, helper.error
            assert facts['hostname'] == socket.gethostname()
            assert facts['files'][str(probe)]['content'] == 'tok123'
            assert facts['files'][str(tmp_path / 'missing')] == {'exists': False, 'error': 'No such file or directory'}
            assert facts['netdevs']['lo']['exists'] and not facts['netdevs']['nonexistent0']['exists']
            assert facts['conf'][str(conf)] == ['migration_port_min = 49152'] and facts['conf'][str(tmp_path / 'nope.conf')] is None
            low, high = _free_port_range()
            blocker = socket.socket()
            blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                blocker.bind(('0.0.0.0', high))
                blocker.listen(1)
                busy_expected = [high]
            except OSError:
                busy_expected = []
            listening = helper.listen(range(low, high + 1))
            blocker.close()
            assert listening, helper.error
            assert high not in listening['bound'] or not busy_expected
            results = pf.tcp_connect_many('127.0.0.1', listening['bound'], timeout=3, expect_token='tok123')
            assert all(r['ok'] for r in results.values()), results
            wrong = pf.tcp_connect_many('127.0.0.1', listening['bound'][:1], timeout=3, expect_token='other')
            assert wrong[listening['bound'][0]]['error'] == 'wrong_peer'
            bw = pf.measure_bandwidth('127.0.0.1', listening['bound'][0], 'tok123', seconds=0.3)
            assert bw.get('mib_s', 0) > 0 and bw['bytes'] > 0, bw
        finally:
            helper.close()
        assert helper.proc.returncode == 0

    def test_ssh_failure_is_reported(self):
        class Failing(pf.SshHelper):
            def argv(self, command):
                return ['sh', '-c', 'echo "ssh: connect to host b port 22: Connection refused" >&2; exit 255']
        helper = Failing(parse_destination('b'))
        helper.start({'token': 't'})
        assert helper.read_facts(5) is None
        assert 'Connection refused' in helper.error
        helper.close()

    def test_remote_command_is_shell_safe(self):
        cmd = pf.remote_command({'token': "it's \"quoted\"", 'files': ['/a b/c']})
        out = subprocess.run(['sh', '-n', '-c', cmd], capture_output=True, check=False)
        assert out.returncode == 0

    def test_connect_refused_and_closed_port(self):
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
        s.close()
        res = pf.tcp_connect_many('127.0.0.1', [port], timeout=2)
        assert res[port] == {'ok': False, 'error': 'refused'}


# ---------------------------------------------------------------------------
# the runner against fake libvirt connections
# ---------------------------------------------------------------------------

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
    monkeypatch.setattr(pf, 'is_libvirt_error', lambda exc: isinstance(exc, FakeLvError))


class FakeDom:
    def __init__(self, xml, inactive=None):
        self.xml, self.inactive = xml, inactive or xml

    def name(self):
        return pf.parse_domain(self.xml)['name']

    def XMLDesc(self, flags=0):  # noqa: N802
        return self.inactive if flags & pf.VIR_DOMAIN_XML_INACTIVE else self.xml

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
    monkeypatch.setattr(pf, 'resolve', lambda host: ['192.0.2.10'])
    monkeypatch.setattr(pf, 'tcp_connect_many', lambda addr, ports, timeout=3, expect_token=None:
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
    return pf.PreflightRunner(FakeClient(src, dst, dst_error), p, ssh_factory=ssh_factory(**(ssh_kw or {})),
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
        assert pf.should_fail(result['checks'], 'fail')

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
