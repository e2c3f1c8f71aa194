# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._rolling import (
    PHASES,
    RoundError,
    check_round_name,
    decide,
    empty_record,
    format_duration,
    host_line,
    load_round_record,
    migration_seconds,
    peer_problems,
    plan_lines,
    record_step,
    stop_message,
    where_to_go_on,
)


def check(name, status='ok', guest=None, category=None, detail='d'):
    item = {'name': name, 'status': status, 'detail': detail, 'category': category or name.split('.')[0]}
    if guest:
        item['guest'] = guest
    return item


def preflight(dest, *checks, source=None, estimates=None):
    return {'item': dest, 'checks': list(checks), 'source': source or {'libvirt': '9.0.0', 'qemu': '7.2.0'},
            'estimates': estimates or [], 'destination': {'host': dest}}


def row(guest, result, to=None, reason='', mode=None):
    return {'guest': guest, 'from': 'host-a', 'to': to, 'result': result, 'reason': reason, 'mode': mode}


def plan(*rows, maintenance=()):
    hosts = [{'name': name, 'maintenance': name in maintenance} for name in ('host-a', 'host-b', 'host-c')]
    return {'table': list(rows), 'hosts': hosts}


def done_record(round_name='2026-11'):
    record = empty_record('host-a')
    for when, step in enumerate(('started', 'evacuated', 'maintained', 'healthy', 'done')):
        record = record_step(record, round_name, step, now=1000 + 60 * when)
    return record


# -- round names and records ----------------------------------------------------------------

@pytest.mark.parametrize('name', ['', '   ', 'a\nb', 'x' * 101, None])
def test_a_round_needs_a_short_one_line_name(name):
    with pytest.raises(RoundError, match='1 to 100 characters'):
        check_round_name(name)


def test_a_round_name_is_stripped():
    assert check_round_name(' 2026-12 ') == '2026-12'


@pytest.mark.parametrize('data', [None, [], {'host': 'host-b', 'steps': {}}, {'host': 'host-a'}])
def test_no_record_or_a_foreign_one_counts_as_none(data):
    assert load_round_record(data, 'host-a') == empty_record('host-a')


def test_an_unknown_step_counts_as_not_started():
    assert load_round_record({'host': 'host-a', 'steps': {}, 'step': 'nonsense'}, 'host-a')['step'] is None


# -- where a host goes on ---------------------------------------------------------------------

def test_a_fresh_host_runs_every_phase():
    place = where_to_go_on(empty_record('host-a'), '2026-12')
    assert place['status'] == 'start' and place['phases'] == list(PHASES)


def test_a_host_done_in_this_round_is_finished_and_one_done_earlier_starts_again():
    record = done_record('2026-12')
    place = where_to_go_on(record, '2026-12')
    assert place['status'] == 'finished' and place['phases'] == []
    assert 'already done in round 2026-12' in place['line']
    assert where_to_go_on(record, '2027-01')['status'] == 'start'


@pytest.mark.parametrize('step,first', [('started', 'check'), ('evacuated', 'check'),
                                        ('maintained', 'health'), ('healthy', 'return')])
def test_a_host_in_the_middle_of_a_round_resumes_after_its_last_step(step, first):
    record = empty_record('host-a')
    steps = ('started', 'evacuated', 'maintained', 'healthy')
    for reached in steps[:steps.index(step) + 1]:
        record = record_step(record, '2026-11', reached, now=1)
    place = where_to_go_on(record, '2026-12')
    assert place['status'] == 'resume' and place['phases'][0] == first and place['phases'][-1] == 'return'
    assert 'begun in round 2026-11' in place['line']
    # Never maintained twice: once maintained, the maintenance phase is not run again.
    assert ('maintain' in place['phases']) == (step in ('started', 'evacuated'))


def test_a_host_in_maintenance_outside_a_round_is_left_alone():
    place = where_to_go_on(empty_record('host-a'), '2026-12', in_maintenance=True)
    assert place['status'] == 'in_maintenance' and place['phases'] == []
    assert 'return.yml' in place['line']


def test_a_resumed_host_is_resumed_even_when_marked_in_maintenance():
    record = record_step(empty_record('host-a'), '2026-12', 'started', now=1)
    assert where_to_go_on(record, '2026-12', in_maintenance=True)['status'] == 'resume'


# -- the record -----------------------------------------------------------------------------

def test_started_begins_a_fresh_record_after_an_earlier_round():
    record = record_step(done_record('2026-11'), '2026-12', 'started', facts={'peers': ['host-b']}, now=5000)
    assert record['round'] == '2026-12' and record['step'] == 'started'
    assert record['steps'] == {'started': 5000} and 'duration_s' not in record and record['peers'] == ['host-b']


def test_steps_never_go_back_and_keep_their_first_time():
    record = record_step(empty_record('host-a'), 'r', 'started', now=1)
    record = record_step(record, 'r', 'evacuated', now=2)
    record = record_step(record, 'r', 'started', now=3)  # a resumed host is checked again
    assert record['step'] == 'evacuated' and record['steps'] == {'started': 1, 'evacuated': 2}


