# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Running migrations through libvirt: the live job under the convergence engine, the cold
steps, and the outcome check on both hosts that follows every attempt.

The decisions live in pure modules (``_migration_flags``, ``_convergence``, ``_location``);
this module only talks to libvirt and applies them.
"""

from __future__ import annotations

import threading
import time

from ansible_collections.kvmops.migration.plugins.module_utils._client import (
    MigrationError,
    OperationTimeoutError,
    is_libvirt_error,
    libvirt_error_details,
    translated,
)
from ansible_collections.kvmops.migration.plugins.module_utils._convergence import (
    ActionKind,
    JobSample,
)
from ansible_collections.kvmops.migration.plugins.module_utils._location import HostView, assess

VIR_ERR_NO_DOMAIN = 42
VIR_DOMAIN_JOB_STATS_COMPLETED = 1
VIR_DOMAIN_JOB_NONE = 0
VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION = 20
ABANDON_AFTER_ABORT_S = 60


def read_view(conn, uuid, host):
    """What `host`'s libvirtd says about the domain with this UUID (never raises)."""
    if conn is None:
        return HostView(host, reachable=False)
    try:
        dom = conn.lookupByUUIDString(uuid)
    except Exception as exc:  # libvirtError: absent, or the host is unreachable
        if is_libvirt_error(exc) and libvirt_error_details(exc)['libvirt_error_code'] == VIR_ERR_NO_DOMAIN:
            return HostView(host, exists=False)
        return HostView(host, reachable=False)
    try:
        state, reason = dom.state(0)
        persistent = bool(dom.isPersistent())
        try:
            job_active = dom.jobInfo()[0] != VIR_DOMAIN_JOB_NONE
        except Exception:  # no job API answer while the domain changes state: treat as none
            job_active = False
    except Exception:  # the domain vanished between lookup and state (migrated away)
        return HostView(host, exists=False)
    return HostView(host, exists=True, state=state, reason=reason, persistent=persistent, job_active=job_active)


class Outcome:
    """Where the guest ended up after an attempt, what we repaired, and what we could not."""

    def __init__(self, location, repairs, src_view, dst_view):
        self.location = location
        self.repairs = repairs
        self.src_view = src_view
        self.dst_view = dst_view

    def as_dict(self):
        data = self.location.as_dict()
        data['source'] = self.src_view.as_dict()
        data['destination'] = self.dst_view.as_dict()
        data['repairs'] = self.repairs
        if self.location.problem:
            data['problem'] = self.location.problem
        return data


def verify_and_repair(client, src_conn, dst_conn, uuid, src_host, dst_host, want_persistent,
                      want_undefine_source, source_was_paused_by_user, dest_defined_before, dest_volumes_created=()):
    """Look at both hosts, apply the repair steps of ``_location.assess``, look again.

    This runs after every attempt (success, failure, abort, timeout): the result the module
    reports is what libvirt says on both hosts afterwards, never the migration's return code.
    """
    src_view = read_view(src_conn, uuid, src_host)
    dst_view = read_view(dst_conn, uuid, dst_host)
    location = assess(src_view, dst_view, want_persistent, want_undefine_source,
                      source_was_paused_by_user, dest_defined_before)
    repairs = []
    for action, side, why in location.steps:
        conn, host = (src_conn, src_host) if side == 'source' else (dst_conn, dst_host)
        entry = {'action': action, 'host': host, 'why': why}
        try:
            dom = conn.lookupByUUIDString(uuid)
            if action == 'destroy':
                dom.destroy()
            elif action == 'undefine':
                dom.undefineFlags(0)
            elif action == 'resume':
                dom.resume()
            elif action == 'define_persistent':
                conn.defineXML(dom.XMLDesc(0))
            entry['done'] = True
        except Exception as exc:  # recorded and reported: the final look below tells the truth
            entry['done'] = False
            entry['error'] = str(exc)
        repairs.append(entry)
    if location.verdict == 'source' and dst_conn is not None:
        for path in dest_volumes_created:
            try:
                dst_conn.storageVolLookupByPath(path).delete(0)
                repairs.append({'action': 'delete_volume', 'host': dst_host, 'path': path, 'done': True,
                                'why': 'volume pre-created for the storage copy of the failed attempt'})
            except Exception as exc:  # reported; the volume may be gone already
                repairs.append({'action': 'delete_volume', 'host': dst_host, 'path': path, 'done': False,
                                'error': str(exc)})
    if repairs:
        src_view = read_view(src_conn, uuid, src_host)
        dst_view = read_view(dst_conn, uuid, dst_host)
        location = assess(src_view, dst_view, want_persistent, want_undefine_source,
                          source_was_paused_by_user, True)
    return Outcome(location, repairs, src_view, dst_view)


