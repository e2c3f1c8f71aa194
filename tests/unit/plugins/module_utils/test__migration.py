# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The live job runner with a fake domain: actions applied, and a bounded wait when libvirt
does not return after an abort (a cut link)."""

from __future__ import annotations

import threading
import time

from ansible_collections.kvmops.migration.plugins.module_utils import _migration
from ansible_collections.kvmops.migration.plugins.module_utils._convergence import ConvergenceEngine
from ansible_collections.kvmops.migration.plugins.module_utils._convergence_types import Policy
from ansible_collections.kvmops.migration.plugins.module_utils._location import (
    PAUSED,
    PAUSED_POSTCOPY_FAILED,
    HostView,
    assess,
)
from ansible_collections.kvmops.migration.plugins.module_utils._migration_flags import MigrationSpec


class FakeDomain:
    """migrateToURI3 blocks until `release` is set (or returns at once with `finish`)."""

    def __init__(self, finish=False):
        self.release = threading.Event()
        if finish:
            self.release.set()
        self.calls = []

    def migrateToURI3(self, uri, params, flags):
        self.calls.append(('migrate', uri))
        self.release.wait(5)

    def jobStats(self, flags):
        return {'type': 2, 'memory_iteration': 1, 'data_remaining': 100, 'memory_remaining': 100,
                'memory_dirty_rate': 10, 'memory_bps': 1000}

    def migrateSetMaxDowntime(self, ms, flags):
        self.calls.append(('downtime', ms))

    def abortJob(self):
        self.calls.append(('abort',))


def job(dom, timeout_ms=None, hard=None):
    engine = ConvergenceEngine(Policy(completion_timeout_ms=timeout_ms))
    spec = MigrationSpec(flags=0, params={}, notes=[])
    return _migration.LiveJob(dom, 'qemu+ssh://b/system', spec, engine, poll_interval=0.01, hard_timeout_s=hard)


def test_first_downtime_step_is_applied_and_samples_kept():
    dom = FakeDomain()
    threading.Timer(0.3, dom.release.set).start()
    runner = job(dom)
    assert runner.run() is True
    assert ('downtime', 100) in dom.calls
    assert runner.samples and runner.samples[0]['remaining'] == 100
    assert not runner.abandoned


class EventConnection:
    """The source connection as far as LiveJob uses it: one event registration."""

    def __init__(self):
        self.callbacks = {}
        self.deregistered = []

    def domainEventRegisterAny(self, dom, event_id, callback, opaque):
        self.callbacks[event_id] = callback
        return 7

    def domainEventDeregisterAny(self, callback_id):
        self.deregistered.append(callback_id)


class EventDomain(FakeDomain):
    """A job whose pass counter moves only when the test says a pass ended."""

    def __init__(self):
        super(EventDomain, self).__init__()
        self.conn = EventConnection()
        self.passes = 1

    def connect(self):
        return self.conn

    def jobStats(self, flags):
        return dict(super(EventDomain, self).jobStats(flags), memory_iteration=self.passes)


def test_a_pass_end_event_samples_at_once_instead_of_at_the_next_poll():
    dom = EventDomain()
    engine = ConvergenceEngine(Policy())
    runner = _migration.LiveJob(dom, 'qemu+ssh://b/system', MigrationSpec(flags=0, params={}, notes=[]), engine,
                                poll_interval=30)
    worker = threading.Thread(target=runner.run)
    worker.start()
    deadline = time.monotonic() + 5
    while not dom.conn.callbacks and time.monotonic() < deadline:  # run() registers in its thread
        time.sleep(0.01)
    pass_end = dom.conn.callbacks[_migration.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION]
    for passes in (2, 3):
        dom.passes = passes
        pass_end(None, dom, passes, None)
        deadline = time.monotonic() + 5
        while not any(s['pass'] == passes for s in runner.samples) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runner.samples[-1]['pass'] == passes, runner.samples  # long before the 30 s poll
    dom.release.set()
    worker.join(5)
    assert not worker.is_alive() and runner.error is None and runner.pass_end_events == 2
    assert dom.conn.deregistered == [7]


def test_a_domain_without_events_is_driven_by_polling_alone():
    dom = FakeDomain()  # no connect(): as when libvirt cannot deliver the event
    threading.Timer(0.2, dom.release.set).start()
    runner = job(dom)
    assert runner.run() is True and runner.samples and runner.pass_end_events == 0


def test_engine_abort_then_libvirt_never_returns_is_abandoned_in_bounded_time(monkeypatch):
    monkeypatch.setattr(_migration, 'ABANDON_AFTER_ABORT_S', 0.2)
    dom = FakeDomain()
    runner = job(dom, timeout_ms=50)
    assert runner.run() is False
    assert ('abort',) in dom.calls and runner.abandoned
    assert 'did not return' in str(runner.error)
    dom.release.set()


def test_hard_timeout_aborts_once(monkeypatch):
    monkeypatch.setattr(_migration, 'ABANDON_AFTER_ABORT_S', 0.2)
    dom = FakeDomain()
    runner = job(dom, hard=0.05)
    runner.run()
    assert dom.calls.count(('abort',)) == 1 and runner.abandoned
    dom.release.set()


class PostcopyDomain(FakeDomain):
    """A job already switched to post-copy whose call never returns (its stream broke)."""

    def migrateStartPostCopy(self, flags):
        self.calls.append(('postcopy',))


def test_a_postcopy_job_that_never_returns_is_abandoned_at_the_hard_timeout_without_an_abort():
    dom = PostcopyDomain()
    runner = job(dom, hard=0.1)
    runner.postcopy_started = True
    started = time.monotonic()
    assert runner.run() is False
    assert time.monotonic() - started < 3  # the fake call blocks 5 s: the runner did not wait for it
    assert runner.abandoned and ('abort',) not in dom.calls
    assert 'post-copy did not finish within the hard timeout' in str(runner.error)
    dom.release.set()


def _location(src_kind, dst_reachable):
    src = HostView('host-a', exists=True, state=PAUSED, reason=src_kind)
    dst = HostView('host-b', exists=True, state=1, reason=1) if dst_reachable else HostView('host-b', reachable=False)
    return assess(src, dst)


def test_a_postcopy_split_fails_with_both_halves_and_the_operator_procedure():
    error = _migration.migration_error('client socket is closed', _location(PAUSED_POSTCOPY_FAILED, False),
                                       advice='raise the bandwidth', src_host='host-a', dst_host='host-b')
    assert error.msg.startswith('Migration failed: client socket is closed. The guest is split between host-a and '
                                'host-b: post-copy was interrupted')
    assert 'host-b, which cannot be reached' in error.msg and 'paused (post-copy failed) on host-a' in error.msg
    # The engine's convergence advice is irrelevant while the memory is split: only the procedure.
    assert 'raise the bandwidth' not in error.remedy
    for step in ('do not destroy, resume or undefine', 'restore the network between host-a and host-b',
                 're-run this task', '--postcopy-resume', 'boot the guest from its disks'):
        assert step in error.remedy


def test_other_failures_keep_the_engine_advice():
    location = assess(HostView('host-a', exists=True, state=1, reason=1), HostView('host-b'))
    error = _migration.migration_error('aborted', location, advice='raise the bandwidth',
                                       src_host='host-a', dst_host='host-b')
    assert error.msg == 'Migration failed: aborted. The guest now runs on host-a.'
    assert error.remedy == 'raise the bandwidth'


def test_a_destination_that_cannot_be_asked_is_not_reported_as_no_host_and_the_rerun_is_the_remedy():
    """make chaos, dest_libvirtd_stop@postcopy (2026-12-06): libvirt on the destination was down for the
    whole task. The report said "The guest now runs on no host" with no remedy, while host-a's copy was
    shut off because the migration completed: the guest ran on host-b, and a re-run (once host-b
    answered) is what removes the definition left on host-a."""
    src = HostView('host-a', exists=True, state=5, reason=4, persistent=True)  # shut off: migrated
    error = _migration.migration_error('client socket is closed', assess(src, HostView('host-b', reachable=False)),
                                       src_host='host-a', dst_host='host-b')
    assert 'runs on no host' not in error.msg
    assert error.msg.startswith('Migration failed: client socket is closed. Where the guest runs is not known: '
                                'cannot reach libvirt on host-b')
    assert 'host-a reports its copy shutoff (migrated) persistent' in error.msg
    assert 'the migration completed (QEMU sent every page), so the guest most likely runs on host-b' in error.msg
    assert error.remedy.startswith('Once libvirt answers on both host-a and host-b, run this task again')


class _CompletedJob:
    """libvirt's rule: reading a completed job's statistics deletes them unless asked to keep them."""

    def __init__(self):
        self.stats = {'memory_constant': 100, 'memory_total': 4096 * 1000, 'downtime': 30}

    def jobStats(self, flags):  # noqa: N802
        stats, keep = dict(self.stats), flags & 2
        if not keep:
            self.stats = {}
        return stats


def test_completed_stats_can_be_read_twice():
    # The result's stats and the history record (its zero pages) both read them.
    dom = _CompletedJob()
    assert _migration.completed_stats(dom) == _migration.completed_stats(dom) == dom.stats and dom.stats['downtime'] == 30
