# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._evacuation import (
    anti_affinity_groups,
    backup_changes,
    format_table,
    load_record,
    maintenance_mark,
    make_row,
    marks_maintenance,
    metadata_of,
    percent,
    preflight_allows,
    preflight_verdicts,
    progress_line,
    record_move,
    rejoin_plan,
    return_plan,
    summarise,
)

XML = """<domain type='qemu'><name>web1</name><metadata>
<kvmops:migration xmlns:kvmops="https://kvmops.io/migration"><kvmops:anti_affinity>web</kvmops:anti_affinity>
<kvmops:anti_affinity>db, edge</kvmops:anti_affinity></kvmops:migration>
<other:x xmlns:other="https://example.org/x"><anti_affinity>nope</anti_affinity></other:x></metadata></domain>"""


def test_metadata_groups_only_from_our_namespace():
    assert metadata_of(XML) == {'anti_affinity': ['web', 'db', 'edge']}
    assert metadata_of('<domain/>') == {'anti_affinity': []}
    assert metadata_of('not xml') == {'anti_affinity': []}


def test_anti_affinity_merges_metadata_and_vars():
    assert anti_affinity_groups('a', ['web'], {'db': ['a', 'b'], 'x': ['c'], 'web': ['a']}) == ('db', 'web')
    assert anti_affinity_groups('a', [], None) == ()


def test_preflight_fail_blocks_warn_does_not():
    results = [
        {'item': 'host-b', 'checks': [
            {'name': 'cpu.compatible', 'guest': 'g1', 'status': 'fail', 'detail': 'missing avx'},
            {'name': 'storage.disk', 'guest': 'g2', 'status': 'warn', 'detail': 'local disk'}]},
        {'destination': {'host': 'host-c'}, 'checks': [
            {'name': 'firewall.migration_ports', 'status': 'fail', 'detail': 'blocked'}]},
        {'item': 'host-d', 'msg': 'unreachable'},
    ]
    verdicts = preflight_verdicts(results)
    assert preflight_allows(verdicts, 'g1', 'host-b') == (False, 'cpu.compatible: missing avx')
    assert preflight_allows(verdicts, 'g2', 'host-b') == (True, None)
    assert preflight_allows(verdicts, 'g2', 'host-c')[0] is False
    assert 'did not run' in preflight_allows(verdicts, 'g2', 'host-d')[1]
    assert preflight_allows(verdicts, 'g1', 'host-e') == (True, None)


def test_percent_and_progress_line():
    assert percent({'data_total': 200, 'data_remaining': 50, 'data_processed': 150, 'memory_iteration': 1}) == 75
    assert percent({'data_total': 200, 'data_remaining': 50, 'data_processed': 350, 'memory_iteration': 3}) == 87
    assert percent({}) is None
    line = progress_line('g1', 'host-a', 'host-b', {'data_remaining': 1048576 * 3, 'data_processed': 1,
                                                    'memory_iteration': 2}, 4.2)
    assert line.startswith('g1 host-a -> host-b: 0% after 4 s, 3.0 MiB remaining, pass 2')


def test_table_and_summary():
    rows = [make_row('g1', 'host-a', 'host-b', 'moved', time_ms=1234, downtime_ms=40),
            make_row('g2', 'host-a', None, 'stayed', 'no host'),
            make_row('g3', 'host-a', 'host-c', 'failed', 'aborted')]
    lines = format_table(rows)
    assert lines[0].split() == ['guest', 'from', 'to', 'time', 'downtime', 'result', 'reason']
    assert lines[1].split() == ['g1', 'host-a', 'host-b', '1.2s', '40ms', 'moved']
    assert lines[2].split()[:4] == ['g2', 'host-a', '-', '-']
    summary = summarise(rows)
    assert summary['stayed'] == ['g2', 'g3'] and summary['moved'] == ['g1']
    assert summary['counts'] == {'moved': 1, 'stayed': 1, 'failed': 1}


def test_record_keeps_first_origin_and_return_plan():
    record = load_record('garbage', 'host-a')
    assert record['guests'] == {}
    record_move(record, 'g1', 'u1', 'host-a', 'host-b', ['/l/g1.qcow2'], now=1)
    record_move(record, 'g1', 'u1', 'host-b', 'host-c', now=2)  # a re-run moved it on: origin stays host-a
    record_move(record, 'g2', 'u2', 'host-a', 'host-b', now=3)
    record_move(record, 'g3', 'u3', 'host-a', 'host-b', now=3)
    record_move(record, 'g4', 'u4', 'host-a', 'host-b', now=3)
    assert record['guests']['g1'] == {'uuid': 'u1', 'from': 'host-a', 'to': 'host-c', 'moved_at': 1,
                                      'stale_copies': ['/l/g1.qcow2']}
    assert load_record(json.dumps(record), 'host-a') == record
    moves, rows = return_plan(record, {'u1': ['host-c'], 'u2': ['host-a'], 'u4': ['host-b', 'host-c']}, 'host-a')
    assert moves == [('g1', 'u1', 'host-c')]
    assert {row['guest']: row['result'] for row in rows} == {'g2': 'skipped', 'g3': 'stayed', 'g4': 'stayed'}


