# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight's checks of connectivity, versions, CPU, networks, firewall, capacity and bandwidth."""

from __future__ import annotations

from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import (
    parse_capabilities,
    parse_domain,
)
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_checks import (
    check_bandwidth,
    check_cpu,
    check_distinct_hosts,
    check_interface,
    check_libvirt_connection,
    check_machine_type,
    check_memory,
    check_memory_total,
    check_migration_address,
    check_migration_ports,
    check_ssh,
    check_tcp_port,
    check_vcpus,
    check_version,
    compress_ranges,
    CPU_COMPARE_IDENTICAL,
    CPU_COMPARE_SUPERSET,
    estimate_seconds,
    parse_missing_features,
    VIR_ERR_CPU_INCOMPATIBLE,
)
from ansible_collections.kvmops.migration.tests.unit.plugins.module_utils.preflight_data import dom_xml, CAPS_XML, MIB


class TestHelpers:
    def test_compress_ranges(self):
        assert compress_ranges([49155, 49152, 49153, 49154, 49200]) == '49152-49155, 49200'
        assert compress_ranges([]) == ''

    def test_missing_features(self):
        msg = 'the CPU is incompatible with host CPU: Host CPU does not provide required features: avx512f, vmx'
        assert parse_missing_features(msg) == ['avx512f', 'vmx']
        assert parse_missing_features('something else') == []


class TestConnectivityChecks:
    def test_ssh(self):
        assert check_ssh({'ok': True, 'elapsed_s': 0.3}, 'ssh', 'b')['status'] == 'ok'
        bad = check_ssh({'ok': False, 'error': 'Permission denied'}, 'ssh', 'b')
        assert bad['status'] == 'fail' and 'Permission denied' in bad['detail'] and 'authorized_keys' in bad['remedy']
        assert check_ssh({'ok': False, 'error': 'x'}, 'tls', 'b')['status'] == 'warn'

    def test_libvirt(self):
        assert check_libvirt_connection('qemu+ssh://b/system', None, 0.2)['status'] == 'ok'
        c = check_libvirt_connection('qemu+ssh://b/system', "Failed to connect socket: No such file")
        assert c['status'] == 'fail' and 'libvirtd' in c['remedy']

    def test_distinct_hosts(self):
        assert check_distinct_hosts('a', 'b', 'u1', 'u2')['status'] == 'ok'
        same_uuid = check_distinct_hosts('a', 'b', 'u1', 'u1')
        assert same_uuid['status'] == 'fail' and 'host_uuid' in same_uuid['remedy']
        assert check_distinct_hosts('a', 'a', None, None)['status'] == 'fail'
        assert check_distinct_hosts('a', 'localhost.localdomain', 'u1', 'u2')['status'] == 'fail'


