# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""virt_cpu_baseline's logic: the host-model CPU, what decides a guest's CPU, the guest <cpu> built
from a baseline, and the manager over a fake connection."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    DomainNotFoundError,
    InvalidInputError,
    KvmopsError,
)
from ansible_collections.kvmops.migration.plugins.module_utils._module_wrapper import spec_defaults
from ansible_collections.kvmops.migration.plugins.module_utils._cpu_baseline import (
    ARGUMENT_SPEC,
    VIR_CONNECT_BASELINE_CPU_MIGRATABLE,
    CpuBaselineManager,
    Hypervisor,
    cpu_signature,
    describe_cpu,
    guest_cpu,
    host_model_cpu,
    unknown_feature,
    validate_cpus,
    with_guest_cpu,
    without_feature,
)
from libvirt_doubles import FakeConn, FakeKvm, FakeLibvirtError

CAPS = ("<domainCapabilities><cpu><mode name='host-passthrough' supported='yes'/>"
        "<mode name='host-model' supported='{supported}'><model fallback='forbid'>EPYC</model>"
        "<vendor>AMD</vendor><feature policy='require' name='x2apic'/></mode></cpu></domainCapabilities>")
BASELINE = ("<cpu mode='custom' match='exact'><model fallback='forbid'>Westmere</model><vendor>Intel</vendor>"
            "<feature policy='require' name='vmx'/><feature policy='disable' name='invtsc'/></cpu>")
GUEST = ("<domain type='kvm'><name>{name}</name><os><type>hvm</type></os><features><acpi/></features>"
         "<cpu mode='host-model' check='partial'><topology sockets='1' cores='2' threads='1'/></cpu>"
         "<devices/></domain>")
GUEST_WITHOUT_CPU = "<domain type='kvm'><name>{name}</name><os><type>hvm</type></os><features><acpi/></features><devices/></domain>"


def params(**given):
    return spec_defaults(ARGUMENT_SPEC, **given)


def baseline():
    return ET.fromstring(BASELINE)


def lab(comparison=2, supported='yes', guests=()):
    conn = FakeConn()
    conn.domain_capabilities = CAPS.format(supported=supported)
    conn.baseline = BASELINE
    conn.comparison = comparison
    for name, template, active, persistent in guests:
        conn.add_domain(name, template.format(name=name), active=active, persistent=persistent)
    return conn


def test_host_model_cpu_is_a_custom_exact_cpu_of_the_model_vendor_and_features():
    cpu = ET.fromstring(host_model_cpu(CAPS.format(supported='yes'), 'kvm'))
    assert (cpu.get('mode'), cpu.get('match')) == ('custom', 'exact')
    assert describe_cpu(cpu) == ('EPYC', 'AMD', [('require', 'x2apic')])


def test_an_unsupported_host_model_says_which_virt_type_to_use():
    with pytest.raises(KvmopsError) as refused:
        host_model_cpu(CAPS.format(supported='no'), 'kvm')
    assert 'virt_type kvm' in refused.value.msg and 'qemu is TCG' in refused.value.remedy


@pytest.mark.parametrize('cpus,include_host,words', [
    (['<cpu'], False, 'cpus[0] is not valid XML'),
    (['<cpu/>', '<domain/>'], True, 'cpus[1] is not a <cpu> definition'),
    ([], False, 'No CPU to compute a baseline from'),
])
def test_bad_cpus_are_refused(cpus, include_host, words):
    with pytest.raises(InvalidInputError) as refused:
        validate_cpus(cpus, include_host)
    assert words in refused.value.msg


def test_the_signature_ignores_topology_and_feature_order():
    one = ET.fromstring("<cpu><model>M</model><feature name='b'/><feature name='a'/><topology sockets='1'/></cpu>")
    two = ET.fromstring("<cpu mode='custom' match='exact'><model>M</model><feature name='a'/><feature name='b'/></cpu>")
    assert cpu_signature(one) == cpu_signature(two)
    assert cpu_signature(None) is None


