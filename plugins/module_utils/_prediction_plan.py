# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Forecast an evacuation from per-guest predictions (pure: no libvirt; private module_utils).

:func:`plan_evacuation` predicts every guest (``_prediction.predict``) at its share of the
source's uplink, picks each one's strategy (``choose_strategy``), orders the guests and plays the
schedule: at most ``max_concurrent`` migrations at once (and ``max_per_destination`` per
destination), each paying its fixed setup cost, then moving its bytes while the migrations in
their data phase share the uplink equally (none above the bandwidth cap).  The result is the
expected maintenance window, each guest's start and end, and which guests need auto-converge,
post-copy, or cannot move live at all - before anything moves.

Order: longest predicted migration first.  A long migration started last decides the window's
end alone; started first, the short ones fill the other slots around it (longest-first list
scheduling stays within 4/3 of the best possible order).  The long ones are the busy guests,
the ones that need auto-converge or post-copy, so they also run while the whole window is
ahead: a refusal or a failure (post-copy's risk) shows at the start of the night, with time
left to act, not at its end.

Each guest is predicted at ``uplink / min(max_concurrent, guests)``: the bandwidth it gets while
the slots are full.  A guest that later runs with fewer neighbours gets more and finishes
sooner, so strategies are chosen for the worst case and the window errs long, not short.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ansible_collections.kvmops.migration.plugins.module_utils._prediction import choose_strategy, predict
from ansible_collections.kvmops.migration.plugins.module_utils._prediction_inputs import (
    Limits,
    MigrationPath,
    Strategy,
)

GROUP_OF = {Strategy.PRECOPY_STEPS: 'precopy', Strategy.PRECOPY: 'precopy', Strategy.AUTO_CONVERGE: 'auto_converge',
            Strategy.POSTCOPY: 'postcopy'}
GROUPS = ('precopy', 'auto_converge', 'postcopy', 'refused', 'unknown')


@dataclass(frozen=True)
class GuestToMove:
    """One guest of the evacuation: its load (``_prediction_inputs.GuestLoad``), destination if
    known, and its own completion timeout when it differs from the plan's limits (virt_migrate's
    default timeout grows with the guest's memory)."""

    name: str
    load: object
    destination: str | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class PlannedMove:
    """One guest in the forecast.  ``group``: precopy, auto_converge, postcopy, refused (no allowed
    live strategy meets the limits: ``decision.remedies`` says what would), unknown (no
    prediction: its time is the memory once over the link, a lower bound).  ``start_s`` /
    ``end_s``: offsets from the evacuation's start (None: not scheduled, i.e. refused)."""

    name: str
    destination: str | None
    group: str
    strategy: str | None
    predicted_s: float | None
    start_s: float | None
    end_s: float | None
    prediction: object
    decision: object

    def as_dict(self) -> dict:
        return {'name': self.name, 'destination': self.destination, 'group': self.group, 'strategy': self.strategy,
                'predicted_s': _round(self.predicted_s), 'start_s': _round(self.start_s), 'end_s': _round(self.end_s),
                'prediction': self.prediction.as_dict(), 'decision': self.decision.as_dict()}


@dataclass(frozen=True)
class EvacuationForecast:
    """``window_s``: from the first start to the last end of the guests that move live
    (``window_is_lower_bound`` when some had no prediction).  ``window_with_paused_s``: the same
    with the refused guests moved paused (cold: plus shutdowns and boots)."""

    moves: tuple
    window_s: float
    window_is_lower_bound: bool
    window_with_paused_s: float
    bandwidth_share_bps: float | None
    sentence: str

    def group(self, name) -> list:
        return [move.name for move in self.moves if move.group == name]

    def as_dict(self) -> dict:
        return {'window_s': _round(self.window_s), 'window_is_lower_bound': self.window_is_lower_bound,
                'window_with_paused_s': _round(self.window_with_paused_s),
                'bandwidth_share_bps': self.bandwidth_share_bps, 'sentence': self.sentence,
                'order': [move.name for move in self.moves if move.start_s is not None],
                'groups': dict((name, self.group(name)) for name in GROUPS),
                'moves': [move.as_dict() for move in self.moves]}


def _round(value):
    return None if value is None else round(value, 1)


@dataclass(eq=False)  # jobs are compared by identity
class _Job:
    name: str
    destination: str | None
    setup_s: float
    data_bytes: float
    fixed_s: float | None  # duration when the uplink is unknown: no sharing to play
    started: float = 0.0
    setup_end: float = 0.0
    ended: float | None = None


def _start_waiting(waiting, running, now, max_concurrent, max_per_destination):
    """Start the first waiting jobs that a free slot and their destination's limit allow."""
    busy = {}
    for job in running:
        busy[job.destination] = busy.get(job.destination, 0) + 1
    for job in list(waiting):
        if len(running) >= max_concurrent:
            return
        if max_per_destination and job.destination is not None and busy.get(job.destination, 0) >= max_per_destination:
            continue
        waiting.remove(job)
        job.started, job.setup_end = now, now + job.setup_s
        busy[job.destination] = busy.get(job.destination, 0) + 1
        running.append(job)


def _schedule(jobs, max_concurrent, max_per_destination, uplink_bps, cap_bps):
    """Play the schedule (jobs in order); sets each job's ``started`` and ``ended``; returns the window.

    Event by event: each step runs to the next end of a setup, a data phase or a fixed-length
    job, and the jobs whose end it is (the same float, no tolerance) move on, so every step
    makes progress however large the clock grows.
    """
    waiting, running, now = list(jobs), [], 0.0
    while waiting or running:
        _start_waiting(waiting, running, now, max_concurrent, max_per_destination)
        moving = [job for job in running if job.fixed_s is None and job.setup_end <= now]
        # Equal shares of the uplink, none above the cap (every migration has the same cap).
        rate = min(uplink_bps / len(moving), cap_bps or uplink_bps) if moving else 0.0
        ends = []
        for job in running:
            if job.fixed_s is not None:
                ends.append(job.started + job.fixed_s)
            elif job.setup_end > now:
                ends.append(job.setup_end)
            else:
                ends.append(now + job.data_bytes / rate)
        step_to = max(now, min(ends))
        for job in moving:
            job.data_bytes = max(0.0, job.data_bytes - rate * (step_to - now))
        now = step_to
        for job, end in list(zip(running, ends)):
            if end <= now and (job.fixed_s is not None or job in moving):
                job.ended = now
                running.remove(job)
    return max([job.ended for job in jobs] or [0.0])


def _job(move, outcome, uplink, setup_s):
    data = outcome.bytes_sent if outcome is not None else 0.0
    fixed = None if uplink.bandwidth_bps else (outcome.total_s if outcome is not None else setup_s)
    return _Job(name=move.name, destination=move.destination, setup_s=setup_s, data_bytes=data, fixed_s=fixed)


def plan_evacuation(guests, uplink, limits=None, max_concurrent=2, max_per_destination=None,
                    choose=choose_strategy) -> EvacuationForecast:
    """Forecast moving ``guests`` (GuestToMove) out over ``uplink`` (MigrationPath of the source:
    its measured bandwidth, shared, and the per-migration setup cost).  ``choose(prediction,
    limits)``: the Decision each migration will make (default ``choose_strategy``)."""
    limits = limits or Limits()
    if max_concurrent < 1 or (max_per_destination is not None and max_per_destination < 1):
        raise ValueError('max_concurrent and max_per_destination must be at least 1, got %r and %r'
                         % (max_concurrent, max_per_destination))
    guests = list(guests)
    share = uplink.bandwidth_bps / min(max_concurrent, len(guests)) if uplink.bandwidth_bps and guests else None
    path = MigrationPath(bandwidth_bps=share, setup_s=uplink.setup_s)
    moves = []
    for guest in guests:
        guest_limits = limits if guest.timeout_s is None else replace(limits, timeout_s=guest.timeout_s)
        prediction = predict(guest.load, path, guest_limits)
        decision = choose(prediction, guest_limits)
        if not decision.known:
            group, predicted = 'unknown', _total(prediction.outcome(Strategy.PAUSED))
        elif decision.refused:
            group, predicted = 'refused', None
        else:
            group, predicted = GROUP_OF[decision.strategy], decision.outcome.total_s
        moves.append(PlannedMove(name=guest.name, destination=guest.destination, group=group, strategy=decision.strategy,
                                 predicted_s=predicted, start_s=None, end_s=None, prediction=prediction,
                                 decision=decision))
    # Longest first (module docstring); the unknown ones, whose time is only a lower bound, last;
    # names break ties so the same input always gives the same order.
    moves.sort(key=lambda move: (move.group == 'unknown', -(move.predicted_s or 0.0), move.name))
    live = [move for move in moves if move.group != 'refused']
    jobs = [_job(move, _live_outcome(move), uplink, uplink.setup_s) for move in live]
    window = _schedule(jobs, max_concurrent, max_per_destination, uplink.bandwidth_bps, limits.bandwidth_cap_bps)
    timed = dict((job.name, job) for job in jobs)
    moves = [_timed(move, timed.get(move.name)) for move in moves]
    all_jobs = [_job(move, _live_outcome(move) or move.prediction.outcome(Strategy.PAUSED), uplink, uplink.setup_s)
                for move in moves]
    window_with_paused = _schedule(all_jobs, max_concurrent, max_per_destination, uplink.bandwidth_bps,
                                   limits.bandwidth_cap_bps)
    forecast = EvacuationForecast(moves=tuple(moves), window_s=window,
                                  window_is_lower_bound=any(move.group == 'unknown' for move in moves),
                                  window_with_paused_s=window_with_paused, bandwidth_share_bps=share, sentence='')
    return replace(forecast, sentence=_describe(forecast, max_concurrent))


def _total(outcome):
    return None if outcome is None else outcome.total_s


def _live_outcome(move):
    if move.group == 'unknown':
        return move.prediction.outcome(Strategy.PAUSED)
    return move.decision.outcome


def _timed(move, job):
    if job is None:
        return move
    return replace(move, start_s=job.started, end_s=job.ended)


def _describe(forecast, max_concurrent):
    live = [move for move in forecast.moves if move.start_s is not None]
    parts = ['%d guest%s move live in about %.0f s%s, %d at a time' % (
        len(live), '' if len(live) == 1 else 's', forecast.window_s,
        ' or more (no prediction for %s)' % ', '.join(forecast.group('unknown')) if forecast.window_is_lower_bound else '',
        max_concurrent)]
    for group, words in (('auto_converge', 'with auto-converge'), ('postcopy', 'with post-copy')):
        if forecast.group(group):
            parts.append('%s %s' % (', '.join(forecast.group(group)), words))
    refused = forecast.group('refused')
    if refused:
        parts.append('%s cannot move live within the limits (paused or cold: about %.0f s in all)' % (
            ', '.join(refused), forecast.window_with_paused_s))
    return '; '.join(parts) + '.'
