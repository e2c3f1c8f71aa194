# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The migration model: hand-computed cases, then properties.  Figures in the comments are the
hand computation each assertion checks (MiB, MiB/s, s)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.kvmops.migration.plugins.module_utils._migration_history import HistoryEntry
from ansible_collections.kvmops.migration.plugins.module_utils._prediction import (
    POSTCOPY_SWITCHOVER_MS,
    choose_strategy,
    predict,
)
from ansible_collections.kvmops.migration.plugins.module_utils._prediction_inputs import (
    GuestLoad,
    InFlight,
    Limits,
    MigrationPath,
    PredictionInputError,
    Strategy,
    resolve_bandwidth,
    resolve_dirty_rate,
    limits_from_options,
    resolve_working_set,
    working_set_unknown,
)

MIB = 1 << 20
GIB = 1 << 30

# lab-facts "Convergence baseline": 256 MiB guest rewriting 96 MiB at ~20 MiB/s, capped at 10 MiB/s.
BASELINE = dict(memory_bytes=256 * MIB, dirty_rate_bps=20 * MIB, working_set_bytes=96 * MIB)
LAB_PATH = MigrationPath(bandwidth_bps=300 * MIB)  # what the lab's link gives uncapped


def outcome(prediction, strategy):
    found = prediction.outcome(strategy)
    assert found is not None, strategy
    return found


class TestIdleGuest:
    def test_converges_after_the_first_pass(self):
        # 1024 MiB at 128 MiB/s: pass 1 lasts 8 s and leaves 8 MiB (1 MiB/s), within the first
        # downtime step (100 ms x 128 MiB/s = 12.8 MiB): pause 8/128 s = 62.5 ms.
        prediction = predict(GuestLoad(memory_bytes=GIB, dirty_rate_bps=MIB),
                             MigrationPath(bandwidth_bps=128 * MIB, setup_s=0.5))
        steps = outcome(prediction, Strategy.PRECOPY_STEPS)
        assert (steps.finishes, steps.meets_limits, steps.passes, steps.stop) == (True, True, 1, 'converged')
        assert steps.total_s == pytest.approx(0.5 + 8 + 0.0625)
        assert steps.downtime_ms == pytest.approx(62.5)
        assert prediction.verdict == Strategy.PRECOPY_STEPS
        assert prediction.throttle_needed_percent == 0
        assert prediction.sentence.startswith('Plain pre-copy converges: about 8.6 s, 1 pass, downtime about 62 ms')

    def test_needs_a_second_pass_under_the_first_downtime_step(self):
        # 2 MiB/s: pass 1 leaves 16 MiB > 12.8 MiB; pass 2 sends it in 0.125 s and leaves 0.25 MiB.
        # At max_downtime from the start (64 MiB fit) pass 1 is enough, with a 125 ms pause.
        prediction = predict(GuestLoad(memory_bytes=GIB, dirty_rate_bps=2 * MIB), MigrationPath(bandwidth_bps=128 * MIB))
        steps, fixed = outcome(prediction, Strategy.PRECOPY_STEPS), outcome(prediction, Strategy.PRECOPY)
        assert (steps.passes, fixed.passes) == (2, 1)
        assert steps.total_s == pytest.approx(8 + 0.125 + 0.25 / 128)
        assert steps.downtime_ms == pytest.approx(0.25 / 128 * 1000)
        assert fixed.total_s == pytest.approx(8.125)
        assert fixed.downtime_ms == pytest.approx(125)
        # Nothing to throttle, nothing to switch: the other strategies run the same passes.
        assert outcome(prediction, Strategy.AUTO_CONVERGE).throttle_percent == 0
        assert outcome(prediction, Strategy.POSTCOPY).stop == 'converged'

    def test_zero_pages_cost_almost_nothing(self):
        # 75 % zero pages: pass 1 sends 256 MiB of data plus 9-byte headers for 196608 pages.
        prediction = predict(GuestLoad(memory_bytes=GIB, dirty_rate_bps=0, zero_page_share=0.75),
                             MigrationPath(bandwidth_bps=128 * MIB))
        steps = outcome(prediction, Strategy.PRECOPY_STEPS)
        assert steps.bytes_sent == pytest.approx(256 * MIB + 196608 * 9)
        assert steps.total_s == pytest.approx((256 * MIB + 196608 * 9) / (128 * MIB))