def test_facts_accumulate_over_resumed_runs_and_the_versions_before_stay():
    record = record_step(empty_record('host-a'), 'r', 'started', now=1,
                         facts={'shutdown_guests': ['lic'], 'versions_before': {'libvirt': '9.0.0'}})
    record = record_step(record, 'r', 'started', now=2,
                         facts={'shutdown_guests': ['db'], 'versions_before': {'libvirt': '11.3.0'}})
    assert record['shutdown_guests'] == ['db', 'lic']
    assert record['versions_before'] == {'libvirt': '9.0.0', 'qemu': None}
    record = record_step(record, 'r', 'healthy', now=3, facts={'versions_after': {
        'hostname': 'host-a', 'uuid': 'u', 'libvirt': '11.3.0', 'qemu': '10.0.0'}})
    assert record['versions_after'] == {'libvirt': '11.3.0', 'qemu': '10.0.0'}


def test_an_error_is_kept_until_the_next_step_and_done_gives_the_duration():
    record = record_step(empty_record('host-a'), 'r', 'started', now=10)
    record = record_step(record, 'r', error={'phase': 'maintain', 'msg': 'apt failed'}, now=20)
    assert record['error'] == {'phase': 'maintain', 'msg': 'apt failed', 'at': 20} and record['step'] == 'started'
    record = record_step(record, 'r', 'evacuated', now=30)
    assert 'error' not in record
    assert done_record()['duration_s'] == 240


def test_an_error_before_anything_started_has_no_step():
    record = record_step(empty_record('host-a'), 'r', error={'phase': 'check', 'msg': 'peer down'}, now=1)
    assert record['step'] is None and record['round'] == 'r'


def test_an_unknown_step_is_refused():
    with pytest.raises(RoundError, match='step'):
        record_step(empty_record('host-a'), 'r', 'rebooted')


# -- lines ----------------------------------------------------------------------------------

@pytest.mark.parametrize('seconds,text', [(None, '?'), (0, '0s'), (59.6, '1m00s'), (724, '12m04s'),
                                          (3725, '1h02m05s')])
def test_durations(seconds, text):
    assert format_duration(seconds) == text


def test_the_host_line_says_guests_versions_and_time():
    record = done_record()
    record.update(guests_out=['a', 'b'], guests_back=['a', 'b'], shutdown_guests=['lic'],
                  versions_before={'libvirt': '9.0.0', 'qemu': '7.2.0'},
                  versions_after={'libvirt': '11.3.0', 'qemu': '10.0.0'})
    line = host_line(record)
    assert line.startswith('host-a: done in round 2026-11: 2 guest(s) out, 2 back, 1 shut down and started again')
    assert 'libvirt 9.0.0 -> 11.3.0, QEMU 7.2.0 -> 10.0.0' in line
    assert '4m00s (evacuate 1m00s, maintenance 1m00s, health 1m00s, return 1m00s)' in line


def test_the_stop_message_says_where_why_and_how_to_go_on():
    record = record_step(empty_record('host-b'), '2026-12', 'evacuated', facts={'guests_out': ['web1']}, now=1)
    text = stop_message(record, 'maintain', 'apt failed')
    assert 'Round 2026-12 stopped at host-b, in its maintain phase: apt failed' in text
    assert 'stays in maintenance after step evacuated' in text and 'web1' in text
    assert 'rolling_maintenance_round=2026-12' in text and 'goes on with host-b at check' in text
    fresh = record_step(empty_record('host-b'), '2026-12', error={'phase': 'check', 'msg': 'x'}, now=1)
    assert 'Nothing was moved off host-b' in stop_message(fresh, 'check', 'x')


# -- the decision -----------------------------------------------------------------------------

def test_peer_problems_count_host_checks_but_not_capacity_or_guest_checks():
    results = [preflight('host-b', check('connectivity.ssh'), check('capacity.memory_total', 'fail'),
                         check('cpu.model', 'fail', guest='web1')),
               preflight('host-c', check('firewall.migration_ports', 'fail', detail='64 ports blocked')),
               {'item': 'host-d', 'msg': 'unreachable', 'failed': True}]
    assert peer_problems(results, ['host-b', 'host-c', 'host-d', 'host-e']) == [
        'host-c: firewall.migration_ports: 64 ports blocked',
        'host-d: the preflight did not run: unreachable',
        'host-e: no preflight result']


def test_a_result_of_a_loop_with_its_own_loop_variable_names_its_peer():
    result = {'rolling_maintenance_peer': 'host-b', 'ansible_loop_var': 'rolling_maintenance_peer', 'msg': 'boom'}
    assert peer_problems([result], ['host-b']) == ['host-b: the preflight did not run: boom']


