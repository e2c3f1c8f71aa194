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

from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    MigrationError,
    OperationTimeoutError,
    is_libvirt_error,
    libvirt_error_details,
    translated,
)
from ansible_collections.kvmops.migration.plugins.module_utils._convergence_types import ActionKind, JobSample
from ansible_collections.kvmops.migration.plugins.module_utils._location import (
    DEFINE_PERSISTENT,
    DESTROY,
    RESUME,
    SOURCE,
    UNDEFINE,
    HostView,
    assess,
)
from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import read_domain
from ansible_collections.kvmops.migration.plugins.module_utils._fixed_cost import at_once
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION,
    VIR_DOMAIN_JOB_NONE,
    VIR_DOMAIN_JOB_STATS_COMPLETED,
    VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED,
    VIR_DOMAIN_SHUTOFF as SHUTOFF,
    VIR_DOMAIN_UNDEFINE_KEEP_NVRAM,
    VIR_DOMAIN_UNDEFINE_MANAGED_SAVE,
    VIR_DOMAIN_XML_INACTIVE,
    VIR_DOMAIN_XML_SECURE,
    VIR_ERR_NO_DOMAIN,
    VIR_ERR_OPERATION_UNSUPPORTED,
)

# A stale definition goes without its managed-save image; its NVRAM file is kept (it may be the
# only copy of the guest's firmware variables) and snapshot metadata makes the undefine fail
# (reported) rather than vanish.
UNDEFINE_FLAGS = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_KEEP_NVRAM
JOB_OPERATIONS = {4: 'incoming migration', 5: 'outgoing migration', 2: 'save', 3: 'restore', 6: 'snapshot',
                  8: 'dump', 9: 'backup'}
BLOCK_JOB_TYPES = {1: 'block pull', 2: 'block copy', 3: 'block commit', 4: 'block commit', 5: 'backup'}
ABANDON_AFTER_ABORT_S = 60
# How long the outcome check waits for a job that is still active on either host (an abort
# libvirt has not finished, a peer finishing its side) before it reports 'busy' untouched.
SETTLE_TIMEOUT_S = 300


def job_of(dom, disks=None):
    """The active migration or block job on ``dom`` as a short phrase, or None.

    ``disks``: the disk targets to ask about block jobs (read from the domain when None)."""
    try:
        stats = dom.jobStats(0)
    except Exception as exc:
        # libvirt (9.0 at least) refuses job statistics on the destination of a migration that is
        # coming in ("migration statistics are available only on the source host"): that refusal
        # is how an incoming job shows. Any other error: the domain is changing state, no job.
        if is_libvirt_error(exc) and libvirt_error_details(exc)['libvirt_error_code'] == VIR_ERR_OPERATION_UNSUPPORTED:
            return 'incoming migration'
        stats = {}
    if stats.get('type', VIR_DOMAIN_JOB_NONE) != VIR_DOMAIN_JOB_NONE:
        return JOB_OPERATIONS.get(stats.get('operation'), 'job')
    if disks is None:
        try:
            disks = [disk.target for disk in read_domain(dom.XMLDesc(0)).disks if disk.target]
        except Exception:  # the domain vanished: no job left on it
            return None
    for target in disks:
        try:
            info = dom.blockJobInfo(target, 0)
        except Exception:  # an empty drive or a disk that just went away: no job there
            continue
        if info:
            return '%s on %s' % (BLOCK_JOB_TYPES.get(info.get('type'), 'block job'), target)
    return None


def read_view(conn, uuid, host, disks=None):
    """What `host`'s libvirtd says about the domain with this UUID (never raises). ``disks``: the
    guest's disk targets when known (job_of reads the XML for them otherwise)."""
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
    except Exception:  # the domain vanished between lookup and state (migrated away)
        return HostView(host, exists=False)
    job = job_of(dom, disks) if state not in (SHUTOFF,) else None
    return HostView(host, exists=True, state=state, reason=reason, persistent=persistent, job=job)


class Sides:
    """The two hosts of one migration: their names and connections (None when unreachable)."""

    def __init__(self, src_host, dst_host, src_conn, dst_conn, disk_targets=None):
        self.src_host = src_host
        self.dst_host = dst_host
        self.src_conn = src_conn
        self.dst_conn = dst_conn
        self.disk_targets = disk_targets  # known disk targets spare each view an XML read

    def conn(self, side):
        return self.src_conn if side == SOURCE else self.dst_conn

    def host(self, side):
        return self.src_host if side == SOURCE else self.dst_host

    def views(self, uuid):
        """Both hosts' views, read at once (_fixed_cost): the outcome check waits for the slower only."""
        src_view, dst_view = at_once(lambda: read_view(self.src_conn, uuid, self.src_host, self.disk_targets),
                                     lambda: read_view(self.dst_conn, uuid, self.dst_host, self.disk_targets))
        return src_view, dst_view


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