class LiveJob:
    """One peer-to-peer migration job driven by the convergence engine.

    ``migrateToURI3`` blocks until the job ends, so it runs in a thread (libvirt-python
    releases the GIL) while this thread samples ``jobStats()`` and applies the engine's
    actions. It samples every ``poll_interval`` and, when libvirt delivers QEMU's
    migration-iteration event, at once when a memory pass ends: the engine decides at pass
    ends (downtime steps, the switch to post-copy), and a decision taken at the next poll
    instead lets up to ``poll_interval`` of a pass run that the decision would have cut
    short. A hard deadline guards against an engine that never aborts.
    """

    def __init__(self, dom, dest_uri, spec, engine, poll_interval=0.5, hard_timeout_s=None,
                 clock=time.monotonic, sleep=time.sleep, on_sample=None):
        self.dom = dom
        self.dest_uri = dest_uri
        self.spec = spec
        self.engine = engine
        self.poll_interval = poll_interval
        self.hard_timeout_s = hard_timeout_s
        self.clock = clock
        self.sleep = sleep
        self.on_sample = on_sample
        self.samples = []
        self.action_errors = []
        self.error = None
        self.postcopy_started = False
        self.abandoned = False
        self._started_job = False
        # Set when the sampling loop should look now: a pass ended, or the job returned.
        self._wake = threading.Event()
        self.pass_end_events = 0

    def _migrate(self):
        try:
            self.dom.migrateToURI3(self.dest_uri, self.spec.params, self.spec.flags)
        except Exception as exc:  # handed to the main thread, which reports it
            self.error = exc
        finally:
            self._wake.set()

    def _on_pass_end(self, *dummy_event):
        self.pass_end_events += 1
        self._wake.set()

    def _watch_pass_ends(self):
        """Register for the migration-iteration event and return what stops watching; None
        where libvirt cannot deliver it (no event loop, an old libvirt, a test double): polling
        alone then drives the engine."""
        try:
            conn = self.dom.connect()
            callback_id = conn.domainEventRegisterAny(
                self.dom, VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION, self._on_pass_end, None)
        except Exception:  # any of the reasons above; the poll still samples every interval
            return None
        return lambda: conn.domainEventDeregisterAny(callback_id)

    def run(self):
        start = self.clock()
        stop_watching = self._watch_pass_ends()
        worker = threading.Thread(target=self._migrate, name='kvmops-migrate')
        worker.daemon = True
        worker.start()
        try:
            self._drive(worker, start)
        finally:
            if stop_watching is not None:
                try:
                    stop_watching()
                except Exception:  # the connection may be gone (libvirtd restarted); nothing to undo
                    pass
        self.duration_s = self.clock() - start
        return self.error is None

    def _drive(self, worker, start):
        aborted_at = None  # when an abort (the engine's or the hard timeout's) was sent
        while worker.is_alive():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            if not worker.is_alive():
                break
            now = self.clock()
            if aborted_at is not None and now - aborted_at > ABANDON_AFTER_ABORT_S:
                # libvirt did not return even after the abort (e.g. a cut link with TCP
                # retrying): stop waiting; the outcome check on both hosts tells the truth.
                self.error = self.error or MigrationError(
                    'the migration call did not return %ss after it was aborted' % ABANDON_AFTER_ABORT_S)
                self.abandoned = True
                break
            if (aborted_at is None and self.hard_timeout_s and not self.postcopy_started
                    and now - start > self.hard_timeout_s):
                self._abort('hard timeout of %ss reached' % self.hard_timeout_s)
                aborted_at = now
            self._sample(int((now - start) * 1000))
            if aborted_at is None and any(a.kind == ActionKind.ABORT for a in self.engine.actions):
                aborted_at = now

    def _sample(self, t_ms):
        """One jobStats() reading through the engine; apply what it decides."""
        try:
            stats = self.dom.jobStats(0)
        except Exception:  # the job may end between is_alive() and jobStats()
            return
        sample = JobSample.from_job_stats(stats, t_ms)
        if not sample.is_running or sample.job_type == VIR_DOMAIN_JOB_NONE:
            return
        actions = []
        if not self._started_job:
            self._started_job = True
            actions += self.engine.initial_actions(t_ms)
        actions += self.engine.observe(sample)
        self.samples.append(_compact(sample))
        if self.on_sample:
            self.on_sample(sample)
        for action in actions:
            self._apply(action)

    def _apply(self, action):
        try:
            if action.kind == ActionKind.SET_MAX_DOWNTIME:
                self.dom.migrateSetMaxDowntime(int(action.value), 0)
            elif action.kind == ActionKind.START_POSTCOPY:
                self.dom.migrateStartPostCopy(0)
                self.postcopy_started = True
            elif action.kind == ActionKind.ABORT:
                self.dom.abortJob()
        except Exception as exc:  # e.g. the job finished a moment ago; recorded for the report
            self.action_errors.append({'action': action.kind, 't_ms': action.t_ms, 'error': str(exc)})

    def _abort(self, why):
        try:
            self.dom.abortJob()
        except Exception as exc:  # reported; the outcome check decides what happened
            self.action_errors.append({'action': 'abort', 'error': '%s: %s' % (why, exc)})

    def error_message(self):
        if self.error is None:
            return None
        if is_libvirt_error(self.error):
            return libvirt_error_details(self.error)['libvirt_error_message']
        return str(self.error)