def test_the_final_pause_runs_at_the_link_not_at_the_cap():
    """QEMU checks the rest against the downtime at the capped pass bandwidth, then sends it with
    the guest stopped regardless of the cap (ram_save_complete): a 4 MiB rest converges under a
    500 ms limit at 10 MiB/s, and pauses the guest for 4 MiB / 300 MiB/s, not 400 ms."""
    load = GuestLoad(memory_bytes=256 * MIB, dirty_rate_bps=4 * MIB, working_set_bytes=4 * MIB)
    capped = outcome(predict(load, LAB_PATH, Limits(bandwidth_cap_bps=10 * MIB)), Strategy.PRECOPY)
    assert capped.stop == 'converged' and capped.last_dirty_bytes == pytest.approx(4 * MIB)
    assert capped.downtime_ms == pytest.approx(4 * 1000.0 / 300)
    unknown_link = outcome(predict(load, MigrationPath(bandwidth_bps=None), Limits(bandwidth_cap_bps=10 * MIB)),
                           Strategy.PRECOPY)
    assert unknown_link.downtime_ms == pytest.approx(400.0)  # only the cap known: its figure is the bound


class TestLabBaseline:
    def test_plain_precopy_never_converges(self):
        # Pass 1: 256 MiB / 10 MiB/s = 25.6 s, the guest could write 512 MiB but its set is 96 MiB;
        # every later pass sends 96 MiB in 9.6 s and leaves 96 MiB again: 96 > 5 MiB (500 ms).
        prediction = predict(GuestLoad(**BASELINE), LAB_PATH, Limits(bandwidth_cap_bps=10 * MIB))
        for strategy in (Strategy.PRECOPY, Strategy.PRECOPY_STEPS):
            plain = outcome(prediction, strategy)
            assert (plain.finishes, plain.stop) == (False, 'no_progress')
            assert plain.last_dirty_bytes == pytest.approx(96 * MIB)
        assert 'does not converge: each pass still leaves about 96.0 MiB, more than the 5.0 MiB' in prediction.sentence

    def test_needs_postcopy_where_the_throttle_does_not_bite(self):
        # The lab's TCG dirtier needs ~5 % of its vCPU: QEMU's 20 % / +10 % every second pass
        # does not slow it within the 150 s virsh ran; post-copy moves it in one pass:
        # 25.6 s + the switch + 96 MiB at the uncapped 300 MiB/s.
        limits = Limits(bandwidth_cap_bps=10 * MIB, timeout_s=150, throttle_initial=20, throttle_increment=10,
                        allow_postcopy=True)
        prediction = predict(GuestLoad(writer_cpu_share=0.05, **BASELINE), LAB_PATH, limits)
        assert outcome(prediction, Strategy.AUTO_CONVERGE).meets_limits is False
        post = outcome(prediction, Strategy.POSTCOPY)
        assert (post.stop, post.passes, post.meets_limits) == ('postcopy', 1, True)
        assert post.postcopy_s == pytest.approx(96 / 300)
        assert post.total_s == pytest.approx(25.6 + POSTCOPY_SWITCHOVER_MS / 1000 + 96 / 300)
        assert post.downtime_ms == POSTCOPY_SWITCHOVER_MS
        assert prediction.verdict == Strategy.POSTCOPY
        decision = choose_strategy(prediction, limits)
        assert (decision.strategy, decision.refused) == (Strategy.POSTCOPY, False)

    def test_refusal_says_what_would_work(self):
        limits = Limits(bandwidth_cap_bps=10 * MIB, timeout_s=150, throttle_initial=20, throttle_increment=10)
        prediction = predict(GuestLoad(writer_cpu_share=0.05, **BASELINE), LAB_PATH, limits)
        decision = choose_strategy(prediction, limits)
        assert decision.refused and decision.strategy is None and decision.known
        text = ' | '.join(decision.remedies)
        assert 'allow_postcopy: true: about 26 s, 1 pass' in text
        assert 'raise the bandwidth cap' in text
        assert 'mode: paused or cold: the guest stops for about 26 s' in text
        # 96 MiB in one pause at 10 MiB/s.
        assert 'max_downtime: 9600 ms' in text
        assert decision.as_dict()['refused'] is True

    def test_required_bandwidth_is_where_the_engine_stops_calling_it_stalled(self):
        # Below the working set each pass leaves R/B of the last.  The engine calls three passes
        # that do not get below 0.9 of the earlier ones a stall, so it needs (R/B)^3 < 0.9.
        prediction = predict(GuestLoad(**BASELINE), LAB_PATH, Limits(bandwidth_cap_bps=10 * MIB))
        assert prediction.required_bandwidth_bps == pytest.approx(20 * MIB / 0.9 ** (1 / 3), rel=0.01)

    def test_auto_converge_with_the_engine_throttle_steps(self):
        # A CPU-bound writer: QEMU engages 50 % after pass 3 (passes 2 and 3 dirtied more than
        # half of what they sent), 75 % after pass 5; at 5 MiB/s the set halves each pass:
        # 96 -> 48 -> 24 -> 12 -> 6 -> 3 MiB, which fits the 500 ms step (5 MiB) after pass 10.
        prediction = predict(GuestLoad(**BASELINE), LAB_PATH, Limits(bandwidth_cap_bps=10 * MIB))
        auto = outcome(prediction, Strategy.AUTO_CONVERGE)
        assert (auto.stop, auto.passes, auto.throttle_percent) == ('converged', 10, 75)
        # The last 3 MiB go with the guest stopped, at the link's 300 MiB/s (QEMU ignores the cap then).
        assert auto.total_s == pytest.approx(25.6 + 5 * 9.6 + 4.8 + 2.4 + 1.2 + 0.6 + 0.01)
        assert auto.downtime_ms == pytest.approx(3 * 1000.0 / 300)  # 3 MiB at the link, not 300 ms at the cap
        assert prediction.verdict == Strategy.AUTO_CONVERGE
        # A steady throttle must bring 20 MiB/s under 10 x 0.9^(1/3) = 9.65 MiB/s: 52 %.
        assert prediction.throttle_needed_percent == 52

    def test_a_throttle_that_bites_only_at_its_maximum(self):
        # A writer needing 5 % of its vCPU (what the lab's TCG guests seem to need): 50 % (after pass 3) and 75 %
        # (pass 5) change nothing, 99 % (pass 7) leaves 1 % of the time, a fifth of its need:
        # 4 MiB/s.  Pass 8 still sends 96 MiB (9.6 s) and leaves 38.4; then 15.36, 6.144, and
        # 2.4576 MiB fits the 5 MiB of 500 ms after pass 11.
        prediction = predict(GuestLoad(writer_cpu_share=0.05, **BASELINE), LAB_PATH, Limits(bandwidth_cap_bps=10 * MIB))
        auto = outcome(prediction, Strategy.AUTO_CONVERGE)
        assert (auto.stop, auto.passes, auto.throttle_percent) == ('converged', 11, 99)
        assert auto.total_s == pytest.approx(25.6 + 7 * 9.6 + 3.84 + 1.536 + 0.6144 + 2.4576 / 300)
        assert auto.downtime_ms == pytest.approx(2.4576 * 1000.0 / 300)


