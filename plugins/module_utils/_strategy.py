# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_migrate's ``strategy`` option: from a prediction to the migration that starts (pure; private
module_utils).

``strategy: auto`` (the default) predicts every strategy (``_prediction.predict``) and starts the
first one the operator allows that meets the limits (``choose_strategy``), or refuses before
anything moves.  ``precopy``, ``auto_converge`` and ``postcopy`` run that strategy alone (refused the
same way when the prediction says it cannot meet the limits); ``adaptive`` is the policy as it was
before predictions: no measurement, every allowed lever, decided pass by pass.

The strategy becomes virt_migrate options (:func:`options_for`): the flags (AUTO_CONVERGE,
POSTCOPY) and the engine's policy (``downtime_steps``, ``postcopy_start``).  ``auto`` keeps the
levers the operator allowed beyond its choice as safety nets (QEMU's throttle only acts on a guest
that does not converge; the POSTCOPY flag lets the engine switch when the job departs from the
prediction, ``_course``), but the engine no longer switches to post-copy after the first pass of a
guest that pre-copy is predicted to move.

Only the timeout is given a margin (:data:`TIMEOUT_MARGIN`): a strategy that finishes within
max_downtime but is predicted past the timeout, by less than the margin, is started, not refused.
Predicted durations can be that far off: a fresh guest's zero pages are unknown until its first
migration (its QEMU's resident memory bounds them on KVM, but under TCG it includes QEMU's
code cache), and one second of page sampling on a small guest is noisy (a guest writing 2 MiB/s
read 0 and 6 MiB/s in two measurements a minute apart on the lab). The timeout still bounds the
job: starting costs at most the timeout, refusing loses a migration that would have made it. The
course check (``_course``) uses the same margin before aborting early.

The measuring and the history are in ``_strategy_run`` (libvirt); this file is unit-tested alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError, MigrationError
from ansible_collections.kvmops.migration.plugins.module_utils._migration_history import HistoryEntry
from ansible_collections.kvmops.migration.plugins.module_utils._prediction import Decision, choose_strategy
from ansible_collections.kvmops.migration.plugins.module_utils._prediction_inputs import GuestLoad, Strategy

AUTO = 'auto'
ADAPTIVE = 'adaptive'
# The explicit choices of the option and the model's strategy each runs ('precopy' is the engine's
# stepped downtime: the pause stays shortest).
EXPLICIT = {'precopy': Strategy.PRECOPY_STEPS, 'auto_converge': Strategy.AUTO_CONVERGE,
            'postcopy': Strategy.POSTCOPY}
STRATEGY_CHOICES = (AUTO, 'precopy', 'auto_converge', 'postcopy', ADAPTIVE)
DIRTY_RATE_SECONDS_MAX = 10
# A writer's vCPU share below this is measuring noise (GuestLoad needs more than 0).
MIN_WRITER_SHARE = 0.01
# How many pass ends of each predicted strategy a result shows (first and last ones).
PASS_ENDS_SHOWN = 12
PRECOPY_KINDS = (Strategy.PRECOPY_STEPS, Strategy.PRECOPY)
# A strategy predicted to end within this many times the timeout is not refused for it (docstring).
TIMEOUT_MARGIN = 2.0


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------

def strategy_problems(params) -> list:
    """What is wrong with ``strategy``, ``dirty_rate_seconds`` and the options they contradict."""
    problems = []
    strategy = params.get('strategy') or AUTO
    seconds = params.get('dirty_rate_seconds')
    if seconds is not None and not 1 <= seconds <= DIRTY_RATE_SECONDS_MAX:
        problems.append('dirty_rate_seconds=%s must be between 1 and %d (QEMU samples whole seconds)'
                        % (seconds, DIRTY_RATE_SECONDS_MAX))
    if strategy not in EXPLICIT:
        return problems
    if (params.get('mode') or 'live') != 'live':
        problems.append('strategy=%s chooses how a live migration converges, but mode=%s copies no memory while the '
                        'guest runs: leave strategy out (auto)' % (strategy, params.get('mode')))
    if strategy == 'postcopy' and not params.get('allow_postcopy'):
        problems.append('strategy=postcopy needs allow_postcopy: true (until post-copy ends, a network or host '
                        'failure loses the guest: allow_postcopy is where that risk is accepted)')
    if strategy == 'auto_converge' and params.get('auto_converge') is False:
        problems.append('strategy=auto_converge contradicts auto_converge: false: drop one of them')
    if strategy != 'auto_converge':
        problems.extend('%s tunes auto-converge, which strategy=%s does not use: remove it' % (name, strategy)
                        for name in ('auto_converge_initial', 'auto_converge_increment') if params.get(name) is not None)
    if strategy != 'postcopy' and params.get('postcopy_bandwidth') is not None:
        problems.append('postcopy_bandwidth limits post-copy, which strategy=%s does not use: remove it' % strategy)
    return problems


