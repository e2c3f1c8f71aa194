# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The course check: a job that departs from its start prediction is switched to post-copy or
aborted at a pass end, through the convergence engine; one that keeps to it is left alone."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._convergence import ConvergenceEngine
from ansible_collections.kvmops.migration.plugins.module_utils._convergence_types import (
    ActionKind,
    EngineState,
    JobSample,
    Policy,
)
from ansible_collections.kvmops.migration.plugins.module_utils._course import (
    ABORT,
    START_POSTCOPY,
    CourseCheck,
    Correction,
)
from ansible_collections.kvmops.migration.plugins.module_utils._prediction_inputs import GuestLoad, Limits, Strategy

MIB = 1 << 20
# Predicted idle (2 MiB/s sampled in a lull), but the job will show 20 MiB/s over 10 MiB/s.
LOAD = GuestLoad(memory_bytes=256 * MIB, dirty_rate_bps=2 * MIB, working_set_bytes=96 * MIB)


def sample(iteration, remaining, elapsed_s, dirty_mib_s=20, bandwidth_mib_s=10, throttle=0):
    stats = {'type': 2, 'memory_iteration': iteration, 'data_remaining': int(remaining * MIB),
             'memory_bps': bandwidth_mib_s * MIB, 'memory_dirty_rate': dirty_mib_s * MIB // 4096,
             'memory_page_size': 4096, 'time_elapsed': int(elapsed_s * 1000), 'auto_converge_throttle': throttle}
    return JobSample.from_job_stats(stats, int(elapsed_s * 1000))


def engine_with(check, postcopy=True, auto_converge=False):
    engine = ConvergenceEngine(Policy(allow_postcopy=postcopy, postcopy_start='when_stalled'),
                               postcopy_enabled=postcopy, auto_converge_enabled=auto_converge, course=check)
    engine.initial_actions(0)
    return engine


def run_passes(engine, passes):
    """Feed (iteration, remaining MiB, elapsed s, extra sample fields) pass starts; return the actions."""
    actions = []
    for iteration, remaining, elapsed, extra in passes:
        actions += engine.observe(sample(iteration, remaining, elapsed, **extra))
    return actions


# The lab's busy guest at 10 MiB/s: 25.6 s for pass 1, then 96 MiB every 9.6 s, for ever.
BUSY_PASSES = [(1, 256, 0.5, {}), (2, 96, 25.6, {}), (3, 96, 35.2, {}), (4, 96, 44.8, {}), (5, 96, 54.4, {})]


class TestThroughTheEngine:
    def test_switches_to_postcopy_when_precopy_will_not_make_it(self):
        check = CourseCheck(LOAD, Limits(allow_postcopy=True, timeout_s=135), Strategy.PRECOPY_STEPS)
        engine = engine_with(check)
        actions = run_passes(engine, BUSY_PASSES[:3])
        switch = [a for a in actions if a.kind == ActionKind.START_POSTCOPY]
        assert len(switch) == 1 and engine.state == EngineState.POSTCOPY
        assert switch[0].reason.startswith('course check after pass 2: the job shows 20.0 MiB/s dirtied against 10.0 '
                                           'MiB/s moved, so precopy_steps does not finish (no progress)')
        assert [r['action'] for r in check.records] == ['start_postcopy']  # pass 1 is too early to judge
        assert run_passes(engine, BUSY_PASSES[3:]) == []  # nothing after the switch

    def test_aborts_with_what_would_work_after_two_pass_ends_in_a_row(self):
        check = CourseCheck(LOAD, Limits(timeout_s=135), Strategy.PRECOPY_STEPS)
        engine = engine_with(check, postcopy=False)
        actions = run_passes(engine, BUSY_PASSES)
        aborts = [a for a in actions if a.kind == ActionKind.ABORT]
        assert len(aborts) == 1 and engine.state == EngineState.ABORTING
        assert aborts[0].iteration == 4 and '(2 pass ends in a row)' in aborts[0].reason
        advice = engine.advice()
        assert "Predicted from the job's own figures; what would work: bandwidth: at least" in advice
        assert 'allow_postcopy: true' in advice
        assert [r['action'] for r in check.records] == [None, 'abort']

    def test_a_job_that_keeps_to_its_prediction_is_left_alone(self):
        check = CourseCheck(LOAD, Limits(timeout_s=135), Strategy.PRECOPY_STEPS)
        engine = engine_with(check, postcopy=False)
        calm = [(1, 256, 0.5, {'dirty_mib_s': 2}), (2, 52, 25.6, {'dirty_mib_s': 2}),
                (3, 11, 30.8, {'dirty_mib_s': 2})]
        actions = run_passes(engine, calm)
        assert not [a for a in actions if a.kind in (ActionKind.ABORT, ActionKind.START_POSTCOPY)]
        assert [r['meets_limits'] for r in check.records] == [True]

    def test_an_engine_without_postcopy_ignores_a_switch(self):
        class Switcher:
            def at_pass_end(self, sample, engine):
                return Correction(START_POSTCOPY, 'told to')
        engine = engine_with(Switcher(), postcopy=False)
        actions = run_passes(engine, BUSY_PASSES[:3])
        assert ActionKind.START_POSTCOPY not in [a.kind for a in actions] and engine.state == EngineState.PRECOPY


