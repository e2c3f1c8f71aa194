# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Recovering a post-copy migration whose connection broke, with VIR_MIGRATE_POSTCOPY_RESUME.

Private module_utils file (leading underscore): its API may change without notice.

Once a guest has switched to post-copy its vCPUs run on the destination while the pages it has
not fetched yet are only on the source: neither half may be destroyed. When the link breaks,
libvirt declares the job failed (source ``paused (post-copy failed)``, destination ``running
(post-copy failed)``); QEMU's own stream may still be alive and finish by itself once the link is
back (seen on libvirt 9.0 and 11.3). libvirt 8.5 and newer can also resume the migration on a new
connection: ``migrateToURI3`` with the original flags plus POSTCOPY and POSTCOPY_RESUME, after
QEMU's stalled stream was paused (``abortJobFlags(VIR_DOMAIN_ABORT_JOB_POSTCOPY)``).

``decide`` is the pure decision (wait, resume, or leave the guest to the operator's procedure);
``PostcopyRecovery`` reads what it needs through libvirt and makes the call. It is driven from
``MigrationManager._wait_for_postcopy_to_settle``, which polls both hosts until the split resolves.
"""

from __future__ import annotations

import time

from ansible_collections.kvmops.migration.plugins.module_utils._errors import is_libvirt_error
from ansible_collections.kvmops.migration.plugins.module_utils._host_facts import library_version, lv_message
from ansible_collections.kvmops.migration.plugins.module_utils._location import PAUSED, PAUSED_POSTCOPY_FAILED, RUNNING
from ansible_collections.kvmops.migration.plugins.module_utils._migration import read_view
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_DOMAIN_ABORT_JOB_POSTCOPY,
    VIR_MIGRATE_POSTCOPY,
    VIR_MIGRATE_POSTCOPY_RESUME,
)

RESUME_MIN_LIBVIRT = 8005000          # VIR_MIGRATE_POSTCOPY_RESUME, VIR_DOMAIN_ABORT_JOB_POSTCOPY
# libvirt 11.2.0 and 11.3.x crash on the destination on every resume: the Prepare of a resumed
# incoming migration hands qemuProcessIncomingDefNew a NULL descriptor pointer, which it reads
# (a regression of 11.2.0, fixed in 11.4.0: "Fix virtqemud crash when resuming failed post-copy
# migration"; seen on the lab as a SIGSEGV of libvirtd and of virtqemud, Debian trixie's 11.3.0).
# No flag or parameter avoids that path, so a resume towards those versions is never tried.
RESUME_CRASHES_DESTINATION = (11002000, 11004000)   # [first affected, first fixed)
# QEMU's own stream gets this long without progress, counted from when the destination answers
# again, before it counts as dead (virt_migrate's postcopy_resume_after; this is its default):
# its TCP connection often survives an outage and retransmits
# with a backoff of up to two minutes (Linux's largest retransmission timeout is 120 s), and a
# stream that goes on finishes by itself (seen on libvirt 9.0 and 11.3), the gentlest outcome.
# Pausing it for a resume is for a dead stream only.
STALL_S = 150
# A resume that fails is tried again at most this often; one that costs the destination its
# libvirt daemon (it restarted meanwhile) is never repeated: each try would do the same.
MAX_ATTEMPTS = 3
RETRY_S = 10

WAIT, RESUME, GIVE_UP, NOTHING = 'wait', 'resume', 'give_up', 'nothing'


def format_lib(version):
    return '%d.%d.%d' % (version // 1000000, (version // 1000) % 1000, version % 1000) if version else 'unknown'


def decide(split, src_libvirt, dst_libvirt, dest_reachable, stalled_s, attempts, daemon_lost, since_attempt_s,
           stall_limit_s=STALL_S):
    """(action, why) for one look at a split guest.

    ``split``: the guest is split by a failed post-copy (source paused post-copy failed, destination
    running or paused by post-copy); ``stalled_s``: seconds without progress of QEMU's stream (None:
    progress unknown, counted from the failure); ``attempts``: resumes tried; ``daemon_lost``: the
    destination's libvirt daemon restarted during a resume; ``since_attempt_s``: since the last try;
    ``stall_limit_s``: how long the stream may make no progress before it counts as dead
    (virt_migrate's ``postcopy_resume_after``, default STALL_S)."""
    if not split:
        return NOTHING, 'the guest is not split by a failed post-copy'
    oldest = min(v for v in (src_libvirt, dst_libvirt) if v) if (src_libvirt and dst_libvirt) else None
    if oldest is None or oldest < RESUME_MIN_LIBVIRT:
        return GIVE_UP, ('post-copy recovery needs libvirt 8.5 or newer on both hosts (VIR_MIGRATE_POSTCOPY_RESUME); '
                         'source has %s, destination %s' % (format_lib(src_libvirt), format_lib(dst_libvirt)))
    if RESUME_CRASHES_DESTINATION[0] <= dst_libvirt < RESUME_CRASHES_DESTINATION[1]:
        return GIVE_UP, ("libvirt %s on the destination crashes when a post-copy migration is resumed (a defect of "
                         'libvirt 11.2 and 11.3, fixed in 11.4): no resume is tried. Upgrade libvirt on the '
                         'destination to 11.4 or newer (restarting its daemon keeps both halves of the guest), '
                         'then resume from the source (virsh migrate --postcopy --postcopy-resume with the '
                         'original options)' % format_lib(dst_libvirt))
    if daemon_lost:
        return GIVE_UP, ("the destination's libvirt daemon restarted during the resume (it crashed on it): trying "
                         'again would do the same')
    if attempts >= MAX_ATTEMPTS:
        return GIVE_UP, '%d resumes failed' % attempts
    if not dest_reachable:
        return WAIT, 'the destination cannot be reached yet'
    if stalled_s is not None and stalled_s < stall_limit_s:
        return WAIT, "QEMU's own stream made progress %.0f s ago: it may still finish by itself" % stalled_s
    if attempts and since_attempt_s is not None and since_attempt_s < RETRY_S:
        return WAIT, 'the last resume failed %.0f s ago' % since_attempt_s
    return RESUME, "QEMU's stream made no progress for %s s and the destination answers again" % (
        'unknown' if stalled_s is None else '%.0f' % stalled_s)


def is_split(src_view, dst_view):
    """The source keeps the unfetched pages (paused, post-copy failed), the destination the vCPUs."""
    return (src_view.exists and src_view.state == PAUSED and src_view.reason == PAUSED_POSTCOPY_FAILED
            and dst_view.exists and dst_view.state in (RUNNING, PAUSED))


class PostcopyRecovery:
    """Watches a guest split by a failed post-copy and resumes its migration when QEMU's own stream
    is dead and both libvirts can (``decide``). ``spec`` is the original migration (flags and
    typed parameters, ``_migration_flags.MigrationSpec``); ``result`` the module's result, whose
    ``postcopy_recovery`` entry reports what was tried."""

    def __init__(self, uuid, dest_uri, spec, result, clock=time.monotonic, stall_limit_s=STALL_S):
        self.uuid = uuid
        self.stall_limit_s = stall_limit_s
        self.dest_uri = dest_uri
        self.spec = spec
        self.clock = clock
        self.report = {'attempts': [], 'action': None, 'why': None}
        self.result = result
        self.started = None
        self.progress = None       # (memory_remaining, when it last changed)
        self.reachable_since = None
        self.last_attempt = None
        self.daemon_lost = False
        self.resume_conn = None    # the connection to the destination a resume was tried with

    def resume_flags(self):
        return self.spec.flags | VIR_MIGRATE_POSTCOPY | VIR_MIGRATE_POSTCOPY_RESUME

    def step(self, src_conn, dst_conn, verdict):
        """One look (``verdict``: the location's, from ``_location.assess``); resumes when ``decide`` says so."""
        if verdict != 'postcopy_split' or src_conn is None:
            return
        now = self.clock()
        if self.started is None:
            self.started = now
        src_view, dst_view = read_view(src_conn, self.uuid, 'source'), read_view(dst_conn, self.uuid, 'destination')
        dom = src_conn.lookupByUUIDString(self.uuid) if src_view.exists else None
        stalled_s = self._stalled_s(dom, now)
        if not dst_view.reachable:
            self.reachable_since = None
        elif self.reachable_since is None:
            self.reachable_since = now
        if self.reachable_since is not None:
            stalled_s = min(stalled_s, now - self.reachable_since)
        if self.resume_conn is not None and not _alive(self.resume_conn):
            # The destination's daemon restarted since the resume was tried (our connection died).
            self.daemon_lost = True
        action, why = decide(is_split(src_view, dst_view), library_version(src_conn), library_version(dst_conn),
                             dst_view.reachable, stalled_s, len(self.report['attempts']), self.daemon_lost,
                             None if self.last_attempt is None else now - self.last_attempt,
                             stall_limit_s=self.stall_limit_s)
        self.report.update(action=action, why=why)
        self.result['postcopy_recovery'] = self.report
        if action == RESUME and dom is not None:
            self._resume(dom, dst_conn, now)

    def _stalled_s(self, dom, now):
        """Seconds since the source's job last reported less memory remaining (from the first look
        when libvirt gives no figure)."""
        remaining = None
        try:
            remaining = (dom.jobStats(0) or {}).get('memory_remaining') if dom is not None else None
        except Exception as exc:  # pylint: disable=broad-except
            if not is_libvirt_error(exc):
                raise
        if self.progress is None or (remaining is not None and remaining != self.progress[0]):
            self.progress = (remaining, now)
        return now - self.progress[1]

    def _resume(self, dom, dst_conn, now):
        self.last_attempt = now
        self.resume_conn = dst_conn
        attempt = {'at_s': round(now - self.started, 1), 'flags': self.resume_flags()}
        self.report['attempts'].append(attempt)
        try:
            # QEMU's stream hangs on the dead connection until TCP gives up: pause it, so that it
            # can be resumed on a new one (an error here means it is paused already).
            dom.abortJobFlags(VIR_DOMAIN_ABORT_JOB_POSTCOPY)
        except Exception as exc:  # pylint: disable=broad-except
            if not is_libvirt_error(exc):
                raise
            attempt['pause'] = lv_message(exc)
        try:
            dom.migrateToURI3(self.dest_uri, self.spec.params, self.resume_flags())
            attempt['result'] = 'resumed'
        except Exception as exc:  # pylint: disable=broad-except
            if not is_libvirt_error(exc):
                raise
            attempt['error'] = lv_message(exc)


def _alive(conn):
    """Whether the connection still reaches its daemon (a restarted daemon closed it)."""
    try:
        return bool(conn.isAlive()) and bool(conn.getHostname())
    except Exception as exc:  # pylint: disable=broad-except
        if not is_libvirt_error(exc):
            raise
        return False