def settle(sides, uuid, attempt, timeout_s=SETTLE_TIMEOUT_S, clock=time.monotonic, sleep=time.sleep):
    """(src_view, dst_view, location) once no job is active on either host, or as they are when
    ``timeout_s`` has passed (verdict ``busy``): a repair is only ever planned from a quiet pair."""
    deadline = clock() + timeout_s
    while True:
        src_view, dst_view = sides.views(uuid)
        location = assess(src_view, dst_view, attempt)
        if location.verdict != 'busy' or clock() >= deadline:
            return src_view, dst_view, location
        sleep(1)


def verify_and_repair(sides, uuid, attempt, dest_volumes_created=(), settle_timeout_s=SETTLE_TIMEOUT_S):
    """Look at both hosts, apply the repair steps of ``_location.assess`` in order (stopping at
    the first that fails), look again.

    This runs after every attempt (success, failure, abort, timeout): the result the module
    reports is what libvirt says on both hosts afterwards, never the migration's return code.
    It first waits (up to ``settle_timeout_s``) for any job still active on either host to end.
    """
    src_view, dst_view, location = settle(sides, uuid, attempt, settle_timeout_s)
    repairs = apply_steps(sides, uuid, location.steps)
    if location.verdict == 'source' and sides.dst_conn is not None and not any(r['done'] is False for r in repairs):
        for path in dest_volumes_created:
            repairs.append(delete_volume(sides.dst_conn, sides.dst_host, path,
                                         'volume pre-created for the storage copy of the failed attempt'))
    if repairs:
        src_view, dst_view = sides.views(uuid)
        location = assess(src_view, dst_view, attempt.replace(dest_defined_before=True))
    return Outcome(location, repairs, src_view, dst_view)


def apply_steps(sides, uuid, steps):
    """Apply repair steps in order; stop at the first that fails. Every step is reported: done,
    failed (with the error) or not attempted."""
    repairs = []
    failed = None
    for action, side, why in steps:
        entry = {'action': action, 'host': sides.host(side), 'why': why}
        if failed is not None:
            entry.update(done=None, error='not attempted: %s failed first' % failed)
            repairs.append(entry)
            continue
        try:
            _apply(sides, uuid, action, side)
            entry['done'] = True
        except Exception as exc:  # recorded and reported: the final look tells the truth
            entry.update(done=False, error=str(exc))
            failed = '%s on %s' % (action, sides.host(side))
        repairs.append(entry)
    return repairs


def _apply(sides, uuid, action, side):
    conn = sides.conn(side)
    dom = conn.lookupByUUIDString(uuid)
    if action == DESTROY:
        dom.destroy()
    elif action == UNDEFINE:
        dom.undefineFlags(UNDEFINE_FLAGS)
    elif action == RESUME:
        dom.resume()
    elif action == DEFINE_PERSISTENT:
        conn.defineXML(persistent_definition(sides, uuid, dom))
    else:  # pragma: no cover - assess plans no other action
        raise ValueError('unknown repair action %r' % action)


def persistent_definition(sides, uuid, dest_dom):
    """The XML to define the guest with where it runs: the source's persistent definition (with
    its secrets, e.g. graphics passwords, and its pending configuration changes) when the source
    still has one, else the running copy's own (with secrets)."""
    if sides.src_conn is not None:
        try:
            src_dom = sides.src_conn.lookupByUUIDString(uuid)
            if src_dom.isPersistent():
                return src_dom.XMLDesc(VIR_DOMAIN_XML_SECURE | VIR_DOMAIN_XML_INACTIVE)
        except Exception:  # no source definition any more: the running copy's own below
            pass
    return dest_dom.XMLDesc(VIR_DOMAIN_XML_SECURE)


def delete_volume(conn, host, path, why):
    entry = {'action': 'delete_volume', 'host': host, 'path': path, 'why': why}
    try:
        conn.storageVolLookupByPath(path).delete(0)
        entry['done'] = True
    except Exception as exc:  # reported; the volume may be gone already
        entry.update(done=False, error=str(exc))
    return entry