class TestVersionCpuChecks:
    def test_versions(self):
        assert check_version('libvirt', 9000000, 9000000)['status'] == 'ok'
        older = check_version('qemu', 7002000, 6002000)
        assert older['status'] == 'warn' and '6.2.0' in older['detail'] and older['name'] == 'versions.qemu'
        assert check_version('libvirt', None, 9000000)['status'] == 'warn'

    def test_machine_type(self):
        caps = parse_capabilities(CAPS_XML.format(uuid='u'))
        dom = parse_domain(dom_xml())
        assert check_machine_type('vm1', dom, caps)['status'] == 'ok'
        dom['machine'] = 'pc-i440fx-8.2'
        c = check_machine_type('vm1', dom, caps)
        assert c['status'] == 'fail' and 'pc-i440fx-8.2' in c['detail'] and 'pc-i440fx-7.2' in c['remedy']
        dom = parse_domain(dom_xml())
        dom['emulator'] = '/opt/qemu/bin/qemu-system-x86_64'
        assert 'emulator' in check_machine_type('vm1', dom, caps)['detail']
        dom = parse_domain(dom_xml())
        dom['arch'] = 'aarch64'
        assert check_machine_type('vm1', dom, caps)['status'] == 'fail'
        caps['archs']['x86_64']['domain_types'] = {'qemu'}
        dom = parse_domain(dom_xml())
        dom['virt_type'] = 'kvm'
        assert "domain type 'kvm'" in check_machine_type('vm1', dom, caps)['detail']

    def test_cpu_ok(self):
        cpu = parse_domain(dom_xml())['cpu']
        assert check_cpu('vm1', cpu, {'result': CPU_COMPARE_SUPERSET})['status'] == 'ok'
        assert check_cpu('vm1', cpu, {'result': CPU_COMPARE_IDENTICAL})['status'] == 'ok'
        assert check_cpu('vm1', None, None)['status'] == 'ok'

    def test_cpu_incompatible_names_features_and_baseline(self):
        cpu = parse_domain(dom_xml())['cpu']
        msg = 'the CPU is incompatible with host CPU: Host CPU does not provide required features: avx512f'
        c = check_cpu('vm1', cpu, {'error_code': VIR_ERR_CPU_INCOMPATIBLE, 'message': msg}, 'EPYC')
        assert c['status'] == 'fail' and 'avx512f' in c['detail']
        assert 'cpu_baseline' in c['remedy'] and 'EPYC' in c['remedy']

    def test_cpu_persistent(self):
        msg = 'Host CPU does not provide required features: avx512f'
        cpu = parse_domain(dom_xml())['cpu']
        c = check_cpu('vm1', cpu, {'error_code': 91, 'message': msg}, which='persistent')
        assert c['name'] == 'cpu.persistent' and c['status'] == 'fail' and 'would not start' in c['detail']
        cpu['check'] = 'none'
        assert check_cpu('vm1', cpu, {'error_code': 91, 'message': msg}, which='persistent')['status'] == 'warn'

    def test_cpu_passthrough_and_errors(self):
        cpu = {'mode': 'host-passthrough', 'model': None, 'check': None, 'features': [], 'xml': ''}
        assert check_cpu('vm1', cpu, None)['status'] == 'warn'
        cpu = parse_domain(dom_xml())['cpu']
        assert check_cpu('vm1', cpu, {'error_code': 8, 'message': 'bad'})['status'] == 'warn'
        assert check_cpu('vm1', cpu, None)['status'] == 'warn'


class TestNetworkCheck:
    NET = {'type': 'network', 'network': 'pf-net', 'bridge': None, 'dev': None, 'target': 'vnet0', 'mac': '52:54:00:00:00:01'}

    def test_network(self):
        assert check_interface('vm1', self.NET, {'exists': True, 'active': True, 'bridge': 'virbr1'})['status'] == 'ok'
        missing = check_interface('vm1', self.NET, {'exists': False})
        assert missing['status'] == 'fail' and "'pf-net' is not defined" in missing['detail']
        assert 'net-define' in missing['remedy']
        inactive = check_interface('vm1', self.NET, {'exists': True, 'active': False})
        assert inactive['status'] == 'fail' and 'net-start' in inactive['remedy']

    def test_bridge_and_direct(self):
        br = dict(self.NET, type='bridge', network=None, bridge='br0')
        assert check_interface('vm1', br, None, {'exists': True, 'bridge': True, 'operstate': 'up'})['status'] == 'ok'
        assert check_interface('vm1', br, None, {'exists': False, 'bridge': False})['status'] == 'fail'
        assert check_interface('vm1', br, None, {'exists': True, 'bridge': False})['status'] == 'fail'
        assert check_interface('vm1', br, None, {'exists': True, 'bridge': True, 'operstate': 'down'})['status'] == 'warn'
        assert check_interface('vm1', br, None, None)['status'] == 'warn'
        direct = dict(self.NET, type='direct', network=None, dev='eth1')
        assert check_interface('vm1', direct, None, {'exists': True, 'bridge': False})['status'] == 'ok'

    def test_other_types(self):
        assert check_interface('vm1', dict(self.NET, type='hostdev'))['status'] == 'fail'
        assert check_interface('vm1', dict(self.NET, type='user'))['status'] == 'ok'
        assert check_interface('vm1', dict(self.NET, type='vhostuser'))['status'] == 'warn'


