# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Versions, machine type and CPU between a newer and an older host (a cluster mid-upgrade):
what virt_migrate's precheck and the preflight say, and the remedy they name."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils import _compat_checks
from ansible_collections.kvmops.migration.plugins.module_utils._compat_checks import guest_compatibility
from ansible_collections.kvmops.migration.plugins.module_utils._migration_history import HistoryEntry
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_checks import (
    check_cpu,
    check_machine_type,
    check_postcopy_versions,
)
from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import parse_capabilities, parse_domain
from ansible_collections.kvmops.migration.tests.unit.plugins.module_utils.preflight_data import (
    CAPS_XML,
    CPU_QEMU64,
    DOMCAPS_XML,
    dom_xml,
)
from libvirt_doubles import FakeLibvirtError


TRIXIE_CAPS = CAPS_XML.replace('7.2', '10.0')
BOOKWORM, TRIXIE = (9000000, 7002000), (11003000, 10000000)   # (libvirt, QEMU)


class Host:
    def __init__(self, caps, versions, cpu_error=None, cpu_result=2):
        self.caps, (self.libvirt, self.qemu) = caps, versions
        self.cpu_error, self.cpu_result = cpu_error, cpu_result
        self.compared = []
        self.compared_machines = []

    def getCapabilities(self):  # noqa: N802
        return self.caps.format(uuid='u')

    def getLibVersion(self):  # noqa: N802
        return self.libvirt

    def getVersion(self):  # noqa: N802
        return self.qemu

    def compareHypervisorCPU(self, *args):  # noqa: N802
        self.compared.append(args[4])
        self.compared_machines.append(args[2])
        if self.cpu_error:
            raise FakeLibvirtError(self.cpu_error, 91 if 'incompatible' in self.cpu_error else 1)
        return self.cpu_result

    def getDomainCapabilities(self, *args):  # noqa: N802
        return DOMCAPS_XML

    def baselineHypervisorCPU(self, *args):  # noqa: N802
        return "<cpu mode='custom' match='exact'><model fallback='forbid'>EPYC</model></cpu>"


class Dom:
    def __init__(self, conn, xml, inactive=None, active=True, persistent=True):
        self.conn, self.xml, self.inactive = conn, xml, inactive or xml
        self.active, self.persistent = active, persistent

    def connect(self):
        return self.conn

    def XMLDesc(self, flags=0):  # noqa: N802
        return self.inactive if flags & 2 else self.xml

    def isActive(self):  # noqa: N802
        return self.active

    def isPersistent(self):  # noqa: N802
        return self.persistent


def by_name(checks):
    return dict((c['name'], c) for c in checks)


def test_new_to_old_is_refused_for_the_machine_type_naming_both_qemus_and_the_remedy():
    guest = parse_domain(dom_xml().replace('pc-i440fx-7.2', 'pc-i440fx-10.0'))
    verdict = check_machine_type('vm1', guest, parse_capabilities(CAPS_XML.format(uuid='u')),
                                 versions=(TRIXIE[1], BOOKWORM[1]))
    assert verdict['status'] == 'fail'
    assert "machine type 'pc-i440fx-10.0' is not offered" in verdict['detail']
    assert 'QEMU 7.2.0, older than the source\'s QEMU 10.0.0' in verdict['detail']
    assert 'QEMU 10.0.0 or newer' in verdict['remedy'] and 'pc-i440fx-7.2' in verdict['remedy']


def test_a_machine_type_missing_on_a_newer_destination_keeps_the_plain_remedy():
    guest = parse_domain(dom_xml().replace('pc-i440fx-7.2', 'pc-i440fx-6.0'))
    verdict = check_machine_type('vm1', guest, parse_capabilities(TRIXIE_CAPS.format(uuid='u')),
                                 versions=(BOOKWORM[1], TRIXIE[1]))
    assert verdict['status'] == 'fail' and 'older' not in verdict['detail']
    assert 'pc-i440fx-10.0' in verdict['remedy']


def test_a_cpu_feature_the_destination_libvirt_does_not_know_fails_with_a_baseline():
    cpu = parse_domain(dom_xml())['cpu']
    verdict = check_cpu('vm1', cpu, {'error_code': 1, 'message': 'internal error: Unknown CPU feature fdp-excptn-only'},
                        baseline_model='EPYC')
    assert verdict['status'] == 'fail' and "CPU feature 'fdp-excptn-only'" in verdict['detail']
    assert 'cpu_baseline' in verdict['remedy'] and 'EPYC' in verdict['remedy']


def test_old_to_new_passes_with_a_newer_destination():
    src, dst = Host(CAPS_XML, BOOKWORM), Host(TRIXIE_CAPS.replace('<machine maxCpus=\'288\'>pc-q35-10.0</machine>',
                                                                  "<machine>pc-q35-10.0</machine><machine>pc-i440fx-7.2</machine>"),
                                              TRIXIE)
    checks = by_name(guest_compatibility(Dom(src, dom_xml()), dst))
    assert [checks[n]['status'] for n in ('versions.libvirt', 'versions.qemu', 'versions.machine_type', 'cpu.model')] \
        == ['ok'] * 4