def test_guest_cpu_takes_the_baseline_model_and_keeps_the_guests_shape():
    existing = ET.fromstring(GUEST.format(name='g')).find('cpu')
    cpu = guest_cpu(existing, baseline())
    assert cpu.get('check') == 'partial' and cpu.find('model').get('fallback') == 'forbid'
    assert describe_cpu(cpu) == describe_cpu(baseline())
    assert cpu.find('topology').get('cores') == '2'


def test_with_guest_cpu_replaces_the_cpu_in_place_or_puts_it_after_features():
    domain = ET.fromstring(GUEST.format(name='g'))
    before, after = with_guest_cpu(domain, baseline())
    assert 'host-model' in before and 'Westmere' in after
    assert [child.tag for child in domain] == ['name', 'os', 'features', 'cpu', 'devices']
    assert with_guest_cpu(domain, baseline()) is None, 'a guest that has the baseline needs no change'
    bare = ET.fromstring(GUEST_WITHOUT_CPU.format(name='g'))
    before, dummy = with_guest_cpu(bare, baseline())
    assert before == '' and [child.tag for child in bare] == ['name', 'os', 'features', 'cpu', 'devices']


def test_hypervisor_call_args_are_in_libvirts_order():
    target = Hypervisor.from_params(params(virt_type='qemu', arch='x86_64', machine='pc', emulator='/usr/bin/qemu'))
    assert target.call_args() == ('/usr/bin/qemu', 'x86_64', 'pc', 'qemu')


def test_the_baseline_of_this_host_and_given_cpus():
    conn = lab()
    result = CpuBaselineManager(FakeKvm(conn, params(cpus=[BASELINE]))).run()
    assert conn.baseline_args['cpus'][0] == BASELINE and 'EPYC' in conn.baseline_args['cpus'][1]
    assert conn.baseline_args['flags'] == VIR_CONNECT_BASELINE_CPU_MIGRATABLE
    assert result['baseline']['model'] == 'Westmere' and result['baseline']['cpu_count'] == 2
    assert result['baseline']['features'] == [dict(name='invtsc', policy='disable'), dict(name='vmx', policy='require')]
    assert result['compatible'] and result['comparison'] == 'superset' and not result['changed']
    assert 'diff' not in result


def test_unknown_feature_and_without_feature():
    assert unknown_feature('internal error: Unknown CPU feature fdp-excptn-only') == 'fdp-excptn-only'
    assert unknown_feature('internal error: Unknown CPU model Foo') is None
    assert 'vmx' not in without_feature(BASELINE, 'vmx') and 'invtsc' in without_feature(BASELINE, 'vmx')
    assert without_feature(BASELINE, 'nothing') == BASELINE


def test_features_an_older_libvirt_does_not_know_are_left_out_and_reported():
    # A trixie host's CPU (libvirt 11.3) names features bookworm's libvirt 9.0 does not know.
    conn = lab()
    conn.known_features = {'x2apic', 'vmx', 'invtsc'}
    newer = ("<cpu mode='custom' match='exact'><model>EPYC</model><feature policy='require' name='x2apic'/>"
             "<feature policy='require' name='fdp-excptn-only'/><feature policy='require' name='new2'/></cpu>")
    result = CpuBaselineManager(FakeKvm(conn, params(cpus=[newer]))).run()
    assert result['baseline']['ignored_features'] == ['fdp-excptn-only', 'new2']
    assert 'fdp-excptn-only' not in conn.baseline_args['cpus'][0] and 'x2apic' in conn.baseline_args['cpus'][0]
    assert result['libvirt_version'] == 9000000


