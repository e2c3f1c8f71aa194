# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The outcome verifier over every combination of source and destination states."""

from __future__ import annotations

import itertools

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._location import (
    PAUSED,
    PAUSED_MIGRATION,
    PAUSED_POSTCOPY,
    PAUSED_POSTCOPY_FAILED,
    PAUSED_USER,
    RUNNING,
    SHUTOFF,
    SHUTOFF_MIGRATED,
    HostView,
    assess,
)


def view(host, kind, persistent=True):
    """Readable shorthands for the states a host can report."""
    states = {
        'absent': dict(exists=False),
        'running': dict(exists=True, state=RUNNING, reason=1),
        'paused_migration': dict(exists=True, state=PAUSED, reason=PAUSED_MIGRATION),
        'paused_user': dict(exists=True, state=PAUSED, reason=PAUSED_USER),
        'paused_postcopy': dict(exists=True, state=PAUSED, reason=PAUSED_POSTCOPY),
        'paused_postcopy_failed': dict(exists=True, state=PAUSED, reason=PAUSED_POSTCOPY_FAILED),
        'shutoff': dict(exists=True, state=SHUTOFF, reason=0),
        'shutoff_migrated': dict(exists=True, state=SHUTOFF, reason=SHUTOFF_MIGRATED),
        'unreachable': dict(reachable=False),
    }
    return HostView(host, persistent=persistent, **states[kind])


def steps(location):
    return [(action, side) for action, side, _why in location.steps]


@pytest.mark.parametrize('src,dst,verdict,expected', [
    ('running', 'absent', 'source', []),
    ('paused_migration', 'absent', 'source', [('resume', 'source')]),
    ('paused_migration', 'paused_migration', 'source', [('destroy', 'destination'), ('undefine', 'destination'),
                                                        ('resume', 'source')]),
    ('running', 'shutoff', 'source', [('undefine', 'destination')]),
    ('absent', 'running', 'destination', []),
    ('shutoff_migrated', 'running', 'destination', [('undefine', 'source')]),
    ('paused_migration', 'running', 'destination', [('destroy', 'source'), ('undefine', 'source')]),
    ('paused_postcopy', 'running', 'postcopy_split', []),
    ('paused_postcopy_failed', 'running', 'postcopy_split', []),
    ('paused_postcopy_failed', 'unreachable', 'postcopy_split', []),
    ('paused_postcopy', 'unreachable', 'postcopy_split', []),
    ('running', 'running', 'both', []),
    ('shutoff', 'absent', 'none', []),
    ('unreachable', 'running', 'unknown', []),
    ('running', 'unreachable', 'unknown', []),
])
def test_verdicts_and_repairs(src, dst, verdict, expected):
    location = assess(view('a', src), view('b', dst))
    assert location.verdict == verdict
    assert steps(location) == expected


def test_postcopy_split_with_an_unreachable_destination_says_where_each_half_is():
    """Fault case 5: the link to the destination is gone during post-copy. The report must
    name both halves, not just 'cannot reach host b'."""
    location = assess(view('a', 'paused_postcopy_failed'), view('b', 'unreachable'))
    assert location.running_on == ['a']
    assert 'vCPUs and the memory it has already fetched are on b, which cannot be reached' in location.problem
    assert 'exist only in the copy paused (post-copy failed) on a' in location.problem
    assert 'destroying or resuming either one loses it' in location.problem


def test_postcopy_split_with_a_reachable_destination_describes_its_state():
    location = assess(view('a', 'paused_postcopy'), view('b', 'running'))
    assert 'are on b (running persistent)' in location.problem
    assert 'paused (post-copy) on a' in location.problem


def test_a_guest_paused_by_its_user_stays_paused():
    location = assess(view('a', 'paused_user'), view('b', 'paused_migration'), source_was_paused_by_user=True)
    assert location.verdict == 'source'
    assert steps(location) == [('destroy', 'destination'), ('undefine', 'destination')]


def test_a_destination_definition_that_existed_before_is_kept():
    location = assess(view('a', 'running'), view('b', 'shutoff'), dest_defined_before=True)
    assert steps(location) == []


def test_transient_destination_is_made_persistent_only_when_asked():
    dst = view('b', 'running', persistent=False)
    assert ('define_persistent', 'destination') in steps(assess(view('a', 'absent'), dst, want_persistent=True))
    assert steps(assess(view('a', 'absent'), dst, want_persistent=False)) == []


def test_source_definition_kept_when_undefine_source_is_false():
    location = assess(view('a', 'shutoff_migrated'), view('b', 'running'), want_undefine_source=False)
    assert steps(location) == []


KINDS = ['absent', 'running', 'paused_migration', 'paused_user', 'paused_postcopy', 'paused_postcopy_failed',
         'shutoff', 'shutoff_migrated', 'unreachable']


@pytest.mark.parametrize('src,dst', list(itertools.product(KINDS, KINDS)))
def test_no_combination_ever_destroys_the_only_running_copy(src, dst):
    """Invariant of the repair plan: a step never destroys a copy that runs guest code, never
    touches an unreachable host, and never leaves the guest running on both hosts."""
    a, b = view('a', src), view('b', dst)
    location = assess(a, b)
    by_side = {'source': a, 'destination': b}
    for action, side in steps(location):
        target = by_side[side]
        assert target.reachable
        if action == 'destroy':
            assert not target.live, (src, dst, action, side)
            other = b if side == 'source' else a
            assert other.active, 'destroying %s would leave no copy (%s/%s)' % (side, src, dst)
    if location.verdict in ('both', 'postcopy_split', 'unknown'):
        assert location.steps == [] and location.problem