def test_a_new_guest_with_an_old_guests_name_replaces_its_stale_entry():
    """g1 was evacuated, then deleted; a new guest named g1 (another UUID) is evacuated later: the
    record holds the new one, so return.yml brings it back (found by the evacuation benchmark)."""
    record = load_record('', 'host-a')
    record_move(record, 'g1', 'u-old', 'host-c', 'host-b', ['/l/g1.qcow2'], now=1)
    record_move(record, 'g1', 'u-new', 'host-a', 'host-b', now=2)
    assert record['guests']['g1'] == {'uuid': 'u-new', 'from': 'host-a', 'to': 'host-b', 'moved_at': 2,
                                      'stale_copies': []}
    moves, dummy_rows = return_plan(record, {'u-new': ['host-b']}, 'host-a')
    assert moves == [('g1', 'u-new', 'host-b')]


def test_backup_writes_new_and_changed_removes_gone_keeps_equal():
    existing = {'same': '<domain>same</domain>', 'edited': '<domain>old</domain>', 'moved-away': '<domain/>',
                'unreadable': None}
    wanted = {'same': '<domain>same</domain>', 'edited': '<domain>new</domain>', 'new': '<domain>n</domain>',
              'unreadable': '<domain>u</domain>'}
    assert backup_changes(existing, wanted) == {'written': ['edited', 'new', 'unreadable'], 'removed': ['moved-away'],
                                                'unchanged': ['same']}
    # Nothing to do when the files hold exactly the definitions; an empty host empties its backup.
    assert backup_changes(wanted, wanted) == {'written': [], 'removed': [], 'unchanged': sorted(wanted)}
    assert backup_changes(existing, {})['removed'] == sorted(existing)


def local(name, active=False, persistent=True, autostart=False, job=False):
    return {'name': name, 'uuid': 'uuid-' + name, 'active': active, 'persistent': persistent,
            'autostart': autostart, 'job': job}


def test_rejoin_cleans_only_guests_running_elsewhere():
    here = [local('recovered', autostart=True), local('twice', active=True),
            local('transient-twice', active=True, persistent=False), local('alone', active=True),
            local('shutoff-both'), local('incoming', active=True), local('busy', active=True, job=True)]
    elsewhere = {'uuid-recovered': ('host-b', 1), 'uuid-twice': ('host-c', 1), 'uuid-transient-twice': ('host-b', 1),
                 'uuid-shutoff-both': ('host-b', 5), 'uuid-incoming': ('host-c', 3), 'uuid-busy': ('host-b', 1)}
    cleanups, rows = rejoin_plan('host-a', here, elsewhere)
    assert [(entry['name'], where, steps) for entry, where, steps in cleanups] == [
        ('recovered', 'host-b', ['disable autostart', 'undefine']),
        ('transient-twice', 'host-b', ['destroy']),
        ('twice', 'host-c', ['destroy', 'undefine'])]
    by_guest = dict((row['guest'], row) for row in rows)
    assert sorted(by_guest) == ['alone', 'busy', 'incoming', 'shutoff-both']
    assert by_guest['alone']['result'] == 'skipped' and by_guest['alone']['to'] is None
    assert by_guest['shutoff-both']['result'] == 'skipped' and 'running nowhere' in by_guest['shutoff-both']['reason']
    # Left alone but reported as needing a look: an incoming migration, a job on the copy here.
    assert by_guest['incoming']['result'] == 'stayed' and 'incoming migration' in by_guest['incoming']['reason']
    assert by_guest['busy']['result'] == 'stayed' and 'a job' in by_guest['busy']['reason']
    assert summarise(rows)['stayed'] == ['busy', 'incoming']


def test_rejoin_with_nothing_elsewhere_touches_nothing():
    cleanups, rows = rejoin_plan('host-a', [local('a', active=True, autostart=True), local('b')], {})
    assert cleanups == [] and [row['result'] for row in rows] == ['skipped', 'skipped']


@pytest.mark.parametrize('content, expected', [
    (None, (False, None)),                                                    # no mark file
    (json.dumps(maintenance_mark('host-b', 'evacuate', now=1)).encode(), (True, None)),
    (b'{"host": "host-b", "maintenance": false}', (False, None)),            # cleared by hand
    (b'{"host": "host-c", "maintenance": true}', (False, None)),             # another host's (shared state_dir)
    (b'{"maintenance": true}', (True, None)),                                # no host named: this one
    (b'not json', (True, 'its maintenance mark is not JSON; taken as in maintenance')),
    (b'[true]', (True, 'its maintenance mark is not a JSON object; taken as in maintenance')),
])
def test_a_mark_puts_only_its_own_host_in_maintenance_and_an_unreadable_one_counts(content, expected):
    assert marks_maintenance(content, 'host-b') == expected