def check_strategy_options(params):
    """Raise InvalidInputError naming every problem of :func:`strategy_problems` (before connecting)."""
    problems = strategy_problems(params)
    if problems:
        raise InvalidInputError('; '.join(problems), remedy='Fix the options; nothing was changed.')


def options_for(strategy, params, explicit=False) -> dict:
    """virt_migrate's options (``params``) changed to start ``strategy`` (a ``Strategy``; None:
    unchanged, the adaptive policy).  ``explicit``: the operator named it (no other lever)."""
    options = dict(params)
    if strategy is None:
        return options
    policy = dict(params.get('policy') or {})
    if strategy == Strategy.POSTCOPY:
        options['allow_postcopy'] = True
        if explicit:
            _without_auto_converge(options)
    else:
        if strategy == Strategy.AUTO_CONVERGE:
            options['auto_converge'] = True
        elif explicit:
            _without_auto_converge(options)
        if explicit:
            options.update(allow_postcopy=False, postcopy_bandwidth=None)
        elif options.get('allow_postcopy'):
            # A safety net, not the plan: the engine switches on a stall, or when the job's own
            # figures say pre-copy will not make it (_course), not after the first pass.
            policy['postcopy_start'] = 'when_stalled'
        if strategy == Strategy.PRECOPY:
            policy['downtime_steps'] = 1  # max_downtime from the start
    options['policy'] = policy or params.get('policy')
    return options


def _without_auto_converge(options):
    options.update(auto_converge=False, auto_converge_initial=None, auto_converge_increment=None)


# ---------------------------------------------------------------------------
# Inputs and the decision
# ---------------------------------------------------------------------------

# A guest whose QEMU shows little resident memory is still given some pages to send.
MAX_ZERO_SHARE_FROM_RSS = 0.95


def guest_load(memory_bytes, measurement=None, history=(), resident_bytes=None) -> GuestLoad:
    """The model's view of the guest from a ``_dirtyrate.DirtyRateResult`` (None or not measured:
    history alone; ``paused``: it dirties nothing; probed: its working set too) and its
    ``HistoryEntry`` list.  The measured vCPU
    busy share bounds the share the writer needs (a guest busy 5 % of the time cannot need more to
    dirty what it dirties).
    ``resident_bytes``: the QEMU process's resident memory (libvirt's ``rss``). Guest memory the guest
    never touched is not resident, and QEMU sends it as zero pages at almost no cost: the first pass
    moves at most what is resident.  That is only a floor of the zero pages: the resident memory also
    holds QEMU's own (under TCG its code cache too) and pages the guest zeroed, so
    the share the last migration counted (``HistoryEntry.zero_page_share``, QEMU's zero pages) wins
    when it is higher.  That count ages: the pages the guest touched since were zero then and may
    not be now, and every one of them made the resident memory grow, so the counted share is lowered
    by the growth since the entry's ``resident_bytes`` (a migration soon after boot counts most of
    the memory zero; the same guest after filling its memory does not have those zero pages)."""
    rate = share = working_set = None
    if measurement is not None and measurement.status == 'measured':
        rate, share, working_set = measurement.dirty_rate_bps, measurement.vcpu_busy_share, measurement.working_set_bytes
    elif measurement is not None and measurement.status == 'paused':
        rate = 0.0  # nothing runs in a paused guest, and a live migration keeps it paused: known, not unknown
    writer = 1.0 if share is None else min(1.0, max(MIN_WRITER_SHARE, share))
    zero_share = None
    if resident_bytes and memory_bytes:
        floor = min(MAX_ZERO_SHARE_FROM_RSS, max(0.0, 1.0 - float(resident_bytes) / memory_bytes))
        zero_share = round(max(floor, counted_zero_share(history, resident_bytes, memory_bytes)), 3)
    return GuestLoad(memory_bytes=int(memory_bytes), dirty_rate_bps=rate, writer_cpu_share=writer,
                     history=tuple(history), zero_page_share=zero_share, measured_working_set_bytes=working_set)


def counted_zero_share(history, resident_bytes, memory_bytes):
    """The zero share the newest migration that counted one found, less what the guest touched since
    (the growth of its QEMU's resident memory after that migration); 0 without such a migration."""
    entry = next((e for e in history if e.zero_page_share is not None), None)
    if entry is None:
        return 0.0
    grown = max(0, resident_bytes - entry.resident_bytes) if entry.resident_bytes else 0
    return max(0.0, entry.zero_page_share - float(grown) / memory_bytes)