def test_go_when_every_guest_has_a_destination():
    decision = decide(plan(row('web1', 'planned', 'host-b', mode='live'), row('old', 'skipped', reason='shut off')),
                      [preflight('host-b'), preflight('host-c')], ['host-b', 'host-c'], 'skip_host')
    assert decision['decision'] == 'go' and decision['movable'] == ['web1'] and decision['stay_off'] == ['old']
    assert decision['versions'] == {'libvirt': '9.0.0', 'qemu': '7.2.0'}


def test_a_broken_peer_stops_the_round_before_anything_moves():
    decision = decide(plan(row('web1', 'stayed', reason='host-b: preflight: firewall')),
                      [preflight('host-b', check('firewall.migration_ports', 'fail'))], ['host-b'], 'shutdown')
    assert decision['decision'] == 'stop' and decision['shutdown_guests'] == []
    assert decision['reasons'] == ['peer not ready: host-b: firewall.migration_ports: d']


def test_a_peer_in_maintenance_is_not_checked():
    decision = decide(plan(row('web1', 'planned', 'host-c'), maintenance=('host-b',)),
                      [{'item': 'host-b', 'msg': 'rebooting'}, preflight('host-c')], ['host-b', 'host-c'], 'skip_host')
    assert decision['decision'] == 'go' and decision['peers'] == ['host-c']
    assert decision['peers_in_maintenance'] == ['host-b']


def test_guests_with_no_peer_left_stop():
    decision = decide(plan(row('web1', 'stayed', reason='no candidate host')), [], [], 'shutdown')
    assert decision['decision'] == 'stop' and 'no peer can take guests' in decision['reasons'][0]


def test_an_empty_host_with_no_peer_may_go():
    assert decide(plan(), [], [], 'skip_host')['decision'] == 'go'


def test_unmovable_guests_are_shut_down_or_the_host_is_skipped():
    evacuation = plan(row('web1', 'planned', 'host-b'), row('lic', 'stayed', reason='pinned'))
    shutdown = decide(evacuation, [preflight('host-b')], ['host-b'], 'shutdown')
    assert shutdown['decision'] == 'go' and shutdown['shutdown_guests'] == ['lic']
    skip = decide(evacuation, [preflight('host-b')], ['host-b'], 'skip_host')
    assert skip['decision'] == 'skip_host' and skip['reasons'] == [
        'guests cannot move: lic (pinned) (rolling_maintenance_unmovable=skip_host)']
    resumed = decide(evacuation, [preflight('host-b')], ['host-b'], 'skip_host', resuming=True)
    assert resumed['decision'] == 'stop' and 'cannot be skipped now' in resumed['reasons'][0]


def test_an_unknown_choice_is_refused():
    with pytest.raises(RoundError, match='shutdown or skip_host'):
        decide(plan(), [], [], 'destroy')


# -- the expected time and the plan lines -----------------------------------------------------------

def test_migration_time_from_the_estimates_of_each_destination():
    results = [preflight('host-b', estimates=[{'guest': 'a', 'seconds': 4.0}, {'guest': 'b', 'seconds': 2.0}]),
               preflight('host-c', estimates=[{'guest': 'c', 'seconds': 3.0}])]
    moves = [{'guest': 'a', 'to': 'host-b'}, {'guest': 'b', 'to': 'host-b'}, {'guest': 'c', 'to': 'host-c'}]
    # one at a time into host-b: 6 s; two out at once: 9 / 2 = 4.5 s
    assert migration_seconds(moves, results, max_parallel=2, max_per_dest=1) == 6.0
    assert migration_seconds(moves, results, max_parallel=1, max_per_dest=2) == 9.0
    assert migration_seconds([], results, 2, 1) == 0.0
    assert migration_seconds([{'guest': 'x', 'to': 'host-b'}], results, 2, 1) is None


def test_plan_lines_show_guests_destinations_unmovable_and_time():
    decision = decide(plan(row('web1', 'planned', 'host-b', mode='live'), row('lic', 'stayed', reason='pinned')),
                      [preflight('host-b')], ['host-b'], 'shutdown')
    place = where_to_go_on(done_record('2026-11'), '2026-12')
    lines = plan_lines(place, decision, 30.0, 600, previous=done_record('2026-11'))
    assert lines[0] == 'host-a: starts round 2026-12'
    assert lines[1] == '  out and back: web1 -> host-b (live)'
    assert lines[2] == '  lic: shut down cleanly before the maintenance, started again after (pinned)'
    assert lines[3] == ('  expected: about 11m00s: migrations out and back 1m00s (lower bound), maintenance 10m00s; '
                        'its last round (2026-11) took 4m00s')
    skipped = decide(plan(row('lic', 'stayed', reason='pinned')), [preflight('host-b')], ['host-b'], 'skip_host')
    assert plan_lines(place, skipped, None, 600)[-1] == (
        '  skipped: guests cannot move: lic (pinned) (rolling_maintenance_unmovable=skip_host)')
