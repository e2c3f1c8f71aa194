# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_migrate's strategy option: its checks, the decision, the options each strategy starts
with, the views and the history entry (pure)."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError, MigrationError
from ansible_collections.kvmops.migration.plugins.module_utils._dirtyrate import DirtyRateResult
from ansible_collections.kvmops.migration.plugins.module_utils._migration_flags import build_migration
from ansible_collections.kvmops.migration.plugins.module_utils._migration_history import HistoryEntry
from ansible_collections.kvmops.migration.plugins.module_utils._migration_spec import option_defaults
from ansible_collections.kvmops.migration.plugins.module_utils._prediction import predict
from ansible_collections.kvmops.migration.plugins.module_utils._prediction_inputs import (
    GuestLoad,
    MigrationPath,
    Strategy,
    limits_from_options,
)
from ansible_collections.kvmops.migration.plugins.module_utils._strategy import (
    ADAPTIVE,
    PASS_ENDS_SHOWN,
    TIMEOUT_MARGIN,
    check_strategy_options,
    choice_for,
    guest_load,
    history_entry,
    options_for,
    prediction_view,
    refusal,
    strategy_problems,
    strategy_ran,
)

MIB = 1 << 20
BUSY = GuestLoad(memory_bytes=256 * MIB, dirty_rate_bps=20 * MIB, working_set_bytes=96 * MIB, writer_cpu_share=0.05)
IDLE = GuestLoad(memory_bytes=256 * MIB, dirty_rate_bps=MIB // 4)


def params(**given):
    return dict(option_defaults(), name='web1', dest='host-b', **given)


def decided(load, path_bps=None, **given):
    """(StrategyChoice, limits) for ``load`` with virt_migrate's options ``given``."""
    options = params(**given)
    limits = limits_from_options(options, 135)
    prediction = predict(load, MigrationPath(bandwidth_bps=path_bps), limits)
    return choice_for(options['strategy'], options, prediction=prediction, limits=limits, load=load), limits


class TestOptions:
    @pytest.mark.parametrize('given,words', [
        ({'strategy': 'postcopy'}, 'strategy=postcopy needs allow_postcopy: true'),
        ({'strategy': 'auto_converge', 'auto_converge': False}, 'contradicts auto_converge: false'),
        ({'strategy': 'precopy', 'mode': 'cold'}, 'mode=cold copies no memory while the guest runs'),
        ({'strategy': 'precopy', 'auto_converge_initial': 30}, 'auto_converge_initial tunes auto-converge'),
        ({'strategy': 'auto_converge', 'postcopy_bandwidth': 5, 'allow_postcopy': True},
         'postcopy_bandwidth limits post-copy, which strategy=auto_converge does not use'),
        ({'dirty_rate_seconds': 0}, 'dirty_rate_seconds=0 must be between 1 and 10'),
        ({'dirty_rate_seconds': 11}, 'dirty_rate_seconds=11'),
    ])
    def test_contradictions_are_refused_with_the_fix(self, given, words):
        assert any(words in problem for problem in strategy_problems(params(**given)))
        with pytest.raises(InvalidInputError) as err:
            check_strategy_options(params(**given))
        assert words in err.value.msg and 'nothing was changed' in err.value.remedy

    @pytest.mark.parametrize('given', [
        {}, {'strategy': 'adaptive', 'mode': 'cold'}, {'mode': 'paused'},
        {'strategy': 'postcopy', 'allow_postcopy': True, 'postcopy_bandwidth': 5},
        {'strategy': 'auto_converge', 'auto_converge_initial': 30}, {'dirty_rate_seconds': 10},
    ])
    def test_consistent_options_pass(self, given):
        assert strategy_problems(params(**given)) == []
        check_strategy_options(params(**given))


def flags_of(options):
    spec = build_migration(dict(options, domain_active=True, domain_persistent=True))
    return set(spec.flag_names)


class TestOptionsEachStrategyStartsWith:
    def test_none_leaves_the_options_as_given(self):
        given = params(allow_postcopy=True)
        assert options_for(None, given) == given

    def test_auto_precopy_keeps_the_levers_as_safety_nets_but_no_early_switch(self):
        options = options_for(Strategy.PRECOPY_STEPS, params(allow_postcopy=True))
        assert {'AUTO_CONVERGE', 'POSTCOPY'} <= flags_of(options)
        assert options['policy'] == {'postcopy_start': 'when_stalled'}

    def test_auto_precopy_without_postcopy_leaves_the_policy_alone(self):
        options = options_for(Strategy.PRECOPY_STEPS, params())
        assert options['policy'] is None and 'POSTCOPY' not in flags_of(options)

    def test_fixed_downtime_precopy_is_one_downtime_step(self):
        given = params(allow_postcopy=True, policy={'downtime_steps': 5, 'stall_window': 4})
        options = options_for(Strategy.PRECOPY, given)
        assert options['policy'] == {'downtime_steps': 1, 'stall_window': 4, 'postcopy_start': 'when_stalled'}
        assert given['policy'] == {'downtime_steps': 5, 'stall_window': 4}  # the caller's dict is not changed

    def test_explicit_precopy_uses_no_other_lever(self):
        options = options_for(Strategy.PRECOPY_STEPS, params(allow_postcopy=True, postcopy_bandwidth=4), explicit=True)
        assert not {'AUTO_CONVERGE', 'POSTCOPY'} & flags_of(options)
        assert options['postcopy_bandwidth'] is None

    def test_auto_converge_sets_the_throttle(self):
        options = options_for(Strategy.AUTO_CONVERGE, params(auto_converge=False))
        assert 'AUTO_CONVERGE' in flags_of(options)

    def test_postcopy_keeps_the_operators_switch_rule(self):
        given = params(allow_postcopy=True, policy={'postcopy_start': 'when_outpaced'})
        options = options_for(Strategy.POSTCOPY, given)
        assert options['policy'] == {'postcopy_start': 'when_outpaced'} and 'POSTCOPY' in flags_of(options)
        assert 'AUTO_CONVERGE' in flags_of(options)
        explicit = options_for(Strategy.POSTCOPY, dict(given, auto_converge_initial=30), explicit=True)
        assert 'AUTO_CONVERGE' not in flags_of(explicit) and explicit['auto_converge_initial'] is None


class TestGuestLoad:
    def test_measured_rate_and_busy_share(self):
        result = DirtyRateResult('g', 'measured', dirty_rate_bps=30.0 * MIB, vcpu_busy_share=0.2)
        load = guest_load(256 * MIB, result, (HistoryEntry(at='x', strategy='precopy'),))
        assert (load.dirty_rate_bps, load.writer_cpu_share, len(load.history)) == (30 * MIB, 0.2, 1)

    @pytest.mark.parametrize('result', [None, DirtyRateResult('g', 'timeout'), DirtyRateResult('g', 'error')])
    def test_nothing_measured_leaves_history_alone(self, result):
        load = guest_load(256 * MIB, result)
        assert (load.dirty_rate_bps, load.writer_cpu_share) == (None, 1.0)

    def test_a_paused_guest_dirties_nothing(self):
        # Known, not unknown: an evacuation's forecast has its time (no lower bound for it).
        load = guest_load(256 * MIB, DirtyRateResult('g', 'paused', message='paused'))
        assert (load.dirty_rate_bps, load.writer_cpu_share) == (0.0, 1.0)

    def test_counted_zero_pages_win_over_the_resident_memory_floor(self):
        # Under TCG QEMU's own memory (its code cache) sits in the RSS: 1 - 154/192 = 0.198 is only a
        # floor; the zero pages the last migration counted (0.6) are the figure, a lower count is not.
        def share(counted):
            history = (HistoryEntry(at='x', strategy='precopy', zero_page_share=counted),)
            return guest_load(192 * MIB, None, history, resident_bytes=154 * MIB).zero_page_share
        assert (share(0.6), share(0.1), share(None)) == (0.6, 0.198, 0.198)

    def test_a_counted_share_ages_by_what_the_guest_touched_since(self):
        # A migration soon after boot counted 0.6 of 192 MiB zero with 80 MiB resident after it. The
        # guest has since filled 38.4 MiB more (now 118.4 MiB resident): 0.6 - 38.4/192 = 0.4. Grown by
        # more than the whole count (40 -> 180 MiB), the resident floor (1 - 180/192 = 0.0625) is what is left.
        def share(resident_after, resident_now):
            history = (HistoryEntry(at='x', strategy='precopy', zero_page_share=0.6, resident_bytes=resident_after),)
            return guest_load(192 * MIB, None, history, resident_bytes=resident_now).zero_page_share
        assert share(80 * MIB, int(118.4 * MIB)) == 0.4
        assert share(40 * MIB, 180 * MIB) == 0.062
        # Resident memory that shrank (the guest freed pages, the balloon took some) does not raise the count.
        assert share(120 * MIB, 80 * MIB) == 0.6
        # An entry written before resident_bytes existed is taken as it is.
        assert share(None, 150 * MIB) == 0.6

    def test_an_idle_guest_share_stays_valid(self):
        load = guest_load(256 * MIB, DirtyRateResult('g', 'measured', dirty_rate_bps=0.0, vcpu_busy_share=0.0))
        assert load.writer_cpu_share == pytest.approx(0.01)


class TestDecision:
    def test_auto_moves_an_idle_guest_with_precopy(self):
        choice, dummy = decided(IDLE, bandwidth=10)
        assert (choice.strategy, choice.decision.known, choice.refused) == (Strategy.PRECOPY_STEPS, True, False)
        assert choice.course_strategy == Strategy.AUTO_CONVERGE  # AUTO_CONVERGE stays set: the check expects it
        assert choice.prediction.bandwidth_source == 'bandwidth cap'

    def test_auto_converge_first_where_the_throttle_is_predicted_to_bite(self):
        # 5 % of a vCPU: at the 99 % throttle the writer drops to 4 MiB/s, below the 10 MiB/s cap.
        choice, dummy = decided(BUSY, bandwidth=10, allow_postcopy=True)
        assert choice.strategy == Strategy.AUTO_CONVERGE and choice.course_strategy == Strategy.AUTO_CONVERGE
        assert choice.options['policy'] == {'postcopy_start': 'when_stalled'}

    def test_auto_picks_postcopy_for_a_guest_precopy_cannot_move(self):
        choice, dummy = decided(BUSY, bandwidth=10, allow_postcopy=True, auto_converge=False)
        assert choice.strategy == Strategy.POSTCOPY and choice.course_strategy is None
        assert choice.options['allow_postcopy'] is True

    def test_auto_refuses_with_what_would_work(self):
        choice, dummy = decided(BUSY, bandwidth=10, auto_converge=False)
        assert choice.refused and choice.strategy is None and choice.course_strategy is None
        assert choice.report()['strategy'] == {'requested': 'auto', 'started': None, 'note': None}
        error = refusal('web1', 'host-b', choice)
        assert isinstance(error, MigrationError)
        assert error.msg.startswith('Not migrating web1 to host-b: no allowed strategy meets the limits, so nothing '
                                    'was started.')
        assert 'allow_postcopy: true' in error.remedy and 'try_anyway: true' in error.remedy
        assert error.details['decision']['refused'] is True and 'prediction' in error.details

    def test_auto_refused_and_started_anyway_runs_adaptive(self):
        options = params(bandwidth=10, try_anyway=True, auto_converge=False)
        limits = limits_from_options(options, 135)
        choice = choice_for('auto', options, prediction=predict(BUSY, MigrationPath(None), limits), limits=limits)
        assert choice.strategy == ADAPTIVE and choice.options == options and choice.course_strategy is None
        assert choice.note == ('try_anyway: started as the adaptive policy, although no allowed strategy is predicted '
                               'to meet the limits')

    def test_an_explicit_strategy_refused_and_started_anyway_has_no_early_abort(self):
        choice, dummy = decided(BUSY, bandwidth=10, strategy='precopy', try_anyway=True)
        assert choice.refused and choice.strategy == Strategy.PRECOPY_STEPS and choice.course_strategy is None
        assert choice.note.startswith('try_anyway: started as precopy')

    def test_no_bandwidth_means_no_prediction_and_the_adaptive_policy(self):
        choice, dummy = decided(BUSY)
        assert choice.strategy == ADAPTIVE and choice.decision.known is False
        assert choice.note.startswith('no prediction (No prediction: the bandwidth is unknown')
        assert choice.course_strategy is None

    def test_explicit_strategy_that_meets_the_limits(self):
        choice, dummy = decided(IDLE, bandwidth=10, strategy='precopy')
        assert choice.strategy == Strategy.PRECOPY_STEPS and choice.course_strategy == Strategy.PRECOPY_STEPS
        assert choice.options['auto_converge'] is False

    def test_explicit_strategy_that_misses_names_what_auto_would_run(self):
        choice, dummy = decided(BUSY, bandwidth=10, strategy='precopy', allow_postcopy=True, auto_converge=False)
        assert choice.refused
        assert choice.decision.reason.startswith('strategy=precopy does not meet the limits (it does not finish: '
                                                 'no progress after')
        assert choice.decision.remedies[0].startswith('strategy: auto would run postcopy (about ')

    def test_explicit_strategy_without_prediction_still_runs_as_named(self):
        choice = choice_for('postcopy', params(allow_postcopy=True), note='storage copy')
        assert choice.strategy == Strategy.POSTCOPY and choice.decision is None and choice.note == 'storage copy'

    def test_adaptive_decides_nothing(self):
        choice = choice_for('adaptive', params())
        assert (choice.strategy, choice.decision, choice.prediction) == (ADAPTIVE, None, None)
        assert choice.report() == {'strategy': {'requested': 'adaptive', 'started': 'adaptive', 'note': None}}


class TestViews:
    def test_prediction_view_limits_long_pass_lists_and_rounds(self):
        # 9 MiB/s against 10 MiB/s: pre-copy shrinks the set by 10 % a pass, 38 passes.
        slow, dummy = decided(GuestLoad(memory_bytes=256 * MIB, dirty_rate_bps=9 * MIB), bandwidth=10)
        steps = prediction_view(slow.prediction)['outcomes']['precopy_steps']
        full = slow.prediction.outcome(Strategy.PRECOPY_STEPS).pass_ends
        assert steps['pass_ends_total'] == len(full) == 38 and len(steps['pass_ends']) == PASS_ENDS_SHOWN
        assert steps['pass_ends'][0] == [round(full[0][0], 3), round(full[0][1], 3)]
        assert steps['pass_ends'][-1] == [round(full[-1][0], 3), round(full[-1][1], 3)]
        choice, dummy = decided(BUSY, bandwidth=10, allow_postcopy=True, auto_converge=False)
        view = prediction_view(choice.prediction)
        assert view['outcomes']['postcopy']['total_s'] == round(choice.prediction.outcome('postcopy').total_s, 3)
        report = choice.report()
        assert report['strategy']['started'] == 'postcopy' and report['decision']['strategy'] == 'postcopy'


class TestHistory:
    STATS = {'total_time_ms': 18200, 'downtime_ms': 45, 'passes': 2, 'throughput_bps': 10 * MIB,
             'dirty_rate_bps': 20 * MIB}
    SAMPLES = [{'pass': 1, 'remaining': 200 * MIB, 'throttle': 0}, {'pass': 2, 'remaining': 90 * MIB, 'throttle': 0},
               {'pass': 2, 'remaining': 40 * MIB, 'throttle': 50}]

    def test_the_entry_holds_the_jobs_figures(self):
        entry = history_entry(self.STATS, self.SAMPLES, 'postcopy', True, cap_bps=10 * MIB,
                              completed_job={'memory_constant': 32768, 'memory_total': 256 * MIB}, now=0,
                              resident_bytes=120 * MIB)
        assert entry.as_dict() == {
            'at': '1970-01-01T00:00:00Z', 'strategy': 'postcopy', 'completed': True, 'dirty_rate_bps': 20.0 * MIB,
            'throughput_bps': 10.0 * MIB, 'passes': 2, 'downtime_ms': 45.0, 'duration_s': 18.2,
            'dirty_set_bytes': 90 * MIB, 'zero_page_share': 0.5, 'throttle_percent': 50,
            'bandwidth_cap_bps': 10.0 * MIB, 'resident_bytes': 120 * MIB}

    def test_a_failed_attempt_without_figures(self):
        entry = history_entry({}, [], 'precopy_steps', False)
        assert (entry.completed, entry.passes, entry.dirty_set_bytes, entry.bandwidth_cap_bps) == (False, None, None, None)

    @pytest.mark.parametrize('mode,chosen,postcopy,throttle,ran', [
        ('paused', 'adaptive', False, 0, 'paused'),
        ('live', 'precopy_steps', True, 0, 'postcopy'),
        ('live', 'precopy', False, 75, 'auto_converge'),
        ('live', 'precopy', False, 0, 'precopy'),
        ('live', 'adaptive', False, 0, 'precopy_steps'),
    ])
    def test_what_ran_follows_the_job_not_the_plan(self, mode, chosen, postcopy, throttle, ran):
        assert strategy_ran(mode, chosen, postcopy, throttle) == ran


class TestTimeoutMargin:
    """A strategy that misses only the timeout, by less than TIMEOUT_MARGIN, is started."""
    # 256 MiB at 10 MiB/s, 2 MiB/s dirtied over a 64 MiB set: about 32 s with the downtime steps.
    LOAD = GuestLoad(memory_bytes=256 * MIB, dirty_rate_bps=2 * MIB, working_set_bytes=64 * MIB)

    def choice(self, timeout, **given):
        options = params(bandwidth=10, timeout=timeout, **given)
        limits = limits_from_options(options)
        prediction = predict(self.LOAD, MigrationPath(None), limits)
        return choice_for(options['strategy'], options, prediction=prediction, limits=limits), prediction

    def test_a_little_past_the_timeout_is_started_saying_so(self):
        choice, prediction = self.choice(30)
        total = prediction.outcome(Strategy.PRECOPY_STEPS).total_s
        assert 30 < total <= 30 * TIMEOUT_MARGIN
        assert choice.strategy == Strategy.PRECOPY_STEPS and not choice.refused
        assert "past timeout=30 s but within the prediction's margin: started" in choice.decision.reason
        explicit, dummy = self.choice(30, strategy='precopy')
        assert explicit.strategy == Strategy.PRECOPY_STEPS and not explicit.refused

    def test_well_past_the_timeout_is_refused(self):
        choice, dummy = self.choice(12)  # about 32 s predicted: more than TIMEOUT_MARGIN x 12 s
        assert choice.refused and any(r.startswith('timeout: at least') for r in choice.decision.remedies)


def test_an_explicit_refusal_names_the_strategy():
    choice, dummy = decided(BUSY, bandwidth=10, strategy='precopy')
    error = refusal('web1', 'host-b', choice)
    assert error.msg.startswith('Not migrating web1 to host-b: nothing was started. strategy=precopy does not meet '
                                'the limits (it does not finish')
    assert error.remedy.startswith('What would work: strategy: auto would run auto_converge')


def test_a_paused_guests_migration_is_recorded_as_paused():
    """It arrived paused: the next migration's check (_compat_checks.paused_arrival_hazard) reads this."""
    assert strategy_ran('live', 'precopy', False, 0, guest_paused=True) == 'paused'
    assert strategy_ran('paused', 'precopy', False, 0) == 'paused'
    assert strategy_ran('live', 'precopy', False, 0) != 'paused'