class TestDirtyRateNearTheBandwidth:
    def test_converges_slowly(self):
        # 80 MiB/s against 100 MiB/s, no working-set limit: each pass leaves 0.8 of the last,
        # 1024 x 0.8^n <= 50 MiB first at n = 14; the passes take 10.24 x (1 - 0.8^14) / 0.2 s.
        prediction = predict(GuestLoad(memory_bytes=GIB, dirty_rate_bps=80 * MIB), MigrationPath(bandwidth_bps=100 * MIB))
        fixed = outcome(prediction, Strategy.PRECOPY)
        assert (fixed.passes, fixed.stop) == (14, 'converged')
        last = 1024 * 0.8 ** 14
        assert fixed.total_s == pytest.approx(10.24 * (1 - 0.8 ** 14) / 0.2 + last / 100)
        assert fixed.total_s > 4 * (1024 / 100)
        quieter = outcome(predict(GuestLoad(memory_bytes=GIB, dirty_rate_bps=40 * MIB),
                                  MigrationPath(bandwidth_bps=100 * MIB)), Strategy.PRECOPY)
        assert quieter.passes < fixed.passes and quieter.total_s < fixed.total_s

    def test_engine_gives_up_when_each_pass_barely_shrinks(self):
        # 98 MiB/s against 100 MiB/s: 0.98^3 > 0.9, the engine's stall rule aborts.
        prediction = predict(GuestLoad(memory_bytes=GIB, dirty_rate_bps=98 * MIB), MigrationPath(bandwidth_bps=100 * MIB))
        assert outcome(prediction, Strategy.PRECOPY).stop == 'stalled'
        assert prediction.verdict == Strategy.AUTO_CONVERGE
        # A writer the throttle cannot slow (0.5 % of a vCPU, max 99 %), and a timeout that
        # even post-copy's single pass (10.24 s) misses: only a pause moves it.
        limits = Limits(timeout_s=10)
        stubborn = predict(GuestLoad(memory_bytes=GIB, dirty_rate_bps=98 * MIB, writer_cpu_share=0.005),
                           MigrationPath(bandwidth_bps=100 * MIB), limits)
        assert outcome(stubborn, Strategy.AUTO_CONVERGE).throttle_percent == 99
        assert stubborn.verdict == 'cold_only'
        assert 'No live strategy meets the limits' in stubborn.sentence