def test_new_to_old_live_names_the_older_versions_the_machine_type_and_the_cpu():
    src = Host(TRIXIE_CAPS, TRIXIE)
    dst = Host(CAPS_XML, BOOKWORM, cpu_error='the CPU is incompatible with host CPU: Host CPU does not provide '
                                             'required features: avx512f')
    guest = dom_xml().replace('pc-i440fx-7.2', 'pc-i440fx-10.0')
    checks = by_name(guest_compatibility(Dom(src, guest), dst))
    assert checks['versions.qemu']['status'] == 'warn' and checks['versions.libvirt']['status'] == 'warn'
    assert checks['versions.machine_type']['status'] == 'fail'
    assert checks['cpu.model']['status'] == 'fail' and 'avx512f' in checks['cpu.model']['detail']
    assert 'EPYC' in checks['cpu.model']['remedy'], 'the baseline of both hosts is suggested'
    assert dst.compared_machines == [None], "the CPU is compared with the destination's own machine type"


def test_cold_judges_what_the_guest_boots_with_and_offline_nothing():
    src, dst = Host(CAPS_XML, BOOKWORM), Host(CAPS_XML, BOOKWORM, cpu_result=0)
    running = dom_xml(cpu='')
    persistent = dom_xml(cpu=CPU_QEMU64)
    checks = guest_compatibility(Dom(src, running, inactive=persistent, active=False), dst, mode='cold')
    names = [c['name'] for c in checks]
    assert 'cpu.model' not in names and by_name(checks)['cpu.persistent']['status'] == 'fail'
    assert dst.compared == [parse_domain(persistent)['cpu']['xml']]
    assert guest_compatibility(Dom(src, running), dst, mode='offline') == []


def test_a_live_guest_with_another_persistent_cpu_gets_both_verdicts():
    src, dst = Host(CAPS_XML, BOOKWORM), Host(CAPS_XML, BOOKWORM)
    other = CPU_QEMU64.replace('qemu64', 'Westmere')
    checks = by_name(guest_compatibility(Dom(src, dom_xml(), inactive=dom_xml(cpu=other)), dst))
    assert checks['cpu.model']['status'] == 'ok' and checks['cpu.persistent']['status'] == 'ok'
    assert len(dst.compared) == 2


# A guest that arrived paused, migrated again from QEMU 7.2: refused (docs/operations.md).
def _entry(strategy, completed=True):
    return HistoryEntry(at='2026-12-06T00:00:00Z', strategy=strategy, completed=completed)


def test_a_guest_that_arrived_paused_is_refused_on_qemu_7_2():
    why = _compat_checks.paused_arrival_hazard(True, (_entry('paused'), _entry('precopy')), 7002019)
    assert 'arrived paused' in why and 'QEMU 7.2' in why


@pytest.mark.parametrize('paused_now,history,qemu', [
    (False, ('paused',), 7002019),                 # running now: its disks were taken over when it ran
    (True, (), 7002019),                           # no migration on record: paused where it ran
    (True, ('precopy', 'paused'), 7002019),        # the newest move was of a running guest
    (True, ('paused',), 10000013),                 # QEMU 10.0
    (True, ('paused',), None),                     # QEMU version unknown: not refused for it
])
def test_paused_guests_that_may_move(paused_now, history, qemu):
    assert _compat_checks.paused_arrival_hazard(paused_now, tuple(_entry(s) for s in history), qemu) is None


def test_a_failed_paused_attempt_does_not_count():
    assert _compat_checks.paused_arrival_hazard(True, (_entry('paused', completed=False),), 7002019) is None


def test_postcopy_needs_the_same_qemu_release_on_both_hosts():
    """The lab lost a post-copy guest from QEMU 10.0 to 11.1: the device state is refused only at the
    switch-over.  The same release (any micro version) is fine; unreadable versions are a warning."""
    refused = check_postcopy_versions(10000013, 11001003)
    assert refused['status'] == 'fail' and '10.0.13' in refused['detail'] and '11.1.3' in refused['detail']
    assert 'without allow_postcopy' in refused['remedy']
    assert check_postcopy_versions(10000013, 10000002)['status'] == 'ok'
    assert check_postcopy_versions(None, 10000002)['status'] == 'warn'


def test_the_precheck_judges_postcopy_only_when_a_live_move_may_use_it():
    src = Host(CAPS_XML, BOOKWORM)
    dst = Host(TRIXIE_CAPS.replace('<machine maxCpus=\'288\'>pc-q35-10.0</machine>',
                                   "<machine>pc-q35-10.0</machine><machine>pc-i440fx-7.2</machine>"), TRIXIE)
    assert by_name(guest_compatibility(Dom(src, dom_xml()), dst, postcopy=True))['versions.postcopy']['status'] == 'fail'
    assert 'versions.postcopy' not in by_name(guest_compatibility(Dom(src, dom_xml()), dst))
    running = dom_xml()
    assert 'versions.postcopy' not in by_name(guest_compatibility(Dom(src, running, inactive=running), dst, mode='cold',
                                                                  postcopy=True))
    same = Host(CAPS_XML, BOOKWORM)
    assert by_name(guest_compatibility(Dom(src, dom_xml()), same, postcopy=True))['versions.postcopy']['status'] == 'ok'