def _compact(sample):
    """The figures of a sample worth returning (the full stream can be long)."""
    return {'t_ms': sample.t_ms, 'pass': sample.memory_iteration, 'remaining': sample.remaining,
            'processed': sample.data_processed, 'dirty_rate_bps': sample.dirty_rate_bps,
            'bandwidth_bps': sample.memory_bps, 'throttle': sample.auto_converge_throttle}


def thinned(samples, limit=200):
    """At most `limit` samples, evenly spread, always keeping the last one."""
    if len(samples) <= limit:
        return list(samples)
    step = len(samples) / float(limit - 1)
    picked = [samples[int(i * step)] for i in range(limit - 1)]
    return picked + [samples[-1]]


def completed_stats(dom):
    """Statistics of the last completed job on this domain (either side), or {}."""
    if dom is None:
        return {}
    try:
        return dict(dom.jobStats(VIR_DOMAIN_JOB_STATS_COMPLETED))
    except Exception:  # not kept by this libvirt, or the domain is gone
        return {}


def stats_report(completed, samples, duration_s, pass_end_events=0):
    """Sizes in bytes, times in ms, rates in bytes/s: the `stats` of the module result."""
    last = samples[-1] if samples else {}
    dirty = [s['dirty_rate_bps'] for s in samples if s.get('dirty_rate_bps')]
    passes = completed.get('memory_iteration') or last.get('pass') or 0
    elapsed = completed.get('time_elapsed') or int(duration_s * 1000)
    transferred = completed.get('data_processed') or last.get('processed')
    return {
        'total_time_ms': elapsed,
        'downtime_ms': completed.get('downtime'),
        'data_transferred_bytes': transferred,
        'memory_transferred_bytes': completed.get('memory_processed'),
        'disk_transferred_bytes': completed.get('disk_processed'),
        'memory_total_bytes': completed.get('memory_total'),
        'passes': passes,
        'throughput_bps': completed.get('memory_bps') or (
            int(transferred * 1000 / elapsed) if transferred and elapsed else None),
        'dirty_rate_bps': max(dirty) if dirty else None,
        'samples': len(samples),
        'pass_end_events': pass_end_events,
    }


def shutdown_guest(dom, timeout_s, force, clock=time.monotonic, sleep=time.sleep):
    """Graceful shutdown (ACPI) within timeout_s, then destroy if `force`. Returns how it stopped."""
    with translated('Shutting down the guest'):
        if not dom.isActive():
            return 'already_off'
        dom.shutdown()
    deadline = clock() + timeout_s
    while clock() < deadline:
        if not dom.isActive():
            return 'shutdown'
        sleep(1)
    if not force:
        raise OperationTimeoutError(
            'The guest did not shut down within %ss; nothing was moved (it may still be shutting down)' % timeout_s,
            remedy='Raise shutdown_timeout, make the guest honour ACPI shutdown, or set force_shutdown: true.')
    with translated('Forcing the guest off'):
        dom.destroy()
    return 'forced'


def postcopy_split_procedure(src_host, dst_host):
    """The operator procedure for an interrupted post-copy (docs/operations.md, "Post-copy
    interrupted"). Software alone cannot save the guest while the hosts cannot talk: only a
    restored network (or QEMU's post-copy recovery) can bring the missing pages over."""
    return ('Post-copy was interrupted; follow docs/operations.md "Post-copy interrupted": 1. do not destroy, '
            'resume or undefine the guest on either host; 2. restore the network between %(src)s and %(dst)s; '
            "QEMU's own stream usually carries on by itself while TCP still retries (about 15 minutes); 3. re-run "
            'this task: it waits for the two copies to become one and removes the stale definition on %(src)s; '
            "4. if %(src)s still shows the guest 'paused (post-copy failed)' once the network is back, try "
            "libvirt's post-copy recovery on %(src)s (virsh migrate --postcopy --postcopy-resume); if that is "
            'refused, the memory cannot be reunited: destroy both copies and boot the guest from its disks on one '
            'host, as after a power loss.' % {'src': src_host, 'dst': dst_host})


def migration_error(job_message, location, advice=None, src_host=None, dst_host=None):
    """The failed-migration error, with where the guest is now."""
    if location.verdict == 'postcopy_split':
        msg = 'Migration failed: %s. The guest is split between %s and %s: %s.' % (
            job_message, src_host, dst_host, location.problem)
        # The procedure only: nothing else the engine could advise helps until the halves are one.
        return MigrationError(msg, remedy=postcopy_split_procedure(src_host, dst_host))
    where = ', '.join(location.running_on) or 'no host'
    msg = 'Migration failed: %s. The guest now runs on %s.' % (job_message, where)
    if location.problem:
        msg += ' ' + location.problem + '.'
    return MigrationError(msg, remedy=advice)
