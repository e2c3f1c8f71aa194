# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The live part of a virt_migrate run (a mixin of MigrationManager): the copy targets, the job
under the convergence engine, the outcome check on both hosts after it (reconnecting to a
libvirtd restarted meanwhile; waiting out an interrupted post-copy, which must never be cut in
two) and the result. The manager's validation, idempotence and cold/offline paths stay in
_migration_manager."""

from __future__ import annotations

import os

from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError, OperationTimeoutError, translated
from ansible_collections.kvmops.migration.plugins.module_utils._convergence import ConvergenceEngine
from ansible_collections.kvmops.migration.plugins.module_utils._convergence_types import Policy
from ansible_collections.kvmops.migration.plugins.module_utils._location import Attempt, assess
from ansible_collections.kvmops.migration.plugins.module_utils._migration import (
    LiveJob,
    Sides,
    completed_stats,
    migration_error,
    read_view,
    stats_report,
    thinned,
    verify_and_repair,
)
from ansible_collections.kvmops.migration.plugins.module_utils._migration_spec import default_timeout_s, outcome_path
from ansible_collections.kvmops.migration.plugins.module_utils._postcopy_recovery import PostcopyRecovery
from ansible_collections.kvmops.migration.plugins.module_utils._storage import ensure_dest_pool, volume_exists
from ansible_collections.kvmops.migration.plugins.module_utils._waiter import wait_until

# How long the outcome check waits for a libvirtd that was restarted during the job.
RECONNECT_TIMEOUT_S = 30
# After libvirt reported a post-copy failure, wait at least this long for QEMU's stream to
# finish by itself, even when the overall timeout is already spent.
POSTCOPY_SETTLE_MIN_S = 30


class LiveMigrationSteps:
    """What MigrationManager does for mode live (and paused): needs its p, result, client, clock,
    strategy, detached, uuid, src_host, dst_host, disk_targets, paused_by_user and _attempt()."""

    def _live(self, dom, sides, uri, spec, storage, adopt=False):
        created = self._prepare_copy_targets(sides.dst_conn, storage)
        memory = dom.info()[2] * 1024
        copied = sum(sides.src_conn.storageVolLookupByPath(d['path']).info()[1]
                     for d in storage if d['action'].startswith('copy') and volume_exists(sides.src_conn, d['path']))
        timeout_s = self.p['timeout'] or default_timeout_s(memory, copied)
        policy = Policy(max_downtime_ms=self.p['max_downtime'], allow_postcopy=self.p['allow_postcopy'],
                        completion_timeout_ms=timeout_s * 1000, **(self.p['policy'] or {}))
        engine = ConvergenceEngine(policy, spec.postcopy_enabled, spec.auto_converge_enabled,
                                   course=self.strategy.course(timeout_s))
        on_sample = None
        if self.detached is not None:
            path = outcome_path(self.p['state_dir'], self.uuid)
            self.detached.report_to(path, {'name': dom.name(), 'uuid': self.uuid, 'source': self.src_host,
                                           'destination': self.dst_host, 'mode': self.p['mode']})
            if not self.p['wait']:
                started = dict(self.result, changed=True, started=True, outcome_file=path, pid=os.getpid(),
                               timeout_s=timeout_s, msg=(
                                   'Started migrating %s from %s to %s; it goes on without this task. Follow it '
                                   'with virt_migrate_info (name: %s); run this task again with wait: true to wait '
                                   'for it and verify where the guest ended up.' % (
                                       dom.name(), self.src_host, self.dst_host, dom.name())))

                def on_sample(dummy_sample):
                    self.detached.announce(started)
        job = LiveJob(dom, uri, spec, engine, poll_interval=self.p['poll_interval'], hard_timeout_s=timeout_s + 60,
                      on_sample=on_sample, adopt=adopt)
        job.run()
        self.clock.mark('job')
        # A libvirtd restarted during the job closed our connection to it: look again with a
        # new one (waiting a little for a daemon that is coming back), or the outcome check
        # could not see where the guest went.
        src_conn = self._reconnect(self.client.uri)
        if job.postcopy_started and job.error is not None:
            # The rest of the overall timeout (at least a short grace) for QEMU to finish on its own.
            src_conn, dst_conn = self._wait_for_postcopy_to_settle(
                uri, max(timeout_s - job.duration_s, POSTCOPY_SETTLE_MIN_S), spec)
        else:
            dst_conn = self._reconnect(uri)
        sides = Sides(self.src_host, self.dst_host, src_conn, dst_conn, self.disk_targets)
        outcome = verify_and_repair(sides, self.uuid, self._attempt(postcopy_started=job.postcopy_started), created)
        self.clock.mark('outcome_check')
        return self._live_result(dom, sides, job, engine, outcome, timeout_s, storage, adopt)

    def _live_result(self, dom, sides, job, engine, outcome, timeout_s, storage, adopt):
        dest_dom = None
        if self.dst_host in outcome.location.running_on:
            try:
                dest_dom = sides.dst_conn.lookupByUUIDString(self.uuid)
            except Exception:  # gone again: reported by the location
                dest_dom = None
        stats = stats_report(completed_stats(dest_dom), job.samples, job.duration_s, job.pass_end_events)
        self.result.update(stats=stats, policy_actions=[a.as_dict() for a in engine.actions],
                           progress=thinned(job.samples),
                           policy_summary=engine.summary(), location=outcome.as_dict(), timeout_s=timeout_s)
        self.result.update(self.strategy.after_job(
            sides, self.uuid, outcome, job, stats, self.p, guest_paused=self.paused_by_user))
        self.clock.mark('report')
        self.result['timings'] = self.clock.as_dict()
        if job.action_errors:
            self.result['policy_action_errors'] = job.action_errors
        moved = outcome.location.verdict == 'destination'
        self.result['changed'] = moved or bool(outcome.repairs)
        what = 'Adopted the running migration of %s (its run had ended) and saw it through: ' % dom.name() \
            if adopt else ''
        if moved:
            self._remove_source_copies(sides.src_conn, [d['path'] for d in storage if d['action'].startswith('copy')])
            downtime = 'unknown' if stats['downtime_ms'] is None else '%s ms' % stats['downtime_ms']
            self.result['msg'] = '%sMigrated %s from %s to %s in %.1f s (downtime %s)%s' % (
                what, dom.name(), self.src_host, self.dst_host, stats['total_time_ms'] / 1000.0, downtime,
                '; it stays paused, as its user left it' if self.paused_by_user else '')
            resumed = resumed_after_s(self.result.get('postcopy_recovery'))
            if resumed is not None:
                self.result['msg'] += ('; its post-copy was interrupted (%s) and resumed on a new connection %.0f s '
                                       'after the failure (postcopy_recovery); the time above is up to the failure'
                                       % (job.error_message(), resumed))
            elif job.error is not None:
                self.result['msg'] += '; libvirt reported an error (%s) but the guest runs on %s' % (
                    job.error_message(), self.dst_host)
            return self.result
        gave_up = engine.state == 'aborting'
        # No error from libvirt means its job completed: the guest moved, then stopped being there
        # (its QEMU on the destination died, make chaos seeds 4, 8, 39), as the location below says.
        reason = job.error_message() or (
            'libvirt reported the migration complete, but afterwards the guest does not run on %s' % self.dst_host)
        advice = engine.advice() if gave_up else None
        if outcome.location.verdict == 'postcopy_split':
            self.result['postcopy_split'] = postcopy_halves(self.src_host, self.dst_host, job.samples)
        error = migration_error(what + reason, outcome.location, advice, self.src_host, self.dst_host)
        error.details.update(self.result)
        raise error

    def _reconnect(self, uri, timeout_s=RECONNECT_TIMEOUT_S):
        """The connection to `uri`, reopened if it died; None if libvirt there stays unreachable."""
        try:
            return wait_until(lambda: self.client.reopen_if_dead(uri), timeout_s, interval_s=2,
                              description='libvirt at %s to answer again' % uri)
        except OperationTimeoutError:
            return None

    def _wait_for_postcopy_to_settle(self, uri, timeout_s, spec=None):
        """libvirt reported a failure during post-copy. QEMU's own stream may survive a short
        network outage and finish anyway (seen with libvirt 9.0 / QEMU 7.2): while the guest's
        memory is split between the hosts, destroying either half would lose it, so watch both
        hosts until the split resolves or the timeout passes; the caller then reports or repairs."""
        recovery = None
        if spec is not None:  # (libvirt >= 8.5)
            recovery = PostcopyRecovery(self.uuid, uri, spec, self.result, stall_limit_s=self.p['postcopy_resume_after'])

        def settled():
            src_conn = self.client.reopen_if_dead(self.client.uri)
            dst_conn = self.client.reopen_if_dead(uri)
            verdict = assess(read_view(src_conn, self.uuid, self.src_host),
                             read_view(dst_conn, self.uuid, self.dst_host),
                             Attempt(postcopy_started=True)).verdict
            if recovery is not None:
                recovery.step(src_conn, dst_conn, verdict)  # resumes a stalled post-copy (_postcopy_recovery)
            return (src_conn, dst_conn) if verdict not in ('postcopy_split', 'unknown', 'busy') else None
        try:
            return wait_until(settled, timeout_s, interval_s=2, description='post-copy to finish or fail')
        except OperationTimeoutError:
            return self.client.reopen_if_dead(self.client.uri), self.client.reopen_if_dead(uri)

    def _remove_source_copies(self, src_conn, paths):
        """With remove_source_storage, delete the source images of disks that were copied,
        only after the outcome check saw the guest on the destination."""
        if not self.p['remove_source_storage'] or not paths:
            return
        removed = []
        for path in paths:
            with translated('Removing the source copy %s on %s' % (path, self.src_host)):
                src_conn.storageVolLookupByPath(path).delete(0)
            removed.append(path)
        self.result['removed_source_storage'] = removed

    def _prepare_copy_targets(self, dst_conn, storage):
        """Pools on the destination for disks to copy; return the volume paths libvirt will create."""
        created = []
        for disk in storage:
            if not disk['action'].startswith('copy'):
                continue
            directory = disk['path'].rsplit('/', 1)[0]
            ensure_dest_pool(dst_conn, directory, self.dst_host)
            if volume_exists(dst_conn, disk['path']):
                raise InvalidInputError('%s already exists on %s; a storage copy would overwrite it' % (
                    disk['path'], self.dst_host), remedy='Remove the stale volume on the destination first.')
            created.append(disk['path'])
        return created


def resumed_after_s(recovery):
    """Seconds from the post-copy failure to the resume that succeeded (``postcopy_recovery``'s
    report), None when no resume succeeded."""
    attempts = (recovery or {}).get('attempts') or []
    return next((a['at_s'] for a in attempts if a.get('result') == 'resumed'), None)


def postcopy_halves(src_host, dst_host, samples):
    """Fault case 5's report: which host holds what of a guest whose post-copy was interrupted,
    with the memory still to fetch as of the last job sample libvirt gave."""
    last = next((s for s in reversed(samples) if s.get('remaining') is not None), None)
    return {'vcpus_on': dst_host, 'unfetched_memory_on': src_host,
            'unfetched_memory_bytes': last['remaining'] if last else None,
            'as_of_ms': last['t_ms'] if last else None}