class TestSaturation:
    def path(self):
        return MigrationPath(bandwidth_bps=30 * MIB)

    def test_the_dirty_set_saturates_at_the_working_set(self):
        # Pass 1 lasts 256/30 s: 170.7 MiB written, but only 96 MiB of distinct pages.
        saturated = predict(GuestLoad(**{**BASELINE, 'dirty_rate_bps': 40 * MIB}), self.path())
        unbounded = predict(GuestLoad(memory_bytes=256 * MIB, dirty_rate_bps=20 * MIB), self.path())
        assert outcome(saturated, Strategy.PRECOPY).last_dirty_bytes == pytest.approx(96 * MIB)
        assert saturated.working_set_source == 'given' and unbounded.working_set_source == 'assumed'
        # Above the bandwidth and saturating above 15 MiB (500 ms): never.
        assert outcome(saturated, Strategy.PRECOPY).stop == 'no_progress'
        # 20 of 30 MiB/s without a working set: 170.7 MiB after pass 1, then 2/3 each pass.
        assert outcome(unbounded, Strategy.PRECOPY).passes == math.ceil(math.log(15 / 170.67) / math.log(2 / 3)) + 1

    def test_a_small_working_set_converges_even_above_the_bandwidth(self):
        # 40 MiB/s > 30 MiB/s, but the set is 10 MiB: every pass leaves at most 10 <= 15 MiB.
        prediction = predict(GuestLoad(memory_bytes=256 * MIB, dirty_rate_bps=40 * MIB, working_set_bytes=10 * MIB),
                             self.path())
        fixed = outcome(prediction, Strategy.PRECOPY)
        assert (fixed.passes, fixed.downtime_ms) == (1, pytest.approx(10 / 30 * 1000))

    def test_random_writers_dirty_fewer_pages(self):
        # W (1 - exp(-R t / W)) after pass 1: 96 x (1 - e^(-20 x 25.6 / 96)) MiB.
        prediction = predict(GuestLoad(write_pattern='random', **BASELINE), LAB_PATH, Limits(bandwidth_cap_bps=10 * MIB))
        first = outcome(prediction, Strategy.POSTCOPY)
        assert first.last_dirty_bytes == pytest.approx(96 * MIB * (1 - math.exp(-20 * 25.6 / 96)))
        assert outcome(prediction, Strategy.PRECOPY).finishes is False


