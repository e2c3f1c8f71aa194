# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The evacuation forecast: order, window (hand-computed), groups."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._migration_history import HistoryEntry
from ansible_collections.kvmops.migration.plugins.module_utils._prediction_inputs import GuestLoad, Limits, MigrationPath
from ansible_collections.kvmops.migration.plugins.module_utils._prediction_plan import (
    GROUPS,
    GuestToMove,
    plan_evacuation,
)

MIB = 1 << 20


def idle(name, memory_mib=128, destination=None):
    """A guest that dirties nothing: one pass, its memory once, no pause worth counting."""
    return GuestToMove(name, GuestLoad(memory_bytes=memory_mib * MIB, dirty_rate_bps=0), destination)


def busy(name, rate_mib_s=20):
    """The lab baseline guest: 96 MiB rewritten at 20 MiB/s."""
    return GuestToMove(name, GuestLoad(memory_bytes=256 * MIB, dirty_rate_bps=rate_mib_s * MIB, working_set_bytes=96 * MIB))


UPLINK = MigrationPath(bandwidth_bps=64 * MIB, setup_s=1.0)


class TestWindow:
    def test_two_at_a_time_share_the_uplink(self):
        # Two start at 0, set up for 1 s, then move 128 MiB each at 32 MiB/s: end at 5 s; the
        # next two run 5 s -> 10 s.
        forecast = plan_evacuation([idle('a'), idle('b'), idle('c'), idle('d')], UPLINK, max_concurrent=2)
        assert forecast.window_s == pytest.approx(10.0)
        assert [(m.name, m.start_s, m.end_s) for m in forecast.moves] == [
            ('a', 0.0, pytest.approx(5.0)), ('b', 0.0, pytest.approx(5.0)),
            ('c', pytest.approx(5.0), pytest.approx(10.0)), ('d', pytest.approx(5.0), pytest.approx(10.0))]
        assert forecast.bandwidth_share_bps == 32 * MIB

    def test_more_at_once_overlap_their_setup(self):
        # All four: 1 s setup, then 128 MiB at 16 MiB/s each.
        assert plan_evacuation([idle(n) for n in 'abcd'], UPLINK, max_concurrent=4).window_s == pytest.approx(9.0)

    def test_the_bandwidth_cap_limits_each_migration(self):
        # 16 MiB/s each although 32 are free: 1 + 8 s per pair.
        forecast = plan_evacuation([idle(n) for n in 'abcd'], UPLINK, Limits(bandwidth_cap_bps=16 * MIB), max_concurrent=2)
        assert forecast.window_s == pytest.approx(18.0)

    def test_one_per_destination(self):
        # Both go to host-b, one at a time: each alone on the uplink, 1 + 2 s.
        guests = [idle('a', destination='host-b'), idle('b', destination='host-b'), idle('c', destination='host-c')]
        forecast = plan_evacuation(guests, UPLINK, max_concurrent=2, max_per_destination=1)
        starts = dict((m.name, m.start_s) for m in forecast.moves)
        assert starts['a'] == 0.0 and starts['c'] == 0.0 and starts['b'] == pytest.approx(5.0)
        # a and c share the uplink (1 + 4 s); b then has it alone (1 + 2 s).
        assert forecast.window_s == pytest.approx(8.0)

    def test_long_evacuations_end(self):
        # 60 guests of 8 GiB, 4 at a time: 15 rounds of 1 s + 4 x 8192 MiB at 100 MiB/s.  (A
        # schedule that waited for float remainders to reach zero never ended on such clocks.)
        guests = [idle('g%02d' % n, 8192) for n in range(60)]
        forecast = plan_evacuation(guests, MigrationPath(bandwidth_bps=100 * MIB, setup_s=1.0), max_concurrent=4)
        assert forecast.window_s == pytest.approx(15 * (1 + 4 * 8192 / 100))

    def test_unknown_uplink_uses_each_guest_history(self):
        history = (HistoryEntry(at='2026-12-01T00:00:00Z', strategy='precopy', dirty_rate_bps=0,
                                throughput_bps=32 * MIB),)
        guests = [GuestToMove(n, GuestLoad(memory_bytes=128 * MIB, history=history)) for n in 'ab']
        forecast = plan_evacuation(guests, MigrationPath(bandwidth_bps=None, setup_s=1.0), max_concurrent=1)
        # 1 + 128/32 s each, one after the other.
        assert forecast.window_s == pytest.approx(10.0)
        assert forecast.bandwidth_share_bps is None


class TestOrderAndGroups:
    def test_longest_first_and_groups(self):
        limits = Limits(allow_postcopy=True, allow_auto_converge=False)
        # At its 32 MiB/s share db (40 MiB/s over 96 MiB) needs post-copy: 1 + 8 s, then 96 MiB at
        # the same share.
        guests = [idle('small', 64), idle('large', 1024), busy('db', 40), GuestToMove('new', GuestLoad(memory_bytes=MIB * 64))]
        forecast = plan_evacuation(guests, UPLINK, limits, max_concurrent=2)
        assert [m.name for m in forecast.moves] == ['large', 'db', 'small', 'new']
        assert forecast.group('postcopy') == ['db']
        assert forecast.moves[1].predicted_s == pytest.approx(1 + 8 + 0.05 + 3)
        assert forecast.group('precopy') == ['large', 'small']
        assert forecast.group('unknown') == ['new']
        assert forecast.window_is_lower_bound
        view = forecast.as_dict()
        assert set(view['groups']) == set(GROUPS)
        assert view['order'] == ['large', 'db', 'small', 'new']
        assert 'db with post-copy' in forecast.sentence and 'or more (no prediction for new)' in forecast.sentence

    def test_refused_guests_are_not_scheduled_but_priced_paused(self):
        limits = Limits(allow_auto_converge=False, bandwidth_cap_bps=10 * MIB)
        forecast = plan_evacuation([busy('db'), idle('web')], UPLINK, limits, max_concurrent=2)
        (refused,) = [m for m in forecast.moves if m.group == 'refused']
        assert (refused.name, refused.start_s, refused.end_s) == ('db', None, None)
        assert any(r.startswith('allow_postcopy: true') for r in refused.decision.remedies)
        # web alone: 1 s + 128 MiB at the 10 MiB/s cap.  With db paused beside it: 256 MiB at
        # 10 MiB/s, from 0 s, ends last.
        assert forecast.window_s == pytest.approx(1 + 12.8)
        assert forecast.window_with_paused_s == pytest.approx(1 + 25.6)
        assert forecast.as_dict()['order'] == ['web']
        assert 'db cannot move live within the limits (paused or cold: about 27 s in all)' in forecast.sentence

    def test_bad_limits(self):
        with pytest.raises(ValueError, match='max_concurrent and max_per_destination must be at least 1'):
            plan_evacuation([idle('a')], UPLINK, max_concurrent=0)

    def test_nothing_to_move(self):
        forecast = plan_evacuation([], UPLINK)
        assert forecast.window_s == 0.0 and forecast.moves == ()