class TestFirewallChecks:
    def test_tcp_port(self):
        assert check_tcp_port('firewall.ssh', 'b', 22, {'ok': True, 'ms': 0.3}, 'ssh')['status'] == 'ok'
        refused = check_tcp_port('firewall.libvirt', 'b', 16509, {'ok': False, 'error': 'refused'}, 'libvirt over tcp')
        assert refused['status'] == 'fail' and 'nothing listens' in refused['detail']
        blocked = check_tcp_port('firewall.libvirt', 'b', 16514, {'ok': False, 'error': 'unreachable'}, 'x')
        assert 'firewall-cmd' in blocked['remedy'] and '16514' in blocked['remedy']

    def test_migration_ports_all_open(self):
        ports = list(range(49152, 49216))
        results = dict((p, {'ok': True}) for p in ports)
        c = check_migration_ports('b', (49152, 49215), tested=ports, results=results)
        assert c['status'] == 'ok' and 'all 64' in c['detail']

    def test_migration_ports_blocked(self):
        ports = list(range(49152, 49216))
        results = dict((p, {'ok': p < 49160}) for p in ports)
        for p in ports[8:]:
            results[p]['error'] = 'unreachable'
        c = check_migration_ports('b', (49152, 49215), tested=ports, results=results)
        assert c['status'] == 'fail' and '49160-49215' in c['detail'] and 'no route to host' in c['detail']
        assert '--add-port=49152-49215/tcp' in c['remedy']

    def test_migration_ports_untestable(self):
        assert check_migration_ports('b', (1, 2), busy=[1, 2])['status'] == 'warn'
        assert check_migration_ports('b', (1, 2), listener_error='ssh failed')['status'] == 'warn'

    def test_migration_address(self):
        assert check_migration_address('b', ['10.0.0.2'])['status'] == 'ok'
        assert check_migration_address('b', ['127.0.1.1'])['status'] == 'fail'
        c = check_migration_address('b', [], error='Name or service not known')
        assert c['status'] == 'fail' and 'migration_host' in c['remedy']


class TestCapacityChecks:
    def test_memory(self):
        assert check_memory('vm1', 131072, 1024 * MIB, 256)['status'] == 'ok'
        c = check_memory('vm1', 131072, 300 * MIB, 256)
        assert c['status'] == 'fail' and 'only' in c['detail']
        assert check_memory('vm1', 131072, None, 256)['status'] == 'warn'

    def test_memory_total(self):
        assert check_memory_total([131072, 131072], 600 * MIB, 256)['status'] == 'ok'
        assert check_memory_total([131072, 131072], 400 * MIB, 256)['status'] == 'fail'

    def test_vcpus(self):
        assert check_vcpus(2, 2, 2, 4.0)['status'] == 'ok'
        c = check_vcpus(2, 8, 2, 4.0)
        assert c['status'] == 'warn' and '5.00 per CPU' in c['detail']
        assert check_vcpus(0, 1, 1, 4.0)['status'] == 'warn'

    def test_bandwidth_and_estimate(self):
        ok = check_bandwidth({'mib_s': 300.0, 'bytes': 900 * MIB, 'seconds': 3.0})
        assert ok['status'] == 'ok' and '300.0 MiB/s' in ok['detail']
        assert check_bandwidth({'mib_s': 5.0, 'bytes': 15 * MIB, 'seconds': 3.0}, min_mib_s=100)['status'] == 'warn'
        assert check_bandwidth({'error': 'refused'})['status'] == 'warn'
        assert estimate_seconds(256 * MIB, 0, 128) == 2.0
        assert estimate_seconds(256 * MIB, 256 * MIB, 128) == 4.0
        assert estimate_seconds(1, 0, None) is None
