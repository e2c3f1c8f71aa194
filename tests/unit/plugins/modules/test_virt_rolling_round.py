# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_rolling_round against a state directory in tmp_path; virt_guest_power's input checks."""

from __future__ import annotations

import json

import pytest

from ansible_collections.kvmops.migration.plugins.modules import virt_guest_power, virt_rolling_round


@pytest.fixture
def state(tmp_path):
    return {'host': 'host-a', 'round': '2026-12', 'state_dir': str(tmp_path)}


def record_file(state):
    path = '%s/rolling.json' % state['state_dir']
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


def test_a_fresh_host_starts(run_main, state):
    result, failed = run_main(virt_rolling_round, state)
    assert not failed and not result['changed'] and result['status'] == 'start'
    assert result['phases'] == ['check', 'evacuate', 'maintain', 'health', 'return']


def test_a_host_marked_by_an_evacuation_is_left_alone(run_main, state, tmp_path):
    (tmp_path / 'maintenance.json').write_text(json.dumps({'host': 'host-a', 'maintenance': True}))
    result, dummy = run_main(virt_rolling_round, state)
    assert result['status'] == 'in_maintenance' and result['phases'] == []


def test_steps_are_recorded_and_the_round_resumes_then_finishes(run_main, state):
    result, failed = run_main(virt_rolling_round, dict(state, action='record', step='started',
                                                       facts={'peers': ['host-b']}))
    assert not failed and result['changed'] and record_file(state)['step'] == 'started'
    result, dummy = run_main(virt_rolling_round, dict(state, action='record', step='maintained'))
    result, dummy = run_main(virt_rolling_round, state)
    assert result['status'] == 'resume' and result['phases'] == ['health', 'return']
    result, dummy = run_main(virt_rolling_round, dict(state, action='record', step='done',
                                                      facts={'guests_back': ['web1']}))
    assert result['line'].startswith('host-a: done in round 2026-12: 0 guest(s) out, 1 back')
    result, dummy = run_main(virt_rolling_round, state)
    assert result['status'] == 'finished' and result['phases'] == []


def test_the_same_step_again_changes_nothing(run_main, state):
    run_main(virt_rolling_round, dict(state, action='record', step='started'))
    result, dummy = run_main(virt_rolling_round, dict(state, action='record', step='started'))
    assert not result['changed']


def test_check_mode_writes_no_record(run_main, state, tmp_path):
    result, failed = run_main(virt_rolling_round, dict(state, action='record', step='started'), check_mode=True)
    assert not failed and result['changed'] and result['record']['step'] == 'started'
    assert not (tmp_path / 'rolling.json').exists()


def test_an_error_before_anything_moved_is_reported_and_not_written(run_main, state, tmp_path):
    result, failed = run_main(virt_rolling_round, dict(state, action='record',
                                                       error={'phase': 'check', 'msg': 'host-c is down'}))
    assert not failed and not result['changed'] and not (tmp_path / 'rolling.json').exists()
    assert 'stopped at host-a, in its check phase: host-c is down' in result['line']
    assert 'Nothing was moved off host-a' in result['line']


@pytest.mark.parametrize('args,words', [
    ({'round': ' '}, '1 to 100 characters'),
    ({'host': ' '}, 'host is empty'),
    ({'action': 'record'}, 'needs a step, an error, or both'),
    ({'action': 'record', 'error': {'phase': 'reboot', 'msg': 'x'}}, "error.phase 'reboot'"),
    ({'action': 'plan'}, 'needs evacuation'),
    ({'action': 'plan', 'evacuation': {}, 'max_parallel': 0}, 'max_parallel'),
])
def test_bad_input_is_refused_and_changes_nothing(run_main, state, tmp_path, args, words):
    result, failed = run_main(virt_rolling_round, dict(state, **args))
    assert failed and words in result['msg']
    assert list(tmp_path.iterdir()) == []


def test_the_plan_decides_and_prints(run_main, state):
    evacuation = {'table': [{'guest': 'web1', 'from': 'host-a', 'to': 'host-b', 'result': 'planned', 'mode': 'live'},
                            {'guest': 'lic', 'from': 'host-a', 'to': None, 'result': 'stayed', 'reason': 'pinned'}],
                  'hosts': [{'name': 'host-b', 'maintenance': False}]}
    preflight = [{'item': 'host-b', 'checks': [], 'source': {'libvirt': '9.0.0', 'qemu': '7.2.0'},
                  'estimates': [{'guest': 'web1', 'seconds': 2.0}]}]
    result, failed = run_main(virt_rolling_round, dict(state, action='plan', evacuation=evacuation,
                                                       preflight=preflight, peers=['host-b'], unmovable='shutdown',
                                                       maintenance_expected_s=60))
    assert not failed and not result['changed']
    assert result['decision'] == 'go' and result['shutdown_guests'] == ['lic'] and result['expected_s'] == 64.0
    assert result['lines'][1] == '  out and back: web1 -> host-b (live)'


@pytest.mark.parametrize('args,words', [
    ({'shutdown_timeout': 0}, 'between 1 and 86400'),
    ({'state': 'destroyed'}, 'state'),
])
def test_guest_power_refuses_bad_input_before_connecting(run_main, args, words):
    result, failed = run_main(virt_guest_power, dict({'names': ['a']}, **args))
    assert failed and words in result['msg']
