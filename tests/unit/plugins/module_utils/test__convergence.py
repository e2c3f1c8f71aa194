# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.kvmops.migration.plugins.module_utils._convergence import ConvergenceEngine
from ansible_collections.kvmops.migration.plugins.module_utils._convergence_types import (
    Action,
    ActionKind,
    EngineState,
    JobSample,
    Policy,
)

MIB = 1 << 20
GIB = 1 << 30
JOB_UNBOUNDED = 2
JOB_COMPLETED = 3


def sample(t_ms, iteration, remaining, dirty_rate_bps=None, bandwidth=None, throttle=0, job_type=JOB_UNBOUNDED):
    stats = {"type": job_type, "memory_iteration": iteration, "data_remaining": remaining, "memory_bps": bandwidth,
             "auto_converge_throttle": throttle, "memory_page_size": 4096}
    if dirty_rate_bps is not None:
        stats["memory_dirty_rate"] = dirty_rate_bps // 4096
    return JobSample.from_job_stats({key: value for key, value in stats.items() if value is not None}, t_ms)


def kinds(actions):
    return [action.kind for action in actions]


def feed(engine, dirty_sets, samples_per_pass=3, start_iteration=1, t_step=500):
    """Feed passes whose remaining size falls from the given dirty set; return all new actions."""
    actions = []
    t_ms = 0
    for offset, dirty_set in enumerate(dirty_sets):
        for step in range(samples_per_pass):
            t_ms += t_step
            remaining = dirty_set - step * dirty_set // (samples_per_pass + 1)
            actions += engine.observe(sample(t_ms, start_iteration + offset, remaining))
    return actions