class TestHistory:
    def entry(self, **figures):
        return HistoryEntry(at='2026-12-01T00:00:00Z', strategy='precopy_steps', **figures)

    def test_blends_a_fresh_measurement_with_history(self):
        # History, newest first, weighs 1 and 1/2: (18 + 22/2) / 1.5 = 19.33; fresh weighs 2/3.
        history = (self.entry(dirty_rate_bps=18 * MIB), self.entry(dirty_rate_bps=22 * MIB))
        rate, source = resolve_dirty_rate(GuestLoad(memory_bytes=GIB, dirty_rate_bps=30 * MIB, history=history))
        assert source == 'measured+history'
        assert rate == pytest.approx((2 / 3 * 30 + 1 / 3 * (18 + 11) / 1.5) * MIB)
        rate, source = resolve_dirty_rate(GuestLoad(memory_bytes=GIB, history=history))
        assert (rate, source) == (pytest.approx(29 / 1.5 * MIB), 'history')
        assert resolve_dirty_rate(GuestLoad(memory_bytes=GIB, dirty_pages_per_s=256)) == (MIB, 'measured')

    def test_working_set_only_from_passes_long_enough_to_saturate(self):
        short = self.entry(dirty_set_bytes=90 * MIB, dirty_rate_bps=20 * MIB, duration_s=40, passes=9)   # 4.4 s x 20 < 180
        long = self.entry(dirty_set_bytes=90 * MIB, dirty_rate_bps=20 * MIB, duration_s=150, passes=16)  # 9.4 s x 20 >= 180
        assert resolve_working_set(GuestLoad(memory_bytes=GIB, history=(short,))) == (GIB, 'assumed')
        assert resolve_working_set(GuestLoad(memory_bytes=GIB, history=(short, long))) == (90 * MIB, 'history')
        assert resolve_working_set(GuestLoad(memory_bytes=GIB, working_set_bytes=2 * GIB)) == (GIB, 'given')

    def test_a_set_two_samples_saw_saturate_stands_in_for_history(self):
        short = self.entry(dirty_set_bytes=90 * MIB, dirty_rate_bps=20 * MIB, duration_s=40, passes=9)
        long = self.entry(dirty_set_bytes=90 * MIB, dirty_rate_bps=20 * MIB, duration_s=150, passes=16)
        sampled = GuestLoad(memory_bytes=GIB, measured_working_set_bytes=96 * MIB, history=(short,))
        assert resolve_working_set(sampled) == (96 * MIB, 'measured') and not working_set_unknown(sampled)
        assert resolve_working_set(replace(sampled, history=(long,))) == (90 * MIB, 'history')  # whole migrations win
        assert resolve_working_set(replace(sampled, measured_working_set_bytes=2 * GIB)) == (GIB, 'measured')
        assert working_set_unknown(GuestLoad(memory_bytes=GIB, history=(short,)))
        with pytest.raises(PredictionInputError, match='measured_working_set_bytes'):
            GuestLoad(memory_bytes=GIB, measured_working_set_bytes=-1)

    def test_the_first_pass_tells_whether_the_dirty_set_saturated(self):
        # An uncapped 1.4 s job (1 s of it the job's fixed part): its first pass moved 0.4 GiB at 1 GiB/s,
        # 0.4 s x 8 MiB/s = 3.2 < 2 x 3 MiB; without throughput, (1.4 - 1) / 2 s x 8 < 6 MiB: assumed.
        warm_up = dict(dirty_set_bytes=3 * MIB, dirty_rate_bps=8 * MIB, duration_s=1.4, passes=2)
        for figures in (dict(throughput_bps=GIB, zero_page_share=0.6), {}):
            history = (self.entry(**warm_up, **figures),)
            assert resolve_working_set(GuestLoad(memory_bytes=GIB, history=history)) == (GIB, 'assumed')
        # Capped at 20 MiB/s: 0.4 GiB took 20 s, 200 MiB at 10 MiB/s, yet the next pass started with 48:
        # the set, whatever the average of its 4 passes (25 s / 4 x 10 < 96).
        capped = self.entry(dirty_set_bytes=48 * MIB, dirty_rate_bps=10 * MIB, duration_s=26, passes=4,
                            throughput_bps=20 * MIB, zero_page_share=0.6)
        assert resolve_working_set(GuestLoad(memory_bytes=GIB, history=(capped,))) == (48 * MIB, 'history')

    def test_history_stands_in_for_bandwidth_and_zero_pages(self):
        history = (self.entry(throughput_bps=50 * MIB, zero_page_share=0.5, dirty_rate_bps=0),)
        assert resolve_bandwidth(MigrationPath(bandwidth_bps=None), history) == (50 * MIB, 'history')
        prediction = predict(GuestLoad(memory_bytes=GIB, history=history), MigrationPath(bandwidth_bps=None))
        assert (prediction.dirty_rate_source, prediction.bandwidth_source, prediction.zero_page_share) == (
            'history', 'history', 0.5)
        assert outcome(prediction, Strategy.PRECOPY).total_s == pytest.approx((512 * MIB + 131072 * 9) / (50 * MIB))

    def test_nothing_known_means_no_prediction_and_no_refusal(self):
        prediction = predict(GuestLoad(memory_bytes=GIB), MigrationPath(bandwidth_bps=100 * MIB))
        assert prediction.verdict == 'unknown' and 'dirty rate is unknown' in prediction.sentence
        assert [o.strategy for o in prediction.outcomes] == [Strategy.PAUSED]
        decision = choose_strategy(prediction, Limits())
        assert (decision.known, decision.refused, decision.strategy) == (False, False, None)
        assert predict(GuestLoad(memory_bytes=GIB, dirty_rate_bps=0), MigrationPath(bandwidth_bps=None)).outcomes == ()


