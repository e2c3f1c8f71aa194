# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where a guest runs and is defined, on both hosts, and what to do about it.

Pure decision code (no libvirt import): ``HostView`` describes what one host's libvirtd
says about the domain; ``assess`` turns the two views into a ``Location`` and the repair
steps that restore the invariant *the guest runs on exactly one host, and is defined only
there*. The module reads the views with libvirt, applies the steps, reads again and
reports. A return code is never trusted: this is what runs after every attempt.
"""

from __future__ import annotations

# virDomainState and the state reasons we act on (stable libvirt ABI values).
STATE_NAMES = {0: 'nostate', 1: 'running', 2: 'blocked', 3: 'paused', 4: 'shutdown',
               5: 'shutoff', 6: 'crashed', 7: 'pmsuspended'}
RUNNING, BLOCKED, PAUSED, SHUTDOWN, SHUTOFF = 1, 2, 3, 4, 5
PAUSED_USER = 1
PAUSED_MIGRATION = 2
PAUSED_POSTCOPY = 12
PAUSED_POSTCOPY_FAILED = 13
PAUSED_STARTING_UP = 11
SHUTOFF_MIGRATED = 5


class HostView:
    """What one host's libvirtd reports about the domain.

    ``exists`` False means the host does not know the domain at all; ``reachable`` False
    means we could not ask (libvirtd down, link cut): then nothing is known.
    """

    def __init__(self, host, exists=False, state=None, reason=None, persistent=False,
                 reachable=True, job_active=False):
        self.host = host
        self.exists = exists
        self.state = state
        self.reason = reason
        self.persistent = persistent
        self.reachable = reachable
        self.job_active = job_active

    @property
    def active(self):
        return self.exists and self.state in (RUNNING, BLOCKED, PAUSED, SHUTDOWN)

    @property
    def live(self):
        """Running guest code (not paused): the copy that holds the truth."""
        return self.exists and self.state in (RUNNING, BLOCKED, SHUTDOWN)

    @property
    def paused_by_migration(self):
        return self.exists and self.state == PAUSED and self.reason in (
            PAUSED_MIGRATION, PAUSED_POSTCOPY, PAUSED_POSTCOPY_FAILED, PAUSED_STARTING_UP)

    @property
    def paused_in_postcopy(self):
        """The source side of a post-copy: it still holds pages the destination has not pulled."""
        return self.exists and self.state == PAUSED and self.reason in (PAUSED_POSTCOPY, PAUSED_POSTCOPY_FAILED)

    def describe(self):
        if not self.reachable:
            return 'unreachable'
        if not self.exists:
            return 'absent'
        return '%s%s' % (STATE_NAMES.get(self.state, str(self.state)), ' persistent' if self.persistent else ' transient')

    def as_dict(self):
        return {'host': self.host, 'reachable': self.reachable, 'exists': self.exists,
                'state': STATE_NAMES.get(self.state) if self.exists else None,
                'state_reason': self.reason if self.exists else None,
                'persistent': bool(self.exists and self.persistent)}


class Location:
    """The verdict on where the guest is, plus the steps to repair it."""

    def __init__(self, running_on, defined_on, verdict, steps, problem=None):
        self.running_on = running_on      # hosts where the domain is active (running or paused)
        self.defined_on = defined_on      # hosts with a persistent definition
        self.verdict = verdict            # 'source' | 'destination' | 'both' | 'none' | 'postcopy_split' | 'unknown'
        self.steps = steps                # [(action, side, why)]: resume|destroy|undefine|define_persistent
        self.problem = problem            # why nothing can be done automatically

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


def assess(src, dst, want_persistent=True, want_undefine_source=True, source_was_paused_by_user=False,
           dest_defined_before=False):
    """Decide where the guest lives and which steps restore the invariant.

    Rules, in order:
    - a host we cannot reach: no automatic step touches the other host (we might create a
      second copy or kill the only one); report 'unknown'.
    - the destination runs guest code (not paused) => it is the guest: a paused source copy
      is destroyed (it stopped before the final copy and is stale); a source definition is
      removed if undefine_source was asked; the destination is made persistent if asked.
    - the source runs guest code => it is the guest: an incoming (paused or inactive)
      destination copy is destroyed, and a destination definition we created is removed;
      nothing else is touched.
    - only paused copies, not post-copy => the source copy holds all of the guest's memory:
      the destination copy is destroyed and the source resumed (unless a user paused it).
    """
    running, defined = _lists(src, dst)
    if src.reachable and src.paused_in_postcopy and (dst.active or not dst.reachable):
        return Location(running, defined, 'postcopy_split', [], problem=postcopy_split_problem(src, dst))
    if not src.reachable or not dst.reachable:
        who = [v.host for v in (src, dst) if not v.reachable]
        return Location(running, defined, 'unknown', [],
                        problem='cannot reach libvirt on %s; the guest was not touched' % ', '.join(who))
    steps = []
    if src.live and dst.live:
        return Location(running, defined, 'both', [], problem=(
            'the guest runs on BOTH %s and %s; refusing to destroy either automatically' % (src.host, dst.host)))
    if dst.live:
        verdict = 'destination'
        if src.active:
            steps.append(('destroy', 'source', 'stale copy left paused on the source after the switch-over'))
        if want_undefine_source and src.exists and src.persistent:
            steps.append(('undefine', 'source', 'undefine_source: the definition stayed behind on the source'))
        if want_persistent and not dst.persistent:
            steps.append(('define_persistent', 'destination', 'persistent: the destination copy is transient'))
        return Location(running, defined, verdict, steps)
    if src.active:
        verdict = 'source'
        if dst.active:
            steps.append(('destroy', 'destination', 'incoming copy left on the destination by the failed attempt'))
        if dst.exists and dst.persistent and not dest_defined_before:
            steps.append(('undefine', 'destination', 'definition created on the destination by the failed attempt'))
        if src.paused_by_migration and not source_was_paused_by_user:
            steps.append(('resume', 'source', 'libvirt left the source paused after the failed attempt'))
        return Location(running, defined, verdict, steps)
    # Neither host runs it: e.g. its owner shut it down mid-migration. Not ours to start.
    verdict = 'none'
    if dst.exists and not dst.active and src.exists and not dest_defined_before and dst.persistent:
        steps.append(('undefine', 'destination', 'definition created on the destination by the failed attempt'))
    return Location(running, defined, verdict, steps,
                    problem='the guest runs on neither host (%s: %s, %s: %s)' % (
                        src.host, src.describe(), dst.host, dst.describe()))