def test_a_cpu_named_by_a_model_an_older_libvirt_does_not_know_is_left_out_and_reported():
    # A trixie host on a new CPU generation: libvirt 11.3 calls it EPYC-Genoa, unknown to 9.0.
    conn = lab()
    conn.known_models = {'EPYC'}
    older = "<cpu mode='custom' match='exact'><model>EPYC</model></cpu>"
    newer = "<cpu mode='custom' match='exact'><model>EPYC-Genoa</model></cpu>"
    result = CpuBaselineManager(FakeKvm(conn, params(cpus=[older, newer]))).run()
    assert result['baseline']['ignored_features'] == ['model EPYC-Genoa']
    assert older in conn.baseline_args['cpus'] and newer not in conn.baseline_args['cpus']


def test_no_cpu_this_libvirt_can_read_is_an_error_with_the_remedy():
    conn = lab()
    conn.known_models = {'EPYC'}
    newer = "<cpu mode='custom' match='exact'><model>EPYC-Genoa</model></cpu>"
    with pytest.raises(Exception) as raised:
        CpuBaselineManager(FakeKvm(conn, params(cpus=[newer], include_host=False))).run()
    assert 'Unknown CPU model EPYC-Genoa' in str(raised.value.args[0] if raised.value.args else raised.value)


def test_another_baseline_error_names_the_remedy():
    conn = lab()

    def refuse(*dummy_args):
        raise FakeLibvirtError('internal error: Unknown CPU model Zen9', 1)
    conn.baselineHypervisorCPU = refuse
    with pytest.raises(KvmopsError) as refused:
        CpuBaselineManager(FakeKvm(conn, params())).run()
    assert 'Unknown CPU model Zen9' in refused.value.msg and 'oldest libvirt' in refused.value.remedy


def test_an_incompatible_host_fails_unless_allowed():
    with pytest.raises(KvmopsError) as refused:
        CpuBaselineManager(FakeKvm(lab(comparison=0), params())).run()
    assert refused.value.msg == 'This hypervisor cannot run the baseline CPU Westmere (comparison: incompatible)'
    result = CpuBaselineManager(FakeKvm(lab(comparison=0), params(require_compatible=False))).run()
    assert not result['compatible'] and result['comparison'] == 'incompatible'


def test_guests_get_the_baseline_missing_ones_are_skipped_and_diff_mode_shows_each_cpu():
    conn = lab(guests=[('a', GUEST, True, True), ('b', GUEST_WITHOUT_CPU, False, True)])
    kvm = FakeKvm(conn, params(domains=['a', 'b', 'zz']), diff_mode=True)
    result = CpuBaselineManager(kvm).run()
    assert result['changed'] and result['domains'] == [
        dict(name='a', found=True, changed=True, restart_required=True),
        dict(name='b', found=True, changed=True, restart_required=False),
        dict(name='zz', found=False, changed=False, restart_required=False),
    ]
    assert conn.calls == [('defineXML', 'a'), ('defineXML', 'b')]
    assert [entry['before_header'] for entry in result['diff']] == ['a <cpu>', 'b <cpu>']
    assert result['diff'][1]['before'] == '\n' and 'Westmere' in result['diff'][1]['after']
    # Run again: both have the baseline now.
    again = CpuBaselineManager(FakeKvm(conn, params(domains=['a', 'b']), diff_mode=True)).run()
    assert not again['changed'] and again['diff'] == []


def test_check_mode_defines_no_guest():
    conn = lab(guests=[('a', GUEST, True, True)])
    result = CpuBaselineManager(FakeKvm(conn, params(domains=['a']), check_mode=True)).run()
    assert result['changed'] and conn.calls == [] and 'host-model' in conn.domains['a'].xml


def test_a_missing_guest_fails_when_asked_and_a_transient_one_always():
    with pytest.raises(DomainNotFoundError):
        CpuBaselineManager(FakeKvm(lab(), params(domains=['zz'], missing_domains='fail'))).run()
    conn = lab(guests=[('t', GUEST, True, False)])
    with pytest.raises(InvalidInputError) as refused:
        CpuBaselineManager(FakeKvm(conn, params(domains=['t']))).run()
    assert 'transient' in refused.value.msg and conn.calls == []