class TestInFlight:
    """Re-predicting a running job from its statistics at a pass end (the engine's course check)."""

    def test_pass_ends_are_what_the_job_should_show(self):
        auto = outcome(predict(GuestLoad(**BASELINE), LAB_PATH, Limits(bandwidth_cap_bps=10 * MIB)), Strategy.AUTO_CONVERGE)
        assert len(auto.pass_ends) == auto.passes == 10
        assert auto.pass_ends[0] == (25.6, 96 * MIB)
        assert auto.pass_ends[5] == (pytest.approx(73.6), pytest.approx(48 * MIB))

    def test_a_job_on_course_ends_as_predicted(self):
        # From the end of pass 3 (44.8 s, 96 MiB left, QEMU at 50 %): 75 % after pass 5, then the
        # set halves each pass and fits after pass 10, as the prediction from the start said.
        limits = Limits(bandwidth_cap_bps=10 * MIB)
        now = InFlight(passes_done=3, remaining_bytes=96 * MIB, elapsed_s=44.8, throttle_percent=50)
        again = predict(GuestLoad(**BASELINE), LAB_PATH, limits, in_flight=now)
        auto = outcome(again, Strategy.AUTO_CONVERGE)
        assert (auto.passes, auto.throttle_percent) == (10, 75)
        assert auto.total_s == pytest.approx(25.6 + 5 * 9.6 + 4.8 + 2.4 + 1.2 + 0.6 + 0.01)
        assert outcome(again, Strategy.PRECOPY_STEPS).finishes is False
        # Post-copy from here switches at once: the 96 MiB left do not fit 500 ms.
        post = outcome(again, Strategy.POSTCOPY)
        assert (post.passes, post.total_s, post.bytes_sent) == (3, pytest.approx(44.8 + 0.05 + 96 / 300), 96 * MIB)

    def test_a_guest_busier_than_measured_changes_the_choice(self):
        # Measured idle: plain pre-copy.  After pass 2 the job shows 96 MiB left and 20 MiB/s:
        # re-predicted with the job's own figures, post-copy is what meets the limits.
        limits = Limits(bandwidth_cap_bps=10 * MIB, allow_auto_converge=False, allow_postcopy=True)
        before = predict(GuestLoad(memory_bytes=256 * MIB, dirty_rate_bps=0.1 * MIB), LAB_PATH, limits)
        assert choose_strategy(before, limits).strategy == Strategy.PRECOPY_STEPS
        now = InFlight(passes_done=2, remaining_bytes=96 * MIB, elapsed_s=35.2)
        again = predict(GuestLoad(**BASELINE), MigrationPath(bandwidth_bps=10 * MIB), limits, in_flight=now)
        decision = choose_strategy(again, limits)
        assert decision.strategy == Strategy.POSTCOPY
        assert (decision.outcome.passes, decision.outcome.total_s) == (2, pytest.approx(35.2 + 0.05 + 9.6))

    def test_bad_state(self):
        with pytest.raises(PredictionInputError, match='passes_done must be at least 1'):
            InFlight(passes_done=0, remaining_bytes=0, elapsed_s=0)
        with pytest.raises(PredictionInputError, match='throttle_percent must be within 0..100'):
            InFlight(passes_done=1, remaining_bytes=0, elapsed_s=0, throttle_percent=120)