class TestTheCheck:
    def test_only_precopy_strategies_are_held(self):
        with pytest.raises(ValueError, match='pre-copy strategies'):
            CourseCheck(LOAD, Limits(), Strategy.POSTCOPY)

    def test_a_throttle_that_does_not_bite_stops_counting(self):
        # Auto-converge, predicted with a CPU-bound writer (the throttle bites at once); the job
        # shows the rate unchanged under 50 % and 75 %: the writer needs less than 25 % of a vCPU.
        load = GuestLoad(memory_bytes=256 * MIB, dirty_rate_bps=20 * MIB, working_set_bytes=96 * MIB)
        check = CourseCheck(load, Limits(timeout_s=600), Strategy.AUTO_CONVERGE, confirm_passes=1)
        engine = engine_with(check, postcopy=False, auto_converge=True)
        run_passes(engine, [(1, 256, 0.5, {}), (2, 96, 25.6, {}), (3, 96, 35.2, {}), (4, 96, 44.8, {'throttle': 50})])
        assert [r['writer_cpu_share'] for r in check.records] == [1.0, 0.5]
        assert check.records[0]['meets_limits'] is True  # still counted on the throttle
        run_passes(engine, [(5, 96, 54.4, {'throttle': 75}), (6, 96, 64.0, {'throttle': 99})])
        assert [r['writer_cpu_share'] for r in check.records][2:] == [0.25, pytest.approx(0.01)]
        assert engine.state == EngineState.ABORTING and check.correction.kind == ABORT

    def test_a_throttle_that_bites_keeps_the_guests_own_rate(self):
        load = GuestLoad(memory_bytes=256 * MIB, dirty_rate_bps=20 * MIB, working_set_bytes=96 * MIB)
        check = CourseCheck(load, Limits(timeout_s=600), Strategy.AUTO_CONVERGE)
        engine = engine_with(check, postcopy=False, auto_converge=True)
        run_passes(engine, [(1, 256, 0.5, {}), (2, 96, 25.6, {}), (3, 48, 35.2, {'throttle': 50, 'dirty_mib_s': 10})])
        assert check.records[-1]['dirty_rate_bps'] == 20 * MIB and check.records[-1]['writer_cpu_share'] == 1.0

    def test_slightly_late_is_no_reason_to_abort(self):
        # 1 MiB/s over 1 MiB/s... a guest that finishes a little after the timeout: the engine's
        # timeout decides, not a prediction that may be 20 % off.
        load = GuestLoad(memory_bytes=64 * MIB, dirty_rate_bps=0.1 * MIB)
        check = CourseCheck(load, Limits(timeout_s=60), Strategy.PRECOPY_STEPS)
        engine = engine_with(check, postcopy=False)
        run_passes(engine, [(1, 64, 0.5, {'dirty_mib_s': 0.1, 'bandwidth_mib_s': 1}),
                            (2, 6.4, 64.0, {'dirty_mib_s': 0.1, 'bandwidth_mib_s': 1}),
                            (3, 0.7, 70.4, {'dirty_mib_s': 0.1, 'bandwidth_mib_s': 1})])
        assert check.records and check.records[0]['meets_limits'] is False
        assert engine.state == EngineState.PRECOPY and check.correction is None

    def test_without_figures_there_is_nothing_to_check(self):
        check = CourseCheck(LOAD, Limits(), Strategy.PRECOPY_STEPS, bandwidth_bps=None)
        engine = engine_with(check)
        stats = {'type': 2, 'memory_iteration': 3, 'data_remaining': 96 * MIB}
        assert check.at_pass_end(JobSample.from_job_stats(stats, 1000), engine) is None
        assert check.records == []