class QemuPrecopyModel:
    """A small model of QEMU pre-copy, just faithful enough to drive the engine.

    Each pass sends the dirty set at ``bandwidth`` until the rest is below the
    switch-over threshold (bandwidth x downtime); then the bitmap is synced:
    pages dirtied during the pass (at the dirty rate slowed by the vCPU
    throttle, capped by the working set) join the rest.  If that fits the threshold the
    migration completes, otherwise the next pass starts.  With auto-converge,
    a pass whose dirty set did not shrink below half raises the throttle by 10
    points (starting at 20), as QEMU does with its defaults.
    """

    def __init__(self, memory, bandwidth, dirty_rate, working_set, auto_converge=False, throttle_cap=99):
        self.memory, self.bandwidth, self.dirty_rate, self.working_set = memory, bandwidth, dirty_rate, working_set
        self.auto_converge, self.throttle_cap = auto_converge, throttle_cap

    def run(self, engine, tick_ms=100, sample_every_ticks=5, limit_ms=3_600_000):
        """Return (outcome, t_ms): completed, postcopy, aborted or running."""
        downtime_ms = 300  # QEMU's default until the engine sets one
        throttle = 0
        iteration, remaining, pass_start, previous_dirty = 1, float(self.memory), 0, float(self.memory)
        pending_actions = engine.initial_actions(0)
        t_ms = 0
        while t_ms < limit_ms:
            for action in pending_actions:
                if action.kind == ActionKind.SET_MAX_DOWNTIME:
                    downtime_ms = action.value
                elif action.kind in (ActionKind.START_POSTCOPY, ActionKind.ABORT):
                    return ("postcopy" if action.kind == ActionKind.START_POSTCOPY else "aborted"), t_ms
            t_ms += tick_ms
            threshold = self.bandwidth * downtime_ms / 1000.0
            remaining -= self.bandwidth * tick_ms / 1000.0
            if remaining <= threshold:
                rate = self.dirty_rate * (100 - throttle) / 100.0
                dirtied = min(self.working_set, rate * (t_ms - pass_start) / 1000.0)
                remaining = max(remaining, 0.0) + dirtied
                if remaining <= threshold:
                    return "completed", t_ms
                if self.auto_converge and remaining > previous_dirty / 2:
                    throttle = min(self.throttle_cap, 20 if throttle == 0 else throttle + 10)
                iteration, pass_start, previous_dirty = iteration + 1, t_ms, remaining
            pending_actions = []
            if (t_ms // tick_ms) % sample_every_ticks == 0:
                pending_actions = engine.observe(sample(
                    t_ms, iteration, int(remaining), dirty_rate_bps=int(self.dirty_rate * (100 - throttle) / 100),
                    bandwidth=int(self.bandwidth), throttle=throttle,
                ))
        return "running", t_ms


IDLE_GUEST = dict(memory=2 * GIB, bandwidth=1 * GIB, dirty_rate=2 * MIB, working_set=64 * MIB)
BUSY_GUEST = dict(memory=4 * GIB, bandwidth=100 * MIB, dirty_rate=400 * MIB, working_set=1 * GIB)


class TestJobSample:
    def test_from_libvirt_job_stats(self):
        stats = {
            "type": 2, "operation": 6, "time_elapsed": 1234, "data_total": 10, "data_processed": 4,
            "data_remaining": 6, "memory_total": 8, "memory_processed": 3, "memory_remaining": 5,
            "memory_bps": 100, "memory_dirty_rate": 10, "memory_page_size": 8192, "memory_iteration": 3,
            "memory_postcopy_requests": 0, "downtime": 250, "auto_converge_throttle": 30, "disk_total": 2,
            "disk_processed": 1, "disk_remaining": 1, "memory_constant": 99, "compression_cache": 5,
        }
        parsed = JobSample.from_job_stats(stats, 42)
        assert parsed == JobSample(
            t_ms=42, job_type=2, operation=6, time_elapsed_ms=1234, data_total=10, data_processed=4,
            data_remaining=6, memory_total=8, memory_processed=3, memory_remaining=5, memory_bps=100,
            memory_dirty_rate=10, memory_page_size=8192, memory_iteration=3, memory_postcopy_requests=0,
            downtime_ms=250, auto_converge_throttle=30, disk_total=2, disk_processed=1, disk_remaining=1,
        )
        assert parsed.dirty_rate_bps == 10 * 8192
        assert parsed.remaining == 6

    def test_missing_keys(self):
        parsed = JobSample.from_job_stats({}, 7)
        assert parsed.t_ms == 7
        assert parsed.data_remaining is None and parsed.memory_bps is None and parsed.job_type is None
        assert (parsed.memory_iteration, parsed.auto_converge_throttle, parsed.memory_postcopy_requests) == (0, 0, 0)
        assert parsed.dirty_rate_bps is None and parsed.remaining is None
        assert parsed.is_running

    def test_default_page_size_and_memory_remaining_fallback(self):
        parsed = JobSample.from_job_stats({"memory_dirty_rate": 3, "memory_remaining": 11}, 0)
        assert parsed.dirty_rate_bps == 3 * 4096
        assert parsed.remaining == 11

    @pytest.mark.parametrize("job_type, running", [(0, False), (1, True), (2, True), (3, False), (4, False), (5, False)])
    def test_is_running(self, job_type, running):
        assert JobSample.from_job_stats({"type": job_type}, 0).is_running is running


class TestPolicy:
    def test_defaults(self):
        policy = Policy()
        assert (policy.max_downtime_ms, policy.downtime_steps, policy.allow_postcopy) == (500, 5, False)
        assert (policy.stall_window, policy.min_progress_ratio, policy.stalled_abort_passes) == (3, 0.9, 12)
        assert policy.completion_timeout_ms is None

    @pytest.mark.parametrize(
        "max_downtime, steps, schedule",
        [
            (500, 5, [100, 200, 300, 400, 500, 500]),
            (100, 5, [50, 50, 60, 80, 100, 100]),  # never below 50 ms ...
            (30, 3, [30, 30, 30]),  # ... unless the bound itself is lower
            (1000, 1, [1000, 1000]),
            (1000, 3, [333, 666, 1000, 1000]),
        ],
    )
    def test_downtime_schedule(self, max_downtime, steps, schedule):
        policy = Policy(max_downtime_ms=max_downtime, downtime_steps=steps)
        assert [policy.downtime_for_raises(raises) for raises in range(len(schedule))] == schedule
        assert policy.initial_downtime_ms == schedule[0]

    @pytest.mark.parametrize(
        "field, value",
        [("max_downtime_ms", 0), ("downtime_steps", 0), ("stall_window", -1), ("min_progress_ratio", 0),
         ("min_progress_ratio", 1.5), ("completion_timeout_ms", 0), ("stalled_abort_passes", 1.5)],
    )
    def test_invalid(self, field, value):
        with pytest.raises(ValueError, match=field):
            Policy(**{field: value})


class TestSimulatedGuests:
    def test_idle_guest_converges_with_only_the_initial_action(self):
        engine = ConvergenceEngine(Policy(), auto_converge_enabled=True)
        outcome, dummy = QemuPrecopyModel(**IDLE_GUEST).run(engine)
        assert outcome == "completed"
        assert [(action.kind, action.value) for action in engine.actions] == [(ActionKind.SET_MAX_DOWNTIME, 100)]
        assert engine.state == EngineState.PRECOPY

    def test_busy_guest_steps_downtime_to_the_bound_then_aborts_with_advice(self):
        engine = ConvergenceEngine(Policy(max_downtime_ms=500), auto_converge_enabled=False)
        outcome, dummy = QemuPrecopyModel(**BUSY_GUEST).run(engine)
        assert outcome == "aborted"
        downtimes = [action.value for action in engine.actions if action.kind == ActionKind.SET_MAX_DOWNTIME]
        assert downtimes == [100, 200, 300, 400, 500]
        assert kinds(engine.actions)[-1] == ActionKind.ABORT
        assert "post-copy not allowed" in engine.actions[-1].reason
        assert engine.state == EngineState.ABORTING
        advice = engine.advice()
        # The guest starts every pass with ~1 GiB dirty: copying that in 500 ms needs ~2 GiB/s.
        needed = float(re.search(r"needs about ([0-9.]+) MiB/s", advice).group(1))
        assert 1800 <= needed <= 2100
        assert engine.required_bandwidth_bps() == pytest.approx(needed * MIB, rel=0.01)
        assert "dirties memory at 400.0 MiB/s while the migration moves 100.0 MiB/s" in advice
        assert "allow_postcopy=true would finish it" in advice and "the guest is lost" in advice
        assert "cannot help while the dirty rate exceeds the bandwidth" in advice

    def test_auto_converge_is_only_observed_and_delays_the_abort_until_it_is_exhausted(self):
        engine = ConvergenceEngine(Policy(), auto_converge_enabled=True)
        # Throttling cannot save this guest: even at 99 % its working set needs ~2 s of downtime.
        guest = dict(BUSY_GUEST, dirty_rate=40 * GIB, working_set=1 * GIB, auto_converge=True)
        outcome, dummy = QemuPrecopyModel(**guest).run(engine)  # pylint: disable=repeated-keyword
        assert outcome == "aborted"
        engaged = [action.value for action in engine.actions if action.kind == ActionKind.AUTO_CONVERGE_ENGAGED]
        assert engaged[0] == 20 and engaged == sorted(engaged) and engaged[-1] == 99
        assert len(set(action.iteration for action in engine.actions
                       if action.kind == ActionKind.AUTO_CONVERGE_ENGAGED)) == len(engaged)
        assert engine.summary()["auto_converge_throttle"] == 99

    def test_throttle_capped_below_max_counts_as_exhausted(self):
        engine = ConvergenceEngine(Policy(), auto_converge_enabled=True)
        guest = dict(BUSY_GUEST, dirty_rate=40 * GIB, auto_converge=True, throttle_cap=50)
        outcome, dummy = QemuPrecopyModel(**guest).run(engine)  # pylint: disable=repeated-keyword
        assert outcome == "aborted"
        assert engine.summary()["auto_converge_throttle"] == 50

    def test_auto_converge_that_works_lets_the_guest_complete(self):
        engine = ConvergenceEngine(Policy(), auto_converge_enabled=True)
        guest = dict(BUSY_GUEST, working_set=64 * MIB, auto_converge=True)
        outcome, dummy = QemuPrecopyModel(**guest).run(engine)  # pylint: disable=repeated-keyword
        assert outcome == "completed"
        assert ActionKind.ABORT not in kinds(engine.actions)

    def test_postcopy_allowed_starts_postcopy_after_stall(self):
        engine = ConvergenceEngine(Policy(allow_postcopy=True, postcopy_start="when_stalled"), postcopy_enabled=True)
        outcome, dummy = QemuPrecopyModel(**BUSY_GUEST).run(engine)
        assert outcome == "postcopy"
        assert kinds(engine.actions)[-1] == ActionKind.START_POSTCOPY
        assert engine.downtime_in_effect_ms == 500
        assert engine.state == EngineState.POSTCOPY
        assert engine.advice().startswith("The migration was switched to post-copy after")

    def test_postcopy_starts_after_the_first_pass_that_leaves_more_than_the_downtime_can_send(self):
        # 400 MiB/s dirtied against 100 MiB/s: the stall rule alone would resend the working set
        # through 5 downtime steps and 2 stalled passes first.
        engine = ConvergenceEngine(Policy(allow_postcopy=True), postcopy_enabled=True)
        outcome, t_ms = QemuPrecopyModel(**BUSY_GUEST).run(engine)
        late = ConvergenceEngine(Policy(allow_postcopy=True, postcopy_start="when_stalled"), postcopy_enabled=True)
        dummy, t_late_ms = QemuPrecopyModel(**BUSY_GUEST).run(late)
        assert outcome == "postcopy" and engine.completed_passes == 1
        assert t_ms < t_late_ms
        switch = engine.actions[-1]
        assert switch.kind == ActionKind.START_POSTCOPY
        assert "pass 1 left" in switch.reason and "max_downtime=500 ms at 100.0 MiB/s" in switch.reason

    def test_when_outpaced_switches_on_the_measured_rates(self):
        engine = ConvergenceEngine(Policy(allow_postcopy=True, postcopy_start="when_outpaced"), postcopy_enabled=True)
        outcome, dummy = QemuPrecopyModel(**BUSY_GUEST).run(engine)
        assert outcome == "postcopy" and engine.completed_passes == 1
        reason = engine.actions[-1].reason
        assert "400.0 MiB/s" in reason and "100.0 MiB/s" in reason and "cannot converge" in reason

    @pytest.mark.parametrize("dirty_mib_s, switches", [(89, False), (90, True), (150, True)])
    def test_when_outpaced_uses_the_stall_threshold(self, dirty_mib_s, switches):
        engine = ConvergenceEngine(Policy(allow_postcopy=True, postcopy_start="when_outpaced",
                                          stalled_abort_passes=1000), postcopy_enabled=True)
        engine.initial_actions(0)
        actions = engine.observe(sample(500, 1, 900 * MIB, dirty_rate_bps=dirty_mib_s * MIB, bandwidth=100 * MIB))
        actions += engine.observe(sample(1000, 2, 200 * MIB, dirty_rate_bps=dirty_mib_s * MIB, bandwidth=100 * MIB))
        assert (ActionKind.START_POSTCOPY in kinds(actions)) is switches

    @pytest.mark.parametrize("rest_mib, switches", [(49, False), (50, False), (51, True)])
    def test_after_first_pass_switches_only_when_the_rest_does_not_fit_in_the_downtime(self, rest_mib, switches):
        # 100 MiB/s x 500 ms = 50 MiB: what QEMU can send within max_downtime.
        engine = ConvergenceEngine(Policy(allow_postcopy=True, stalled_abort_passes=1000), postcopy_enabled=True)
        engine.initial_actions(0)
        actions = engine.observe(sample(500, 1, 900 * MIB, dirty_rate_bps=1 * MIB, bandwidth=100 * MIB))
        actions += engine.observe(sample(1000, 2, rest_mib * MIB, dirty_rate_bps=1 * MIB, bandwidth=100 * MIB))
        assert (ActionKind.START_POSTCOPY in kinds(actions)) is switches

    def test_an_unknown_postcopy_start_is_refused(self):
        with pytest.raises(ValueError, match="postcopy_start must be one of after_first_pass, when_outpaced"):
            Policy(postcopy_start="eventually")

    @pytest.mark.parametrize("allow, flag", [(False, True), (True, False)])
    def test_no_early_switch_without_postcopy(self, allow, flag):
        engine = ConvergenceEngine(Policy(allow_postcopy=allow), postcopy_enabled=flag)
        feed_rates = [sample(500 * i, 1 + i, 900 * MIB, dirty_rate_bps=400 * MIB, bandwidth=100 * MIB) for i in range(4)]
        actions = [action for s in feed_rates for action in engine.observe(s)]
        assert ActionKind.START_POSTCOPY not in kinds(actions)

    def test_a_guest_that_converges_is_not_switched(self):
        engine = ConvergenceEngine(Policy(allow_postcopy=True), postcopy_enabled=True)
        outcome, dummy = QemuPrecopyModel(**IDLE_GUEST).run(engine)
        assert outcome == "completed" and engine.state == EngineState.PRECOPY

    def test_postcopy_allowed_by_policy_but_not_started_with_the_flag(self):
        engine = ConvergenceEngine(Policy(allow_postcopy=True), postcopy_enabled=False)
        outcome, dummy = QemuPrecopyModel(**BUSY_GUEST).run(engine)
        assert outcome == "aborted"
        assert "started without the POSTCOPY flag" in engine.advice()

    def test_timeout_aborts(self):
        engine = ConvergenceEngine(Policy(completion_timeout_ms=20_000))
        slow_but_converging = dict(memory=16 * GIB, bandwidth=100 * MIB, dirty_rate=1 * MIB, working_set=64 * MIB)
        outcome, t_ms = QemuPrecopyModel(**slow_but_converging).run(engine)
        assert (outcome, t_ms) == ("aborted", 20_000)
        assert "completion_timeout_ms=20000" in engine.actions[-1].reason


class TestStallDetection:
    def engine(self, **policy):
        return ConvergenceEngine(Policy(**dict({"stalled_abort_passes": 1000}, **policy)))

    def test_oscillating_dirty_sets_with_falling_minimum_are_not_a_stall(self):
        engine = self.engine()
        # Alternating high/low passes, but every low is 15 % below the previous low.
        dirty_sets = []
        low = 1000 * MIB
        for dummy in range(8):
            dirty_sets += [2 * low, low]
            low = int(low * 0.85)
        feed(engine, dirty_sets)
        assert engine.summary()["stalled_passes"] == 0

    def test_oscillation_around_a_constant_level_is_a_stall(self):
        engine = self.engine()
        feed(engine, [1200 * MIB, 800 * MIB] * 6)
        # The stall shows once a full window follows the first passes.
        assert engine.summary()["stalled_passes"] >= 6

    def test_last_values_falling_do_not_hide_a_stall(self):
        engine = self.engine()
        # A sawtooth: within each pass the remaining size drops sharply, pass after pass the same.
        feed(engine, [900 * MIB] * 10, samples_per_pass=6)
        assert engine.summary()["stalled_passes"] >= 5

    def test_steady_progress_is_not_a_stall(self):
        engine = self.engine()
        feed(engine, [int(1000 * MIB * 0.8 ** index) for index in range(12)])
        assert engine.summary()["stalled_passes"] == 0

    def test_slow_progress_is_a_stall(self):
        engine = self.engine()
        feed(engine, [int(1000 * MIB * 0.98 ** index) for index in range(12)])
        assert engine.summary()["stalled_passes"] > 0

    def test_no_stall_before_a_full_window_and_a_pass_before_it(self):
        engine = self.engine(stall_window=3)
        feed(engine, [500 * MIB] * 4)  # pass 1 sends all memory; two dirty sets are not a window plus history
        assert engine.summary()["stalled_passes"] == 0
        feed(engine, [500 * MIB] * 2, start_iteration=5)
        assert engine.summary()["stalled_passes"] >= 1

    def test_skipped_iterations_count_as_passes(self):
        engine = self.engine(stall_window=1)
        feed(engine, [500 * MIB] * 4)
        assert engine.summary()["stalled_passes"] == 1
        engine.observe(sample(10_000, 8, 500 * MIB))  # passes 4..7 completed between two samples
        assert engine.summary()["stalled_passes"] == 5
        assert engine.completed_passes == 7


class TestEngineRules:
    def test_initial_actions_once(self):
        engine = ConvergenceEngine(Policy(max_downtime_ms=300, downtime_steps=3))
        first = engine.initial_actions(5)
        assert [(action.kind, action.value, action.t_ms) for action in first] == [("set_max_downtime", 100, 5)]
        assert engine.initial_actions(6) == []

    def test_without_initial_actions_the_first_completed_pass_sets_the_first_step(self):
        engine = ConvergenceEngine(Policy())
        actions = feed(engine, [GIB, GIB // 2])
        assert [(action.kind, action.value) for action in actions] == [("set_max_downtime", 100)]

    def test_downtime_rises_one_step_per_pass_after_the_first(self):
        engine = ConvergenceEngine(Policy())
        engine.initial_actions()
        actions = feed(engine, [4 * GIB] + [GIB] * 6)
        values = [action.value for action in actions if action.kind == ActionKind.SET_MAX_DOWNTIME]
        assert values == [200, 300, 400, 500]
        assert [action.iteration for action in actions if action.kind == ActionKind.SET_MAX_DOWNTIME] == [3, 4, 5, 6]

    def test_disk_mirroring_phase_is_not_a_pass(self):
        engine = ConvergenceEngine(Policy(stall_window=1))
        for t_ms in range(0, 5000, 500):
            assert engine.observe(sample(t_ms, 0, 50 * GIB - t_ms * MIB)) == []
        assert engine.completed_passes == 0
        feed(engine, [GIB] * 4)
        assert engine.summary()["stalled_passes"] == 1

    def test_nothing_after_abort_or_finished_job(self):
        engine = ConvergenceEngine(Policy(completion_timeout_ms=1000))
        assert engine.observe(sample(0, 1, GIB)) == []
        assert kinds(engine.observe(sample(1000, 1, GIB))) == [ActionKind.ABORT]
        assert engine.observe(sample(5000, 9, GIB, throttle=50)) == []
        assert engine.initial_actions(6000) == []
        finished = ConvergenceEngine(Policy(completion_timeout_ms=1000))
        assert finished.observe(sample(0, 1, GIB)) == []
        assert finished.observe(sample(5000, 5, 0, job_type=JOB_COMPLETED)) == []

    def test_no_abort_after_postcopy_even_on_timeout(self):
        engine = ConvergenceEngine(Policy(allow_postcopy=True, completion_timeout_ms=60_000), postcopy_enabled=True)
        feed(engine, [GIB] * 12)
        assert engine.state == EngineState.POSTCOPY
        assert engine.observe(sample(10 ** 9, 20, GIB)) == []

    def test_throttle_recorded_once_per_pass(self):
        engine = ConvergenceEngine(Policy(), auto_converge_enabled=True)
        values = [(1, 0), (1, 20), (1, 30), (2, 30), (2, 40), (3, 40), (3, 40), (4, 30)]
        actions = []
        for t_ms, (iteration, throttle) in enumerate(values):
            actions += engine.observe(sample(t_ms, iteration, GIB, throttle=throttle))
        engaged = [(action.iteration, action.value, action.reason) for action in actions
                   if action.kind == ActionKind.AUTO_CONVERGE_ENGAGED]
        assert engaged == [
            (1, 20, "QEMU started throttling the vCPUs to 20%"),
            (2, 30, "QEMU raised the vCPU throttle to 30%"),
            (3, 40, "QEMU raised the vCPU throttle to 40%"),
        ]

    def test_clock_going_backwards_does_not_reorder_actions(self):
        engine = ConvergenceEngine(Policy())
        engine.initial_actions(10_000)
        actions = engine.observe(sample(5, 1, GIB, throttle=20))
        assert actions[0].t_ms == 10_000

    def test_action_records_the_measurements(self):
        engine = ConvergenceEngine(Policy(completion_timeout_ms=1))
        engine.observe(sample(0, 2, 3 * GIB, dirty_rate_bps=8 * MIB, bandwidth=100 * MIB))
        action = engine.observe(sample(1, 2, 2 * GIB, dirty_rate_bps=4 * MIB, bandwidth=90 * MIB))[0]
        assert action.as_dict() == {
            "kind": "abort", "value": None, "t_ms": 1, "iteration": 2, "data_remaining": 2 * GIB,
            "dirty_rate_bps": 4 * MIB, "bandwidth_bps": 90 * MIB,
            "reason": "not complete after 1 ms (completion_timeout_ms=1)",
        }

    def test_summary(self):
        engine = ConvergenceEngine(Policy())
        engine.initial_actions()
        engine.observe(sample(0, 1, 3 * GIB, dirty_rate_bps=8 * MIB, bandwidth=100 * MIB))
        engine.observe(sample(500, 2, 1 * GIB))
        assert engine.summary() == {
            "state": "precopy", "passes": 1, "max_remaining": 3 * GIB, "min_remaining": GIB,
            "last_dirty_rate_bps": 8 * MIB, "last_bandwidth_bps": 100 * MIB, "max_downtime_ms": 100,
            "stalled_passes": 0, "auto_converge_throttle": 0, "actions": 1,
        }

    def test_advice_without_samples(self):
        engine = ConvergenceEngine()
        assert engine.advice() == "No job statistics were observed, so there is nothing to advise."
        assert engine.required_bandwidth_bps() is None
        engine.observe(sample(0, 1, GIB))
        assert engine.required_bandwidth_bps() is None
        assert "needs about" not in engine.advice()

    def test_advice_in_the_first_pass_has_no_dirty_set_to_judge(self):
        engine = ConvergenceEngine(Policy(completion_timeout_ms=1000))
        engine.observe(sample(0, 1, 8 * GIB, dirty_rate_bps=9 * MIB, bandwidth=100 * MIB))
        engine.observe(sample(1000, 1, 7 * GIB, dirty_rate_bps=9 * MIB, bandwidth=100 * MIB))
        advice = engine.advice()
        assert advice.startswith("The migration was aborted after 0 passes. The guest dirties memory at 9.0 MiB/s "
                                 "while the migration moves 100.0 MiB/s; 7168.0 MiB remained in the first pass.")
        assert "needs about 10.0 MiB/s: the dirty rate / 0.90 = 10.0 MiB/s" in advice
        assert "max_downtime." in advice

    def test_advice_with_unreported_rates(self):
        engine = ConvergenceEngine(Policy(max_downtime_ms=500))
        engine.observe(sample(0, 2, 100 * MIB))
        advice = engine.advice()
        assert "an unreported rate" in advice and "dirty rate /" not in advice
        assert "needs about 200.0 MiB/s" in advice

    def test_advice_suggests_a_downtime_when_bandwidth_beats_the_dirty_rate(self):
        engine = ConvergenceEngine(Policy(max_downtime_ms=500))
        engine.observe(sample(0, 2, 300 * MIB, dirty_rate_bps=10 * MIB, bandwidth=100 * MIB))
        assert "accept a longer max_downtime (about 3000 ms at the current bandwidth)" in engine.advice()


# -- properties ------------------------------------------------------------------

policies = st.builds(
    Policy,
    max_downtime_ms=st.integers(1, 3000),
    downtime_steps=st.integers(1, 10),
    allow_postcopy=st.booleans(),
    postcopy_after_stalled_passes=st.integers(1, 5),
    postcopy_start=st.sampled_from(["after_first_pass", "when_outpaced", "when_stalled"]),
    stall_window=st.integers(1, 5),
    min_progress_ratio=st.floats(0.05, 1.0),
    completion_timeout_ms=st.one_of(st.none(), st.integers(1, 60_000)),
    stalled_abort_passes=st.integers(1, 12),
)
sample_steps = st.lists(
    st.tuples(
        st.integers(-200, 3000),  # clock step, sometimes backwards
        st.integers(-1, 3),  # iteration step, sometimes backwards
        st.one_of(st.none(), st.integers(0, 8 * GIB)),  # remaining
        st.one_of(st.none(), st.integers(0, 1 << 18)),  # dirty pages/s
        st.integers(0, 99),  # throttle
        st.sampled_from([None, 1, 2, 2, 2, 3]),  # job type
    ),
    max_size=120,
)


def run_stream(engine, steps):
    emitted = list(engine.initial_actions(0))
    t_ms, iteration = 0, 0
    for clock_step, iteration_step, remaining, dirty_pages, throttle, job_type in steps:
        t_ms += clock_step
        iteration = max(0, iteration + iteration_step)
        stats = {"type": job_type, "memory_iteration": iteration, "data_remaining": remaining,
                 "memory_dirty_rate": dirty_pages, "auto_converge_throttle": throttle, "memory_bps": 100 * MIB}
        emitted += engine.observe(JobSample.from_job_stats(stats, t_ms))
    return emitted


@settings(max_examples=300, deadline=None)
@given(policy=policies, postcopy_enabled=st.booleans(), auto_converge=st.booleans(), steps=sample_steps)
def test_engine_invariants(policy, postcopy_enabled, auto_converge, steps):
    engine = ConvergenceEngine(policy, postcopy_enabled=postcopy_enabled, auto_converge_enabled=auto_converge)
    emitted = run_stream(engine, steps)
    assert emitted == engine.actions
    assert all(isinstance(action, Action) and action.reason for action in emitted)

    downtimes = [action.value for action in emitted if action.kind == ActionKind.SET_MAX_DOWNTIME]
    assert all(value <= policy.max_downtime_ms for value in downtimes)
    assert downtimes == sorted(downtimes) and len(set(downtimes)) == len(downtimes)

    terminal = [index for index, action in enumerate(emitted)
                if action.kind in (ActionKind.ABORT, ActionKind.START_POSTCOPY)]
    assert len(terminal) <= 1
    assert not terminal or terminal[0] == len(emitted) - 1
    if ActionKind.START_POSTCOPY in kinds(emitted):
        assert policy.allow_postcopy and postcopy_enabled and engine.state == EngineState.POSTCOPY
    if ActionKind.ABORT in kinds(emitted):
        assert engine.state == EngineState.ABORTING

    times = [action.t_ms for action in emitted]
    assert times == sorted(times)

    throttles = [action.value for action in emitted if action.kind == ActionKind.AUTO_CONVERGE_ENGAGED]
    assert throttles == sorted(throttles) and len(set(throttles)) == len(throttles)

    assert isinstance(engine.advice(), str)
    assert engine.summary()["actions"] == len(emitted)


@settings(max_examples=100, deadline=None)
@given(policy=policies, steps=sample_steps, extra=sample_steps)
def test_nothing_is_emitted_once_the_engine_has_given_up(policy, steps, extra):
    engine = ConvergenceEngine(policy, postcopy_enabled=True, auto_converge_enabled=True)
    run_stream(engine, steps)
    if engine.state != EngineState.PRECOPY:
        before = list(engine.actions)
        run_stream(engine, extra)
        assert engine.actions == before
