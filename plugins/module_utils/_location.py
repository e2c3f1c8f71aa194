# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where a guest runs and is defined, on both hosts, and what to do about it.

Pure decision code (no libvirt import): ``HostView`` describes what one host's libvirtd
says about the domain; ``assess`` turns the two views into a ``Location`` and the repair
steps that restore the invariant *the guest runs on exactly one host, is defined only there,
and its memory never goes back in time*. The module reads the views with libvirt, applies the
steps in order (stopping at the first that fails), reads again and reports. A return code is
never trusted: this is what runs after every attempt.

The rules that keep a guest from being lost, duplicated or rolled back:

- Nothing is touched while a host cannot be asked, or while a migration or block job is active
  on either host: the job may still switch the guest over, and a repair made from a snapshot of
  the views taken mid-job can destroy the only copy that will run (verdict ``busy``).
- From the first post-copy moment on, the destination's vCPUs have run and written to the
  shared disks: the copy paused on the source holds older memory and is never resumed
  (verdicts ``postcopy_split`` and ``postcopy_lost``, reported with the operator procedure).
- A persistent definition exists at every instant: the definition is made where the guest runs
  before the one elsewhere is removed.
"""

from __future__ import annotations

# virDomainState and the state reasons this module acts on, under shorter names.
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_DOMAIN_BLOCKED as BLOCKED,
    VIR_DOMAIN_PAUSED as PAUSED,
    VIR_DOMAIN_PAUSED_MIGRATION as PAUSED_MIGRATION,
    VIR_DOMAIN_PAUSED_POSTCOPY as PAUSED_POSTCOPY,
    VIR_DOMAIN_PAUSED_POSTCOPY_FAILED as PAUSED_POSTCOPY_FAILED,
    VIR_DOMAIN_PAUSED_STARTING_UP as PAUSED_STARTING_UP,
    VIR_DOMAIN_RUNNING as RUNNING,
    VIR_DOMAIN_RUNNING_POSTCOPY_FAILED as RUNNING_POSTCOPY_FAILED,
    VIR_DOMAIN_SHUTDOWN as SHUTDOWN,
    VIR_DOMAIN_SHUTOFF as SHUTOFF,
    VIR_DOMAIN_SHUTOFF_CRASHED as SHUTOFF_CRASHED,
    VIR_DOMAIN_SHUTOFF_DESTROYED as SHUTOFF_DESTROYED,
    VIR_DOMAIN_SHUTOFF_MIGRATED as SHUTOFF_MIGRATED,
)

STATE_NAMES = {0: 'nostate', 1: 'running', 2: 'blocked', 3: 'paused', 4: 'shutdown',
               5: 'shutoff', 6: 'crashed', 7: 'pmsuspended'}
# Paused for these reasons, a copy is one side of a migration (the stopped source or the incoming
# destination), not a guest someone paused: it holds no newer state than its peer.
MIGRATION_PAUSE_REASONS = (PAUSED_MIGRATION, PAUSED_STARTING_UP, PAUSED_POSTCOPY, PAUSED_POSTCOPY_FAILED)
POSTCOPY_PAUSE_REASONS = (PAUSED_POSTCOPY, PAUSED_POSTCOPY_FAILED)
# The reasons a report names, so that "shut off" says how (the guest's QEMU crashed, was destroyed, moved).
SHUTOFF_REASON_NAMES = {SHUTOFF_DESTROYED: 'destroyed', SHUTOFF_CRASHED: 'crashed', SHUTOFF_MIGRATED: 'migrated'}

# Repair actions, in the order they may appear in a plan.
DESTROY = 'destroy'
DEFINE_PERSISTENT = 'define_persistent'
UNDEFINE = 'undefine'
RESUME = 'resume'
SOURCE, DESTINATION = 'source', 'destination'


class HostView:
    """What one host's libvirtd reports about the domain.

    ``exists`` False means the host does not know the domain at all; ``reachable`` False
    means we could not ask (libvirtd down, link cut): then nothing is known. ``job`` names an
    active migration or block job on the domain there (None when there is none).
    """

    def __init__(self, host, exists=False, state=None, reason=None, persistent=False,
                 reachable=True, job=None):
        self.host = host
        self.exists = exists
        self.state = state
        self.reason = reason
        self.persistent = persistent
        self.reachable = reachable
        self.job = job

    @property
    def active(self):
        return self.exists and self.state in (RUNNING, BLOCKED, PAUSED, SHUTDOWN)

    @property
    def live(self):
        """Running guest code (not paused): the copy that holds the truth."""
        return self.exists and self.state in (RUNNING, BLOCKED, SHUTDOWN)

    @property
    def paused_by_migration(self):
        return self.exists and self.state == PAUSED and self.reason in MIGRATION_PAUSE_REASONS

    @property
    def paused_in_postcopy(self):
        """The source side of a post-copy: it still holds pages the destination has not pulled."""
        return self.exists and self.state == PAUSED and self.reason in POSTCOPY_PAUSE_REASONS

    @property
    def in_failed_postcopy(self):
        """libvirt says this copy is one side of a post-copy that failed: running with pages missing
        (the destination, libvirt >= 8.5) or paused (either side)."""
        return self.exists and ((self.state == RUNNING and self.reason == RUNNING_POSTCOPY_FAILED)
                                or (self.state == PAUSED and self.reason == PAUSED_POSTCOPY_FAILED))

    @property
    def ended_by_migration(self):
        """Shut off because its migration completed: QEMU sent every page (the other side is whole)."""
        return self.exists and self.state == SHUTOFF and self.reason == SHUTOFF_MIGRATED

    @property
    def holds_guest(self):
        """Active and a whole guest: running, or paused for a reason other than a migration
        (its user paused it, an I/O error...). An incoming copy paused by the migration is not."""
        return self.live or (self.active and not self.paused_by_migration)

    def describe(self):
        if not self.reachable:
            return 'unreachable'
        if not self.exists:
            return 'absent'
        text = STATE_NAMES.get(self.state, str(self.state))
        if self.state == SHUTOFF and self.reason in SHUTOFF_REASON_NAMES:
            text += ' (%s)' % SHUTOFF_REASON_NAMES[self.reason]
        elif self.state == RUNNING and self.reason == RUNNING_POSTCOPY_FAILED:
            text += ' (post-copy failed)'
        text += ' persistent' if self.persistent else ' transient'
        if self.job:
            text += ', %s job active' % self.job
        return text

    def as_dict(self):
        return {'host': self.host, 'reachable': self.reachable, 'exists': self.exists,
                'state': STATE_NAMES.get(self.state) if self.exists else None,
                'state_reason': self.reason if self.exists else None,
                'persistent': bool(self.exists and self.persistent),
                'job': self.job if self.exists else None}


class Attempt:
    """What the attempt that is being verified wanted, and what is known about it.

    ``postcopy_started``: the attempt switched to post-copy (the destination's vCPUs ran), even
    if libvirt no longer says so in the source's pause reason.
    ``dest_defined_before``: the destination had a definition of the guest before the attempt
    (it is not ours to remove).
    """

    def __init__(self, want_persistent=True, want_undefine_source=True, source_paused_by_user=False,
                 dest_defined_before=False, postcopy_started=False):
        self.want_persistent = want_persistent
        self.want_undefine_source = want_undefine_source
        self.source_paused_by_user = source_paused_by_user
        self.dest_defined_before = dest_defined_before
        self.postcopy_started = postcopy_started

    def replace(self, **changes):
        values = dict(self.__dict__)
        values.update(changes)
        return Attempt(**values)


class Location:
    """The verdict on where the guest is, plus the steps to repair it."""

    VERDICTS = ('source', 'destination', 'both', 'none', 'busy', 'postcopy_split', 'postcopy_lost', 'unknown')

    def __init__(self, running_on, defined_on, verdict, steps, problem=None):
        self.running_on = running_on      # hosts where the domain is active (running or paused)
        self.defined_on = defined_on      # hosts with a persistent definition
        self.verdict = verdict            # one of VERDICTS
        self.steps = steps                # [(action, side, why)], applied in this order
        self.problem = problem            # why nothing (more) can be done automatically

    def as_dict(self):
        return {'running_on': list(self.running_on), 'defined_on': list(self.defined_on),
                'verdict': self.verdict}


def _lists(src, dst):
    running = [v.host for v in (src, dst) if v.reachable and v.active]
    defined = [v.host for v in (src, dst) if v.reachable and v.exists and v.persistent]
    return running, defined


def postcopy_split_problem(src, dst):
    """Where each half of a guest in an interrupted post-copy is. In post-copy the vCPUs run on
    the destination and fetch every page not yet sent from the source on demand, so neither
    copy alone is the guest."""
    if dst.reachable:
        dest_side = 'its vCPUs and the memory it has already fetched are on %s (%s)' % (dst.host, dst.describe())
    else:
        dest_side = ('its vCPUs and the memory it has already fetched are on %s, which cannot be reached '
                     '(its libvirt does not answer)' % dst.host)
    why = 'post-copy failed' if src.reason == PAUSED_POSTCOPY_FAILED else 'post-copy'
    return ('post-copy was interrupted: %s; the pages it has not fetched yet exist only in the copy paused '
            '(%s) on %s. Neither copy is the whole guest: destroying or resuming either one loses it'
            % (dest_side, why, src.host))


def postcopy_lost_problem(src, dst):
    """The destination half of a post-copy is gone (its QEMU died or was destroyed)."""
    return ('post-copy had started, so the guest ran on %s since the switch-over, and that copy is gone (%s). '
            'The copy left on %s (%s) holds the memory of before the switch-over: resuming it would run stale '
            'memory over disks the guest has written since, so it is left paused. The guest\'s memory is lost; '
            'its disks are intact' % (dst.host, dst.describe(), src.host, src.describe()))


def source_half_gone_problem(src, dst):
    """The source half of a post-copy is gone (its owner destroyed it, its QEMU died) before the
    destination had fetched every page: the mirror of ``postcopy_lost_problem``."""
    return ('post-copy had started, so the guest\'s vCPUs ran on %s, fetching the pages not sent yet from %s; '
            'the copy on %s ended (%s) before every page was fetched, so the copy on %s (%s) is incomplete: it '
            'stops at its first missing page, and libvirt keeps its incoming job open for a recovery that has no '
            'source left. The guest\'s memory is lost; its disks are intact'
            % (dst.host, src.host, src.host, src.describe(), dst.host, dst.describe()))


def busy_problem(src, dst):
    jobs = ['%s job on %s' % (v.job, v.host) for v in (src, dst) if v.reachable and v.exists and v.job]
    return ('%s still active; nothing is repaired while a job may still move the guest (wait for it to end, or '
            'abort it with virt_migrate_control action=abort)' % ' and '.join(jobs))


def assess(src, dst, attempt=None):
    """Decide where the guest lives and which steps restore the invariant.

    Rules, in order:
    - a host we cannot reach: no automatic step touches the other host (we might create a
      second copy or kill the only one); report 'unknown' (or 'postcopy_split' when the source
      is paused in post-copy: the unreachable destination holds its vCPUs).
    - post-copy has started and the destination still has its copy => 'postcopy_split': the
      guest's memory is spread over both; nothing is touched.
    - post-copy has started and the destination has no copy any more => 'postcopy_lost': the
      stale source copy is never resumed; nothing is touched (even while libvirt keeps the
      source's job open for a post-copy recovery).
    - the source's copy ended in post-copy (not by completing it) while the destination's is in a
      failed post-copy => 'postcopy_lost' too: the pages not fetched died with the source, and the
      destination's incoming job, which libvirt keeps open, can never end; nothing is touched.
    - a migration or block job is active on either host => 'busy': nothing is touched.
    - both hosts run guest code => 'both': refuse to choose.
    - the destination holds the guest (running, or paused by its user after the switch-over) and
      the source does not => 'destination': a stale paused source copy is destroyed, the
      destination is made persistent if asked (from the source's persistent definition) BEFORE
      the source definition is removed (undefine_source).
    - the source holds the guest => 'source': an incoming destination copy is destroyed, a
      destination definition the attempt created is removed, a source paused by the migration
      (not by its user) is resumed.
    - neither => 'none' (e.g. its owner shut it down mid-migration): a destination definition
      the attempt created is removed; nothing is started.
    """
    attempt = attempt or Attempt()
    running, defined = _lists(src, dst)
    postcopy = attempt.postcopy_started or (src.reachable and src.paused_in_postcopy)
    if postcopy and src.reachable and src.active and not src.live and (not dst.reachable or dst.active):
        return Location(running, defined, 'postcopy_split', [], problem=postcopy_split_problem(src, dst))
    if not src.reachable or not dst.reachable:
        who = [v.host for v in (src, dst) if not v.reachable]
        problem = 'cannot reach libvirt on %s; the guest was not touched' % ', '.join(who)
        problem += ''.join('; %s reports its copy %s' % (v.host, v.describe()) for v in (src, dst) if v.reachable)
        if src.reachable and src.ended_by_migration:
            problem += ('; %s reports its copy shut off because the migration completed (QEMU sent every page), so the '
                        'guest most likely runs on %s' % (src.host, dst.host))
        return Location(running, defined, 'unknown', [], problem=problem)
    if postcopy and src.paused_in_postcopy and not dst.active:
        # libvirt keeps the source's job open after a failed post-copy (for a recovery): no busy
        # wait can end it, and nothing may resume that copy anyway.
        return Location(running, defined, 'postcopy_lost', [], problem=postcopy_lost_problem(src, dst))
    if dst.in_failed_postcopy and not src.active and not src.ended_by_migration:
        # The source's half ended in post-copy: the destination's open incoming job can never end
        # (busy would wait for it in vain) and its copy is not the whole guest.
        return Location(running, defined, 'postcopy_lost', [], problem=source_half_gone_problem(src, dst))
    if (src.exists and src.job) or (dst.exists and dst.job):
        return Location(running, defined, 'busy', [], problem=busy_problem(src, dst))
    if src.live and dst.live:
        return Location(running, defined, 'both', [], problem=(
            'the guest runs on BOTH %s and %s; refusing to destroy either automatically' % (src.host, dst.host)))
    # Before post-copy the source copy, even paused by the migration, holds all of the guest's
    # memory; from the switch-over on it holds only older memory. An incoming destination copy
    # paused by the migration holds nothing usable until the migration finished.
    src_holds = src.live or (src.active and not postcopy)
    if dst.holds_guest and not src.live:
        return Location(running, defined, 'destination', _destination_steps(src, dst, attempt))
    if src_holds:
        return Location(running, defined, 'source', _source_steps(src, dst, attempt))
    if postcopy and src.active:
        return Location(running, defined, 'postcopy_lost', [], problem=postcopy_lost_problem(src, dst))
    # Neither host runs it: e.g. its owner shut it down mid-migration. Not ours to start. A copy
    # paused by the migration on the destination is left alone: with no active copy on the source
    # it may be the only state of the guest there is (an incoming migration that completed but was
    # never resumed), so destroying it could lose the guest.
    steps = []
    problem = 'the guest runs on neither host (%s: %s, %s: %s)' % (src.host, src.describe(), dst.host, dst.describe())
    if dst.active:
        problem += ('; the copy paused by the migration on %s was left as it is: if the migration completed it holds '
                    'the guest (resume it there), otherwise destroy it' % dst.host)
    elif dst.exists and dst.persistent and src.exists and src.persistent and not attempt.dest_defined_before:
        steps.append((UNDEFINE, DESTINATION, 'definition created on the destination by the failed attempt'))
    return Location(running, defined, 'none', steps, problem=problem)


def _destination_steps(src, dst, attempt):
    steps = []
    if src.active:
        steps.append((DESTROY, SOURCE, 'stale copy left paused on the source after the switch-over'))
    if attempt.want_persistent and not dst.persistent:
        steps.append((DEFINE_PERSISTENT, DESTINATION, 'persistent: the destination copy is transient'))
    if attempt.want_undefine_source and src.exists and src.persistent:
        steps.append((UNDEFINE, SOURCE, 'undefine_source: the definition stayed behind on the source'))
    return steps


def _source_steps(src, dst, attempt):
    steps = []
    if dst.active:
        steps.append((DESTROY, DESTINATION, 'incoming copy left on the destination by the failed attempt'))
    if dst.exists and dst.persistent and not attempt.dest_defined_before:
        steps.append((UNDEFINE, DESTINATION, 'definition created on the destination by the failed attempt'))
    if src.paused_by_migration and not attempt.source_paused_by_user:
        steps.append((RESUME, SOURCE, 'libvirt left the source paused after the failed attempt'))
    return steps
