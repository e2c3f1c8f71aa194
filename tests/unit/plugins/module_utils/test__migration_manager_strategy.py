# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_migrate's manager with the strategy wired in, in check mode on two fake hosts: the plan's
flags are the chosen strategy's, the result carries the prediction, a refusal changes nothing.
The dirty rate is a stand-in; the real measurement and migrations are lab tests."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils import _strategy_run
from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError, MigrationError
from ansible_collections.kvmops.migration.plugins.module_utils._dirtyrate import DirtyRateReport, DirtyRateResult
from ansible_collections.kvmops.migration.plugins.module_utils._migration_manager import MigrationManager
from ansible_collections.kvmops.migration.plugins.module_utils._migration_spec import option_defaults

from fake_hosts import FakeHost

MIB = 1 << 20
UUID = '11111111-2222-3333-4444-555555555555'
CAPS = "<capabilities><host><uuid>%s</uuid></host></capabilities>"


class Host(FakeHost):
    def __init__(self, name, host_uuid, calls):
        super().__init__(name, calls)
        self.host_uuid = host_uuid

    def getHostname(self):  # noqa: N802 - libvirt's spelling
        return self.name

    def getCapabilities(self):  # noqa: N802
        return CAPS % self.host_uuid

    def lookupByName(self, name):  # noqa: N802
        for dom in self.domains.values():
            if dom.name() == name:
                return dom
        raise AssertionError('the test looks up only its guest')


class Client:
    uri = 'qemu:///system'

    def __init__(self, source, destination):
        self.conn, self.destination = source, destination

    def open_peer(self, uri):
        return self.destination

    def lookup_domain(self, name=None, uuid=None, conn=None):
        return (conn or self.conn).lookupByName(name)


class Ctx:
    can_detach = False
    check_mode = True

    def __init__(self, client, **params):
        self.client = client
        self.params = dict(option_defaults(), name='g1', dest='host-b', precheck=False, **params)
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)


@pytest.fixture
def hosts(monkeypatch, tmp_path):
    calls = []
    a, b = Host('host-a', 'aaaaaaaa-0000-0000-0000-000000000001', calls), Host('host-b', 'bbbbbbbb-0000-0000-0000-000000000002', calls)
    a.define(UUID, 'g1')
    measured = []

    def measure(doms, seconds):
        measured.append(seconds)
        result = DirtyRateResult('g1', 'measured', dirty_rate_bps=20.0 * MIB, vcpu_busy_share=0.05)
        return DirtyRateReport(results=(result,), seconds=seconds, budget_s=seconds + 1.5, elapsed_s=1.1)
    monkeypatch.setattr(_strategy_run, 'measure_dirty_rates', measure)
    monkeypatch.setattr(_strategy_run, 'read_history', lambda dom: ())

    def run(**params):
        ctx = Ctx(Client(a, b), state_dir=str(tmp_path), **params)
        return MigrationManager(ctx).run()
    return run, calls, measured


def changes(calls):
    return [call for call in calls if not call[1].startswith('XMLDesc')]


def test_check_mode_plans_the_predicted_strategy(hosts):
    run, calls, measured = hosts
    result = run(bandwidth=10, auto_converge=False, allow_postcopy=True)
    assert result['strategy'] == {'requested': 'auto', 'started': 'postcopy', 'note': None}
    assert result['decision']['strategy'] == 'postcopy' and result['prediction']['verdict'] == 'postcopy'
    assert 'POSTCOPY' in result['plan']['flags'] and 'AUTO_CONVERGE' not in result['plan']['flags']
    assert result['dirty_rate']['elapsed_s'] == 1.1 and measured == [1]
    assert changes(calls) == [] and result['changed'] is True


def test_check_mode_refuses_what_cannot_meet_the_limits_and_changes_nothing(hosts):
    run, calls, dummy = hosts
    with pytest.raises(MigrationError) as err:
        run(bandwidth=10, auto_converge=False)
    assert 'nothing was started' in err.value.msg and 'allow_postcopy: true' in err.value.remedy
    assert err.value.details['decision']['refused'] is True
    assert changes(calls) == []


def test_adaptive_measures_nothing_and_plans_every_lever(hosts):
    run, dummy, measured = hosts
    result = run(bandwidth=10, allow_postcopy=True, strategy='adaptive')
    assert measured == [] and 'prediction' not in result
    assert {'AUTO_CONVERGE', 'POSTCOPY'} <= set(result['plan']['flags'])


def test_an_explicit_strategy_runs_alone(hosts):
    run, dummy, dummy_measured = hosts
    result = run(dirty_rate_seconds=1, allow_postcopy=True, strategy='postcopy')
    # No bandwidth known: no prediction, but the operator's strategy is what starts.
    assert result['strategy']['started'] == 'postcopy' and result['decision']['known'] is False
    assert 'POSTCOPY' in result['plan']['flags'] and 'AUTO_CONVERGE' not in result['plan']['flags']


def test_strategy_contradictions_are_refused_before_connecting(monkeypatch, tmp_path):
    class NoClient:
        @property
        def conn(self):
            raise AssertionError('connected before refusing')
    ctx = Ctx(NoClient(), state_dir=str(tmp_path), strategy='postcopy')
    with pytest.raises(InvalidInputError, match='strategy=postcopy needs allow_postcopy: true'):
        MigrationManager(ctx).run()


# --- the fixed cost (issue 20): overlapped connect, the XML read once -----------------------

def test_the_source_xml_is_read_once(hosts):
    run, calls, dummy = hosts
    run(bandwidth=100)
    # Once, at connect time: the storage plan, the checks and both hosts' views use it.
    assert [call for call in calls if call[0] == 'host-a' and call[1].startswith('XMLDesc')] == [
        ('host-a', 'XMLDesc(0)', 'g1')]


class Unreachable(Client):
    def open_peer(self, uri):
        from ansible_collections.kvmops.migration.plugins.module_utils._client import LibvirtConnectionError
        raise LibvirtConnectionError('Connecting to libvirt at %s failed: no route to host' % uri)


@pytest.mark.parametrize('dest,error', [('host-a', InvalidInputError), ('host-b', Exception)])
def test_a_destination_that_does_not_answer_fails_after_the_same_host_check(monkeypatch, tmp_path, dest, error):
    calls = []
    a, b = Host('host-a', 'aaaaaaaa-0000-0000-0000-000000000001', calls), Host('host-b', 'bbbbbbbb-0000-0000-0000-000000000002', calls)
    a.define(UUID, 'g1')
    monkeypatch.setattr(_strategy_run, 'read_history', lambda dom: ())
    ctx = Ctx(Unreachable(a, b), state_dir=str(tmp_path))
    ctx.params['dest'] = dest
    with pytest.raises(error) as err:
        MigrationManager(ctx).run()
    if dest == 'host-a':
        assert 'is the source host itself' in err.value.msg
    else:
        assert 'no route to host' in str(err.value)
    assert changes(calls) == []