class TestPostcopyStart:
    def test_when_stalled_waits_for_the_bound_and_a_stall(self):
        # The steps reach 500 ms at pass 6; every pass leaves 96 MiB, so passes 4, 5, 6 are
        # stalled (no better than 0.9 x the sets before): switch after pass 6.
        limits = Limits(bandwidth_cap_bps=10 * MIB, postcopy_start='when_stalled')
        post = outcome(predict(GuestLoad(**BASELINE), LAB_PATH, limits), Strategy.POSTCOPY)
        assert (post.stop, post.passes) == ('postcopy', 6)
        assert post.total_s == pytest.approx(25.6 + 5 * 9.6 + POSTCOPY_SWITCHOVER_MS / 1000 + 96 / 300)

    def test_when_outpaced_leaves_a_guest_that_converges_in_precopy(self):
        # 5 MiB/s against 10: pass 1 leaves 96 MiB (after_first_pass switches), but the set
        # halves every pass after, so when_outpaced never switches.
        load = GuestLoad(**{**BASELINE, 'dirty_rate_bps': 5 * MIB})
        path_limits = dict(bandwidth_cap_bps=10 * MIB)
        first = outcome(predict(load, LAB_PATH, Limits(**path_limits)), Strategy.POSTCOPY)
        outpaced = outcome(predict(load, LAB_PATH, Limits(postcopy_start='when_outpaced', **path_limits)),
                           Strategy.POSTCOPY)
        assert (first.stop, first.passes) == ('postcopy', 1)
        assert outpaced.stop == 'converged' and outpaced.passes > 1
        assert outpaced.total_s > first.total_s


class TestLimitsFromOptions:
    def test_virt_migrate_options(self):
        options = dict(max_downtime=300, auto_converge=False, allow_postcopy=True, timeout=None, bandwidth=10,
                       postcopy_bandwidth=0, auto_converge_initial=None, auto_converge_increment=30,
                       policy=dict(downtime_steps=3, postcopy_start='when_stalled', stall_window=None))
        limits = limits_from_options(options, timeout_s=135)
        assert limits == Limits(max_downtime_ms=300, allow_auto_converge=False, allow_postcopy=True, timeout_s=135,
                                bandwidth_cap_bps=10 * MIB, postcopy_bandwidth_bps=None, throttle_increment=30,
                                downtime_steps=3, postcopy_start='when_stalled')
        assert limits_from_options({}) == Limits()

    def test_bad_policy_is_an_input_error(self):
        with pytest.raises(PredictionInputError, match='postcopy_start must be one of'):
            limits_from_options(dict(policy=dict(postcopy_start='sometime')))


class TestChoice:
    def test_fixed_downtime_when_only_it_meets_the_timeout(self):
        # From TestIdleGuest: 8.125 s at a fixed 500 ms, 8.127 s with the steps.
        limits = Limits(timeout_s=8.126)
        prediction = predict(GuestLoad(memory_bytes=GIB, dirty_rate_bps=2 * MIB), MigrationPath(bandwidth_bps=128 * MIB),
                             limits)
        assert choose_strategy(prediction, limits).strategy == Strategy.PRECOPY

    def test_auto_converge_not_allowed_is_offered(self):
        limits = Limits(bandwidth_cap_bps=10 * MIB, allow_auto_converge=False)
        prediction = predict(GuestLoad(**BASELINE), LAB_PATH, limits)
        decision = choose_strategy(prediction, limits)
        assert decision.refused
        assert any(r.startswith('auto_converge: true: about 83 s, 10 passes') for r in decision.remedies)
        assert outcome(prediction, Strategy.AUTO_CONVERGE).allowed is False

    def test_timeout_remedy(self):
        limits = Limits(timeout_s=20)
        prediction = predict(GuestLoad(memory_bytes=GIB, dirty_rate_bps=80 * MIB), MigrationPath(bandwidth_bps=100 * MIB),
                             limits)
        decision = choose_strategy(prediction, limits)
        assert decision.refused
        assert any(r.startswith('timeout: at least') for r in decision.remedies)

    def test_as_dict_is_plain_data(self):
        prediction = predict(GuestLoad(**BASELINE), LAB_PATH)
        view = prediction.as_dict()
        assert set(view['outcomes']) == set(Strategy.CHOICE_ORDER) | {Strategy.PAUSED}
        assert view['outcomes']['postcopy']['allowed'] is False