def decide(requested, prediction, limits) -> Decision | None:
    """The decision for ``strategy=requested`` (None for adaptive: nothing is decided before)."""
    if requested == ADAPTIVE:
        return None
    auto = choose_strategy(prediction, limits)
    if auto.refused:
        auto = _near_the_timeout(prediction, limits, auto)
    if requested == AUTO or not auto.known:
        return auto
    strategy = EXPLICIT[requested]
    outcome = prediction.outcome(strategy)
    if outcome.meets_limits or _within_margin(outcome, limits):
        return Decision(strategy=strategy, known=True, reason=prediction.sentence, outcome=outcome)
    if auto.strategy is not None:
        remedies = ('strategy: auto would run %s (about %.0f s, downtime about %.0f ms)' % (
            auto.strategy, auto.outcome.total_s, auto.outcome.downtime_ms),)
    else:
        remedies = auto.remedies
    return Decision(strategy=None, known=True, remedies=remedies, outcome=outcome,
                    reason='strategy=%s does not meet the limits (%s). %s' % (requested, _missed(outcome),
                                                                              prediction.sentence))


def _within_margin(outcome, limits):
    """Finishes within max_downtime and within TIMEOUT_MARGIN x the timeout."""
    return (outcome.finishes and outcome.downtime_ms <= limits.max_downtime_ms
            and (limits.timeout_s is None or outcome.total_s <= TIMEOUT_MARGIN * limits.timeout_s))


def _near_the_timeout(prediction, limits, refused):
    """The first allowed strategy that misses only the timeout, and by less than the margin
    (module docstring); else the refusal as it was."""
    for strategy in Strategy.CHOICE_ORDER:
        outcome = prediction.outcome(strategy)
        if limits.allows(strategy) and _within_margin(outcome, limits):
            reason = ('%s is predicted to end after about %.0f s, past timeout=%s s but within the prediction\'s '
                      'margin: started, the timeout still bounds it. %s'
                      % (strategy, outcome.total_s, limits.timeout_s, prediction.sentence))
            return Decision(strategy=strategy, known=True, outcome=outcome, reason=reason)
    return refused


def _missed(outcome):
    if not outcome.finishes:
        return 'it does not finish: %s after %d passes' % (outcome.stop.replace('_', ' '), outcome.passes)
    return 'about %.0f s, downtime about %.0f ms' % (outcome.total_s, outcome.downtime_ms)


@dataclass(frozen=True)
class StrategyChoice:
    """What ``strategy`` decided for one migration.

    strategy
        What the job starts with: a ``Strategy``, or ``adaptive`` (asked for, no prediction
        possible, or ``auto`` refused and started anyway with try_anyway); None when refused.
    options
        virt_migrate's options that start it (:func:`options_for`).
    course_strategy
        What the course check (``_course``) holds the running job to; None: no check (adaptive,
        post-copy, which the engine's own rule switches, or no prediction).
    measurement
        The dirty-rate report (a dict), None when nothing was measured.
    """

    requested: str
    strategy: str | None
    options: dict
    prediction: object = None
    decision: Decision | None = None
    load: GuestLoad | None = None
    limits: object = None
    measurement: dict | None = None
    note: str | None = None
    course_strategy: str | None = None

    @property
    def refused(self) -> bool:
        return self.decision is not None and self.decision.refused

    def report(self) -> dict:
        """The result keys: ``strategy``, ``prediction``, ``decision``, ``dirty_rate``."""
        report = {'strategy': {'requested': self.requested, 'started': self.strategy, 'note': self.note}}
        if self.prediction is not None:
            report['prediction'] = prediction_view(self.prediction)
        if self.decision is not None:
            report['decision'] = rounded(self.decision.as_dict())
        if self.measurement is not None:
            report['dirty_rate'] = self.measurement
        return report


def choice_for(requested, params, prediction=None, limits=None, load=None, measurement=None, note=None):
    """The StrategyChoice of ``strategy=requested`` with virt_migrate's options ``params``.

    ``prediction`` None: nothing could be predicted (``note`` says why).  A refusal starts
    nothing (the caller raises it), unless ``params['try_anyway']``: then an explicit strategy
    runs as named, ``auto`` as the adaptive policy, and no course check aborts it early (the
    operator insisted: the timeout bounds it).  Otherwise an explicit strategy runs whatever the
    prediction, ``auto`` its decision, or the adaptive policy without one."""
    known = prediction is not None and prediction.verdict != 'unknown'
    decision = decide(requested, prediction, limits) if prediction is not None else None
    refused = decision is not None and decision.refused
    explicit = requested in EXPLICIT
    if refused and not params.get('try_anyway'):
        strategy = None
    elif explicit:
        strategy = EXPLICIT[requested]
    elif decision is not None and decision.strategy is not None:
        strategy = decision.strategy
    else:
        strategy = ADAPTIVE
    if note is None and refused and strategy is not None:
        note = ('try_anyway: started as %s, although no allowed strategy is predicted to meet the limits'
                % (requested if explicit else 'the adaptive policy'))
    elif note is None and requested == AUTO and decision is not None and not decision.known:
        note = 'no prediction (%s): the adaptive policy decides pass by pass' % decision.reason
    options = options_for(None if strategy in (None, ADAPTIVE) else strategy, params, explicit)
    course = None
    if known and not refused and strategy in PRECOPY_KINDS + (Strategy.AUTO_CONVERGE,):
        # With AUTO_CONVERGE set, QEMU throttles a guest that does not converge whatever was
        # chosen: the job is then held to what auto-converge would do.
        course = Strategy.AUTO_CONVERGE if options.get('auto_converge') else strategy
    return StrategyChoice(requested=requested, strategy=strategy, options=options, prediction=prediction,
                          decision=decision, load=load, limits=limits, measurement=measurement, note=note,
                          course_strategy=course)