class LiveJob:
    """One peer-to-peer migration job driven by the convergence engine.

    ``migrateToURI3`` blocks until the job ends, so it runs in a thread (libvirt-python
    releases the GIL) while this thread samples ``jobStats()`` and applies the engine's
    actions. It samples every ``poll_interval`` and, when libvirt delivers QEMU's
    migration-iteration event, at once when a memory pass ends: the engine decides at pass
    ends (downtime steps, the switch to post-copy), and a decision taken at the next poll
    instead lets up to ``poll_interval`` of a pass run that the decision would have cut
    short. A hard deadline guards against an engine that never aborts and, once post-copy has
    started (when aborting would lose the guest), against a call that never returns.
    """

    def __init__(self, dom, dest_uri, spec, engine, poll_interval=0.5, hard_timeout_s=None,
                 clock=time.monotonic, sleep=time.sleep, on_sample=None, adopt=False):
        self.dom = dom
        self.dest_uri = dest_uri
        self.spec = spec
        self.engine = engine
        self.poll_interval = poll_interval
        self.hard_timeout_s = hard_timeout_s
        self.clock = clock
        self.sleep = sleep
        self.on_sample = on_sample
        # adopt: the job already runs (started by a run that was killed); watch and steer it
        # instead of starting one. It has ended when libvirt shows no job on the domain any more.
        self.adopt = adopt
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
        if self.adopt:
            running = self._job_active
        else:
            worker = threading.Thread(target=self._migrate, name='kvmops-migrate')
            worker.daemon = True
            worker.start()
            running = worker.is_alive
        try:
            self._drive(running, start)
        finally:
            if stop_watching is not None:
                try:
                    stop_watching()
                except Exception:  # the connection may be gone (libvirtd restarted); nothing to undo
                    pass
        self.duration_s = self.clock() - start
        return self.error is None

    def _job_active(self):
        try:
            return self.dom.jobInfo()[0] != VIR_DOMAIN_JOB_NONE
        except Exception:  # the domain left this host (migrated) or libvirtd went away: no job to watch here
            return False

    def _drive(self, running, start):
        aborted_at = None  # when an abort (the engine's or the hard timeout's) was sent
        while running():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            if not running():
                break
            now = self.clock()
            if aborted_at is not None and now - aborted_at > ABANDON_AFTER_ABORT_S:
                # libvirt did not return even after the abort (e.g. a cut link with TCP
                # retrying): stop sampling; the outcome check waits for the job to really end
                # (verify_and_repair settles first) and repairs nothing while it runs.
                self.error = self.error or MigrationError(
                    'the migration call did not return %ss after it was aborted' % ABANDON_AFTER_ABORT_S)
                self.abandoned = True
                break
            past_deadline = self.hard_timeout_s and now - start > self.hard_timeout_s
            if past_deadline and self.postcopy_started:
                # An abort would throw away the destination's half of the memory (libvirt refuses
                # it anyway) and a post-copy job whose stream broke may never return (seen with
                # libvirt 11.3 and 12.9). Stop waiting: the caller watches both hosts for the
                # split to resolve and reports the halves, touching neither.
                self.error = self.error or MigrationError(
                    'post-copy did not finish within the hard timeout of %ss and the migration call has not '
                    'returned' % self.hard_timeout_s)
                self.abandoned = True
                break
            if aborted_at is None and past_deadline:
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
        # Without KEEP_COMPLETED the read deletes them: the result's stats and the history record
        # (its zero pages) both read them.
        return dict(dom.jobStats(VIR_DOMAIN_JOB_STATS_COMPLETED | VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED))
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
        return MigrationError(msg, remedy=postcopy_split_procedure(src_host, dst_host),
                              details={'location': location.as_dict()})
    if location.verdict == 'postcopy_lost':
        return MigrationError('Migration failed: %s. %s.' % (job_message, location.problem),
                              remedy=postcopy_lost_procedure(src_host, dst_host),
                              details={'location': location.as_dict()})
    if location.verdict == 'unknown':
        # A host could not be asked: "runs on no host" would be a guess. Say what is known and how to end it.
        msg = 'Migration failed: %s. Where the guest runs is not known: %s.' % (job_message, location.problem)
        rerun = ('Once libvirt answers on both %s and %s, run this task again: it finds where the guest runs and '
                 'completes or undoes this attempt (docs/operations.md). Do not start or undefine the guest by '
                 'hand meanwhile.' % (src_host, dst_host))
        return MigrationError(msg, remedy=('%s %s' % (advice, rerun)) if advice else rerun,
                              details={'location': location.as_dict()})
    where = ', '.join(location.running_on) or 'no host'
    msg = 'Migration failed: %s. The guest now runs on %s.' % (job_message, where)
    if location.verdict == 'busy':
        msg = 'Migration failed: %s. Not verified yet: %s.' % (job_message, location.problem)
    elif location.problem:
        msg += ' ' + location.problem + '.'
    return MigrationError(msg, remedy=advice, details={'location': location.as_dict()})


def postcopy_lost_procedure(src_host, dst_host):
    """What an operator does when either half of a post-copy died (the destination's copy, or the
    source's before every page was fetched): the memory is gone, the disks are intact. Booting from
    the disks is the only consistent way back."""
    return ('The running state of the guest cannot be recovered (docs/operations.md "Post-copy interrupted"). '
            'Do not resume the copy on %(src)s. 1. destroy it there if it is still active (virsh destroy); '
            '2. on %(dst)s, remove what the migration left (virsh destroy if it is still active, virsh undefine '
            '--keep-nvram); 3. start the guest again from its disks on %(src)s, where it is defined (virsh start), '
            'as after a power loss. If libvirt refuses the start with "cannot acquire state change lock" (held by '
            'the migration call), it still holds the ended migration\'s job: restart libvirtd on %(src)s (its '
            'running guests keep running) and start the guest again.' % {'src': src_host, 'dst': dst_host})