class TestBadInput:
    @pytest.mark.parametrize('kwargs, words', [
        (dict(memory_bytes=0), 'memory_bytes must be a positive number'),
        (dict(memory_bytes=GIB, dirty_rate_bps=-1), 'dirty_rate_bps must be >= 0'),
        (dict(memory_bytes=GIB, zero_page_share=1.5), 'zero_page_share must be within 0..1'),
        (dict(memory_bytes=GIB, writer_cpu_share=0), 'writer_cpu_share must be within (0, 1]'),
        (dict(memory_bytes=GIB, write_pattern='zigzag'), 'write_pattern must be one of sequential, random'),
    ])
    def test_guest(self, kwargs, words):
        with pytest.raises(PredictionInputError, match=r'invalid guest load: .*' + words.replace('(', r'\(').replace(
                ')', r'\)').replace('.', r'\.')):
            GuestLoad(**kwargs)

    def test_path_and_limits(self):
        with pytest.raises(PredictionInputError, match='bandwidth_bps must be at least 1'):
            MigrationPath(bandwidth_bps=0)
        with pytest.raises(PredictionInputError, match='throttle_max must be a percentage'):
            Limits(throttle_max=150)
        with pytest.raises(PredictionInputError, match='max_downtime_ms must be a positive integer'):
            Limits(max_downtime_ms=0)


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

loads = st.builds(
    GuestLoad,
    memory_bytes=st.integers(64, 8192).map(lambda m: m * MIB),
    dirty_rate_bps=st.floats(0, 400).map(lambda r: r * MIB),
    working_set_bytes=st.one_of(st.none(), st.integers(1, 4096).map(lambda w: w * MIB)),
    zero_page_share=st.floats(0, 0.95),
    write_pattern=st.sampled_from(('sequential', 'random')),
)
bandwidths = st.floats(5, 2000).map(lambda b: b * MIB)
MONOTONE = (Strategy.PRECOPY, Strategy.PRECOPY_STEPS, Strategy.POSTCOPY)


def _no_worse(better, worse):
    """``better`` finishes whenever ``worse`` does, and no later.

    Post-copy only finishes: the engine switches after a pass whose rest does not fit
    max_downtime, so a guest whose rest just fits keeps pre-copying and can end a little later
    than a busier one that switched (64 MiB at 96 MiB/s: 2.34 s at 56 MiB/s, 2.41 s at 112).
    """
    if worse.finishes:
        assert better.finishes
        if better.strategy != Strategy.POSTCOPY:
            assert better.total_s <= worse.total_s * (1 + 1e-9)


@settings(max_examples=150, deadline=None)
@given(load=loads, bandwidth=bandwidths, factor=st.floats(1.0, 4.0))
def test_more_bandwidth_never_makes_it_slower(load, bandwidth, factor):
    limits = Limits(allow_postcopy=True)
    slow = predict(load, MigrationPath(bandwidth_bps=bandwidth), limits)
    fast = predict(load, MigrationPath(bandwidth_bps=bandwidth * factor), limits)
    for strategy in MONOTONE:
        _no_worse(fast.outcome(strategy), slow.outcome(strategy))


@settings(max_examples=150, deadline=None)
@given(load=loads, bandwidth=bandwidths, factor=st.floats(1.0, 4.0))
def test_a_higher_dirty_rate_never_makes_it_faster(load, bandwidth, factor):
    path = MigrationPath(bandwidth_bps=bandwidth)
    calm = predict(load, path)
    busy = predict(replace(load, dirty_rate_bps=load.dirty_rate_bps * factor), path)
    for strategy in MONOTONE:
        _no_worse(calm.outcome(strategy), busy.outcome(strategy))


@settings(max_examples=100, deadline=None)
@given(load=loads, bandwidth=bandwidths)
def test_figures_are_consistent(load, bandwidth):
    limits = Limits(timeout_s=600, allow_postcopy=True)
    prediction = predict(load, MigrationPath(bandwidth_bps=bandwidth), limits)
    for result in prediction.outcomes:
        assert result.meets_limits <= result.finishes
        if result.finishes:
            assert result.total_s >= result.bytes_sent / max(bandwidth, limits.postcopy_bandwidth_bps or bandwidth) - 1e-6
            assert result.downtime_ms >= 0
    if prediction.verdict in Strategy.CHOICE_ORDER:
        assert prediction.outcome(prediction.verdict).meets_limits
    needed = prediction.required_bandwidth_bps
    if needed is not None:
        assert predict(load, MigrationPath(bandwidth_bps=needed * 1.01), limits).outcome(Strategy.PRECOPY).meets_limits