def refusal(guest, dst_host, choice) -> MigrationError:
    """The error that stops a migration before anything moves, with what would work."""
    decision = choice.decision
    remedy = 'What would work: %s. try_anyway: true starts it anyway; the policy then aborts it at the limits, or ' \
             'switches to post-copy when that is allowed.' % '; '.join(decision.remedies)
    why = '' if choice.requested in EXPLICIT else 'no allowed strategy meets the limits, so '
    return MigrationError('Not migrating %s to %s: %snothing was started. %s' % (guest, dst_host, why, decision.reason),
                          remedy=remedy, details=choice.report())


# ---------------------------------------------------------------------------
# Views and history
# ---------------------------------------------------------------------------

def rounded(value, digits=3):
    """``value`` with every float rounded (results are read by people and compared by tests)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return dict((key, rounded(item, digits)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [rounded(item, digits) for item in value]
    return value


def prediction_view(prediction) -> dict:
    """``Prediction.as_dict()`` for a result: floats rounded, each strategy's pass ends limited to
    the first and last PASS_ENDS_SHOWN / 2 (a strategy that never converges plays many)."""
    view = prediction.as_dict()
    half = PASS_ENDS_SHOWN // 2
    for outcome in view['outcomes'].values():
        ends = list(outcome['pass_ends'])
        outcome['pass_ends_total'] = len(ends)
        if len(ends) > PASS_ENDS_SHOWN:
            outcome['pass_ends'] = ends[:half] + ends[-half:]
    return rounded(view)


def strategy_ran(mode, chosen, postcopy_started, throttle_percent, guest_paused=False):
    """What a finished job really ran (the history's ``strategy``), whatever was chosen: ``paused`` for
    a guest that was paused (by its user) or left paused (mode paused), so it arrived paused."""
    if mode == 'paused' or guest_paused:
        return Strategy.PAUSED
    if postcopy_started:
        return Strategy.POSTCOPY
    if throttle_percent:
        return Strategy.AUTO_CONVERGE
    return chosen if chosen in PRECOPY_KINDS else Strategy.PRECOPY_STEPS


def history_entry(stats, samples, ran, completed, cap_bps=None, completed_job=None, now=None,
                  resident_bytes=None) -> HistoryEntry:
    """A HistoryEntry from a job's figures: ``stats`` (``_migration.stats_report``), the compact
    ``samples``, the strategy that ran, whether the guest moved, the pre-copy cap (bytes/s), the
    completed job's raw statistics (for the zero pages) and the resident memory of the QEMU the
    guest runs in after the job."""
    dirty_sets = [s['remaining'] for s in samples if (s.get('pass') or 0) >= 2 and s.get('remaining')]
    throttles = [s.get('throttle') or 0 for s in samples]
    job = completed_job or {}
    zero_share = None
    if job.get('memory_constant') is not None and job.get('memory_total'):
        page = job.get('memory_page_size') or 4096
        zero_share = min(1.0, job['memory_constant'] * page / float(job['memory_total']))
    elapsed_ms = stats.get('total_time_ms')
    return HistoryEntry(at=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() if now is None else now)),
                        strategy=ran, completed=bool(completed), dirty_rate_bps=_number(stats.get('dirty_rate_bps')),
                        throughput_bps=_number(stats.get('throughput_bps')), passes=stats.get('passes') or None,
                        downtime_ms=_number(stats.get('downtime_ms')),
                        duration_s=None if not elapsed_ms else elapsed_ms / 1000.0,
                        dirty_set_bytes=max(dirty_sets) if dirty_sets else None, zero_page_share=zero_share,
                        throttle_percent=max(throttles) if throttles else None,
                        bandwidth_cap_bps=float(cap_bps) if cap_bps else None,
                        resident_bytes=int(resident_bytes) if resident_bytes else None)


def _number(value):
    return None if value is None else float(value)
