# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Course correction: at each pass end, predict the rest of a running job from its own figures and
say when the strategy it runs will no longer meet the limits (pure; private module_utils).

``strategy: auto`` starts the strategy a prediction made before the job chose; a 1-second sample
can catch a guest in a lull, and the path can turn out slower than remembered.  The
``ConvergenceEngine`` (``_convergence``) calls :meth:`CourseCheck.at_pass_end` at every pass end,
after its own rules.  The check plays the rest of the job (``predict(..., in_flight=...)``) with
what the job itself shows: the pass's dirty set (``data_remaining`` at the pass start), QEMU's
dirty rate and throughput (``memory_dirty_rate``, ``memory_bps``), its time and throttle.  When
the running strategy no longer meets the limits it answers:

- ``start_postcopy`` when the job may switch (POSTCOPY flag, post-copy allowed) and post-copy
  from here meets the limits: each page left then crosses once;
- ``abort`` when nothing left to this job will do: pre-copy does not finish at all, or only well
  beyond the timeout (``_strategy.TIMEOUT_MARGIN``: the engine aborts at the timeout anyway; an
  early abort saves that time, a wrong one would lose a migration that would have made it), at ``confirm_passes`` pass ends in a row (one figure can
  be off), with what would work (the prediction's remedies).

QEMU's dirty rate under a vCPU throttle is the throttled rate.  The check keeps the highest rate
seen before the throttle engaged as the guest's own; when a throttle of p % has not slowed the
guest (the rate is still at 90 % of that), the writer needs less than 1 - p/100 of its vCPU, so
the model's ``writer_cpu_share`` is lowered to that: the prediction stops counting on a throttle
that does not bite (as on the lab's TCG guests, where only 99 % does).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ansible_collections.kvmops.migration.plugins.module_utils._prediction import choose_strategy, predict
from ansible_collections.kvmops.migration.plugins.module_utils._prediction_inputs import (
    InFlight,
    MigrationPath,
    Strategy,
)
from ansible_collections.kvmops.migration.plugins.module_utils._strategy import TIMEOUT_MARGIN

START_POSTCOPY = 'start_postcopy'
ABORT = 'abort'
# A throttle that leaves the dirty rate at this share of the unthrottled one has not bitten.
UNBITTEN_RATE_SHARE = 0.9
MAX_RECORDS = 50


@dataclass(frozen=True)
class Correction:
    """What the engine should do now (``kind``: start_postcopy or abort), why, and (abort) what would work."""

    kind: str
    reason: str
    remedy: str | None = None


def _mib_s(value):
    return '%.1f MiB/s' % (value / 1048576.0)


class CourseCheck:
    """Holds a running job to ``strategy`` (precopy_steps, precopy or auto_converge).

    ``load``: the GuestLoad the start prediction used (its working set and writer share carry
    over; its dirty rate stands in until QEMU reports one).  ``limits``: the Limits, with the
    timeout in force.  ``bandwidth_bps``: the start prediction's bandwidth, until the job reports
    its own.  ``records``: one dict per check, for the module result.
    """

    def __init__(self, load, limits, strategy, bandwidth_bps=None, working_set_bytes=None, min_passes=2,
                 confirm_passes=2):
        if strategy not in (Strategy.PRECOPY_STEPS, Strategy.PRECOPY, Strategy.AUTO_CONVERGE):
            raise ValueError('the course check holds pre-copy strategies, not %r' % (strategy,))
        # Predictions from here on use the job's figures, not the history the start blended in.
        self.load = replace(load, history=(), dirty_pages_per_s=None,
                            working_set_bytes=working_set_bytes if working_set_bytes is not None else load.working_set_bytes)
        self.limits = limits
        self.strategy = strategy
        self.bandwidth_bps = bandwidth_bps
        self.min_passes = min_passes
        self.confirm_passes = confirm_passes
        self.records = []
        self.misses = 0
        self.correction = None
        self._own_rate = None          # highest QEMU dirty rate seen without a throttle
        self._writer_share = load.writer_cpu_share

    def _guest_rate(self, rate, throttle):
        """The guest's unthrottled dirty rate, learning from a throttle that did not bite."""
        if rate is None:
            return self._own_rate if self._own_rate is not None else self.load.dirty_rate_bps
        if not throttle:
            self._own_rate = max(self._own_rate or 0.0, float(rate))
            return self._own_rate
        own = self._own_rate if self._own_rate is not None else self.load.dirty_rate_bps
        if own is None or rate >= UNBITTEN_RATE_SHARE * own:
            self._writer_share = min(self._writer_share, max(0.01, 1.0 - throttle / 100.0))
            return max(own or 0.0, float(rate))
        return own

    def at_pass_end(self, sample, engine):
        """A Correction, or None to carry on.  ``sample``: the engine's JobSample at the start of a
        pass; ``engine``: the ConvergenceEngine (its ``postcopy_possible`` and last figures)."""
        if self.correction is not None:
            return None
        passes_done = max(0, sample.memory_iteration - 1)
        last = engine.summary()
        bandwidth = sample.memory_bps or last['last_bandwidth_bps'] or self.bandwidth_bps
        rate = self._guest_rate(sample.dirty_rate_bps, sample.auto_converge_throttle)
        remaining = sample.remaining
        if passes_done < self.min_passes or not bandwidth or rate is None or remaining is None:
            return None
        elapsed_ms = sample.time_elapsed_ms if sample.time_elapsed_ms is not None else sample.t_ms
        load = replace(self.load, dirty_rate_bps=rate, writer_cpu_share=self._writer_share)
        prediction = predict(load, MigrationPath(bandwidth_bps=bandwidth, bandwidth_source='job'), self.limits,
                             in_flight=InFlight(passes_done=passes_done, remaining_bytes=remaining,
                                                elapsed_s=elapsed_ms / 1000.0,
                                                throttle_percent=min(100, max(0, sample.auto_converge_throttle))))
        running = prediction.outcome(self.strategy)
        correction = None
        if running.meets_limits:
            self.misses = 0
        else:
            self.misses += 1
            correction = self._correct(prediction, running, engine, passes_done, '%s dirtied against %s moved' % (
                _mib_s(rate), _mib_s(bandwidth)))
        self._record(sample, passes_done, rate, bandwidth, running, correction)
        self.correction = correction
        return correction

    def _correct(self, prediction, running, engine, passes_done, figures):
        expected = ('does not finish (%s)' % running.stop.replace('_', ' ') if not running.finishes
                    else 'would end after about %.0f s, beyond timeout=%s s' % (running.total_s, self.limits.timeout_s))
        postcopy = prediction.outcome(Strategy.POSTCOPY)
        if engine.postcopy_possible and postcopy.finishes and (
                self.limits.timeout_s is None or postcopy.total_s <= self.limits.timeout_s):
            return Correction(START_POSTCOPY, 'course check after pass %d: the job shows %s, so %s %s; post-copy '
                              'from here: about %.0f s in all' % (passes_done, figures, self.strategy, expected,
                                                                  postcopy.total_s))
        hopeless = not running.finishes or (self.limits.timeout_s is not None
                                            and running.total_s > TIMEOUT_MARGIN * self.limits.timeout_s)
        if not hopeless or self.misses < self.confirm_passes:
            return None
        # What would work, among what this job cannot do (its start flags are fixed).
        job_limits = replace(self.limits, allow_auto_converge=engine.auto_converge_enabled,
                             allow_postcopy=engine.postcopy_possible)
        decision = choose_strategy(prediction, job_limits)
        remedies = decision.remedies or ('strategy: %s, about %.0f s from the start' % (
            decision.strategy, decision.outcome.total_s),)
        return Correction(ABORT, 'course check after pass %d: the job shows %s, so %s %s (%d pass ends in a row)' % (
            passes_done, figures, self.strategy, expected, self.misses),
            remedy='Predicted from the job\'s own figures; what would work: %s.' % '; '.join(remedies))

    def _record(self, sample, passes_done, rate, bandwidth, running, correction):
        self.records.append({'pass': passes_done, 't_ms': sample.t_ms, 'remaining': sample.remaining,
                             'dirty_rate_bps': round(rate), 'bandwidth_bps': round(bandwidth),
                             'writer_cpu_share': round(self._writer_share, 3), 'strategy': self.strategy,
                             'predicted_total_s': None if running.total_s is None else round(running.total_s, 1),
                             'meets_limits': running.meets_limits,
                             'action': correction.kind if correction else None})
        del self.records[:-MAX_RECORDS]
