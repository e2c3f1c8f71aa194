# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""ConcurrentRunner: what happens when migrations end together (no libvirt: the migration is faked)."""

from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils import _evacuation_runner
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_runner import ConcurrentRunner, Move
from ansible_collections.kvmops.migration.plugins.module_utils._placement import Assignment, Plan


class InstantMigration:
    """Every migration ends after the same short delay, so the workers finish at about the same time."""

    def __init__(self, job):
        self.job = job

    def run(self):
        time.sleep(0.05)
        dest = self.job.params['dest'].split('/')[2]
        return {'location': {'running_on': [dest]}, 'stats': {'total_time_ms': 50, 'downtime_ms': 7}}


class NoConnection:
    def __init__(self, *args, **kwargs):
        self.conn = None

    def close(self):
        pass


@pytest.fixture
def runner_for(monkeypatch):
    monkeypatch.setattr(_evacuation_runner, 'MigrationManager', InstantMigration)
    monkeypatch.setattr(_evacuation_runner, 'LibvirtClient', NoConnection)

    def make(guests, on_moved):
        plan = Plan(assignments=[Assignment(g, 'host-a', 'host-%s' % ('b' if i % 2 else 'c'))
                                 for i, g in enumerate(guests)])
        moves = dict((a.guest, Move(a.guest, 'uuid-' + a.guest, a.source, a.destination, {}))
                     for a in plan.assignments)
        uris = {'host-a': 'qemu:///system', 'host-b': 'qemu+ssh://host-b/system',
                'host-c': 'qemu+ssh://host-c/system'}
        return ConcurrentRunner(plan, moves, uris, 'ssh', max_per_source=4, max_per_dest=2,
                                log=lambda line: None, on_moved=on_moved, progress_interval=60)
    return make


def test_moved_callbacks_run_one_at_a_time_in_the_collecting_thread(runner_for):
    guests = ['g%d' % i for i in range(8)]
    seen, inside = [], []

    def on_moved(move):
        # The evacuation record is read, changed and written here: overlapping calls lose updates,
        # and two writers once raced on one temporary file (a moved guest was reported as failed).
        inside.append(move.guest)
        assert len(inside) == 1, 'on_moved entered twice at once: %s' % inside
        time.sleep(0.02)
        seen.append((move.guest, threading.current_thread() is threading.main_thread()))
        inside.remove(move.guest)

    rows = runner_for(guests, on_moved).run()
    assert [row['result'] for row in rows] == ['moved'] * len(guests)
    assert sorted(g for g, dummy in seen) == guests
    assert all(in_main for dummy, in_main in seen)


def test_a_failing_callback_does_not_turn_a_moved_guest_into_a_failed_one(runner_for):
    def on_moved(move):
        if move.guest == 'g1':
            raise OSError(28, 'No space left on device')

    rows = dict((row['guest'], row) for row in runner_for(['g0', 'g1', 'g2'], on_moved).run())
    assert [rows[g]['result'] for g in ('g0', 'g1', 'g2')] == ['moved'] * 3
    assert 'record was not updated' in rows['g1']['reason'] and 'No space left' in rows['g1']['reason']
    assert rows['g0']['reason'] == '' and rows['g2']['reason'] == ''


class Connection:
    def __init__(self, alive=True):
        self.alive = alive

    def isAlive(self):
        if isinstance(self.alive, Exception):
            raise self.alive
        return self.alive


class RecordingClient:
    """Records what a migration's client was lent."""
    made = []

    def __init__(self, uri=None):
        self.uri = uri
        self.borrowed = {}
        RecordingClient.made.append(self)

    def share(self, uri, conn):
        self.borrowed[uri] = conn

    def close(self):
        pass


def test_migrations_borrow_the_live_destination_connection_and_open_their_own_otherwise(monkeypatch):
    """One SSH handshake per destination for the whole evacuation, not one per migration; a
    connection that died (its libvirtd restarted) is not lent."""
    monkeypatch.setattr(_evacuation_runner, 'MigrationManager', InstantMigration)
    monkeypatch.setattr(_evacuation_runner, 'LibvirtClient', RecordingClient)
    RecordingClient.made = []
    to_b, to_c = Connection(), Connection(alive=False)
    plan = Plan(assignments=[Assignment('g0', 'host-a', 'host-b'), Assignment('g1', 'host-a', 'host-b'),
                             Assignment('g2', 'host-a', 'host-c')])
    moves = dict((a.guest, Move(a.guest, 'uuid-' + a.guest, a.source, a.destination, {})) for a in plan.assignments)
    uris = {'host-a': 'qemu:///system', 'host-b': 'qemu+ssh://host-b/system', 'host-c': 'qemu+ssh://host-c/system'}
    runner = ConcurrentRunner(plan, moves, uris, 'ssh', max_per_source=2, max_per_dest=1, log=lambda line: None,
                              progress_interval=60,
                              shared={'qemu+ssh://host-b/system': to_b, 'qemu+ssh://host-c/system': to_c})
    assert [row['result'] for row in runner.run()] == ['moved'] * 3
    lent = sorted(tuple(client.borrowed.items()) for client in RecordingClient.made)
    assert lent == [(), (('qemu+ssh://host-b/system', to_b),), (('qemu+ssh://host-b/system', to_b),)]


@pytest.mark.parametrize('conn, lent', [(None, False), (Connection(), True), (Connection(alive=False), False),
                                        (Connection(alive=RuntimeError('socket closed')), False)])
def test_borrow_if_alive(conn, lent):
    client = RecordingClient('qemu:///system')
    _evacuation_runner.borrow_if_alive(client, 'qemu+ssh://host-b/system', conn)
    assert client.borrowed == ({'qemu+ssh://host-b/system': conn} if lent else {})
