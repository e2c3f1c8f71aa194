# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Predict a live migration's outcome before starting it (pure: no libvirt; private module_utils).

With the guest's dirty rate (measured by ``_dirtyrate`` or remembered by ``_migration_history``)
and the path's bandwidth (measured by the preflight), the outcome of pre-copy is mostly
arithmetic.  :func:`predict` plays each strategy pass by pass, the way QEMU runs it and the way
``_convergence.ConvergenceEngine`` steers it; :func:`choose_strategy` picks the first allowed one
that meets the operator's limits, or refuses and says what would work.

Pre-copy, pass by pass.  Pass 1 sends the memory (a zero page costs a header, not 4 KiB).  Pass
n sends what the guest dirtied during pass n-1.  After each pass QEMU switches over when what is
left fits the downtime: ``dirty <= bandwidth x downtime``, at the pre-copy bandwidth (capped);
the final pause is ``dirty / link``: QEMU sends the rest with the guest stopped regardless of the
bandwidth cap (its ``ram_save_complete`` does not rate-limit), so over a link faster than the cap
the pause is shorter than the limit QEMU checked against.  A pass of t seconds leaves a dirty set that saturates at the working set W:

- ``sequential`` writers (the default): ``min(R t, W)``.  Each write lands on a page not yet
  dirtied until the whole set is; this is also the most any write pattern can dirty (no more
  than R t, since pages cannot be dirtied faster than they are written; no more than W, since
  nothing outside the set is written), so a "converges" from it holds for every pattern.  It is
  exact for the lab's dirtier, which rewrites its set page after page.
- ``random`` writers: ``W (1 - exp(-R t / W))``.  Each write hits a page of the set at random, so
  the share still clean after t decays exponentially; repeated hits on dirty pages cost nothing.

Either way a guest rewriting 96 MiB at 20 MiB/s never leaves more than 96 MiB, however long a
pass lasts.  Pre-copy does not converge when the dirty set stops shrinking: the dirty rate is at
least the bandwidth (each pass leaves at least what it sent) and the set saturates above
``bandwidth x downtime``.

Post-copy follows the engine's ``postcopy_start``: after the first pass (or a later one) whose
rest does not fit ``max_downtime`` (default), once the dirty rate outpaces the bandwidth, or
after a stall at the downtime bound; then each page left is sent once.

The inputs (``GuestLoad``, ``MigrationPath``, ``Limits``) and how measurement, history and
defaults combine are in ``_prediction_inputs``.  Figures are bytes, bytes/s, seconds, and ms for
downtimes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from ansible_collections.kvmops.migration.plugins.module_utils._convergence import _mib, _mib_s
from ansible_collections.kvmops.migration.plugins.module_utils._prediction_inputs import (
    Limits,
    Strategy,
    resolve_bandwidth,
    resolve_dirty_rate,
    resolve_working_set,
    resolve_zero_page_share,
)

# What QEMU sends for a zero page: its 8-byte address/flags header and one fill byte.
ZERO_PAGE_WIRE_BYTES = 9
# The pause at the switch to post-copy: device state and the discard bitmap, no RAM.  Lab-calibrated.
POSTCOPY_SWITCHOVER_MS = 50
MAX_PASSES = 1000


@dataclass(frozen=True)
class StrategyOutcome:
    """One strategy's predicted run.  ``finishes``: it completes (pre-copy converges before the
    engine gives up); ``meets_limits``: it finishes within ``max_downtime`` and ``timeout``
    (whether the operator allows it is ``allowed``).  ``stop``: converged, postcopy, paused,
    no_progress (the dirty set no longer shrinks), stalled (the engine's abort rule), pass_limit.
    ``pass_ends``: (seconds since the start, dirty set left) at the end of each pass played: what
    the job's statistics should show, pass by pass."""

    strategy: str
    allowed: bool
    finishes: bool
    meets_limits: bool
    passes: int
    total_s: float | None
    downtime_ms: float | None
    bytes_sent: float
    stop: str
    last_dirty_bytes: float | None = None
    throttle_percent: int | None = None
    postcopy_s: float | None = None
    pass_ends: tuple = ()

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Prediction:
    """Every strategy's outcome for one guest on one path, the figures used and where they came
    from (``*_source``: measured, history, measured+history, given, assumed, unknown), and:

    required_bandwidth_bps
        The least bandwidth at which plain pre-copy meets the limits (None: none would).
    required_downtime_ms
        The least max_downtime with which plain pre-copy meets them at this bandwidth (None: only
        a pause as long as a paused migration's would).
    throttle_needed_percent
        The least steady vCPU throttle with which pre-copy meets them (None: none would).
    verdict
        The first strategy in ``Strategy.CHOICE_ORDER`` that meets the limits whether or not it is
        allowed, ``cold_only`` when none does, ``unknown`` without a dirty rate or bandwidth.
    """

    memory_bytes: int
    bandwidth_bps: float | None
    bandwidth_source: str
    dirty_rate_bps: float | None
    dirty_rate_source: str
    working_set_bytes: float
    working_set_source: str
    zero_page_share: float
    outcomes: tuple
    required_bandwidth_bps: float | None
    required_downtime_ms: int | None
    throttle_needed_percent: int | None
    verdict: str
    sentence: str

    def outcome(self, strategy) -> StrategyOutcome | None:
        return next((o for o in self.outcomes if o.strategy == strategy), None)

    def as_dict(self) -> dict:
        view = asdict(self)
        view['outcomes'] = dict((o.strategy, o.as_dict()) for o in self.outcomes)
        return view


@dataclass(frozen=True)
class _Guest:
    """What the simulation needs, resolved."""

    first_pass_bytes: float
    rate_bps: float
    working_set: float
    writer_cpu_share: float
    random: bool
    setup_s: float
    first_pass_number: int = 1
    start_throttle: int = 0

    def rate(self, throttle_percent):
        """The dirty rate under a vCPU throttle (see ``GuestLoad.writer_cpu_share``)."""
        return self.rate_bps * min(1.0, (1.0 - throttle_percent / 100.0) / self.writer_cpu_share)

    def dirtied(self, seconds, throttle_percent):
        """Bytes of distinct pages dirtied in ``seconds`` under a vCPU throttle (module docstring)."""
        rate = self.rate(throttle_percent)
        if self.working_set <= 0 or rate <= 0:
            return 0.0
        if self.random:
            return -self.working_set * math.expm1(-rate * seconds / self.working_set)
        return min(rate * seconds, self.working_set)


# ---------------------------------------------------------------------------
# The simulation
# ---------------------------------------------------------------------------

def _run(guest, limits, bandwidth, strategy, postcopy_bandwidth=None, fixed_throttle=None, link=None):
    """Play one pre-copy strategy pass by pass; returns a StrategyOutcome (``allowed`` left True).
    ``bandwidth``: the passes' (capped); ``link``: the final stop-and-copy's, uncapped (default:
    ``bandwidth``)."""
    final_bandwidth = max(bandwidth, link or bandwidth)
    policy = limits.policy()
    stepped = strategy != Strategy.PRECOPY
    throttling = strategy == Strategy.AUTO_CONVERGE
    postcopy = strategy == Strategy.POSTCOPY
    to_send, elapsed, sent = guest.first_pass_bytes, guest.setup_s, 0.0
    throttle = guest.start_throttle if fixed_throttle is None else fixed_throttle
    high_passes, throttle_rose_at, pass_ends = 0, guest.first_pass_number - 1, []
    recent, older_min, stalled = [], None, 0
    dirty = None
    if postcopy and guest.first_pass_number > 1 and _switches_to_postcopy(limits, to_send, bandwidth,
                                                                          guest.rate(throttle), 0):
        # A running job (InFlight) at a pass end whose rest already calls for post-copy: now.
        postcopy_s = to_send / (postcopy_bandwidth or bandwidth)
        return _outcome(limits, strategy, guest.first_pass_number - 1,
                        elapsed + POSTCOPY_SWITCHOVER_MS / 1000.0 + postcopy_s, POSTCOPY_SWITCHOVER_MS, to_send,
                        'postcopy', to_send, throttle, postcopy_s)
    for n in range(guest.first_pass_number, guest.first_pass_number + MAX_PASSES):
        pass_s = to_send / bandwidth
        elapsed += pass_s
        sent += to_send
        dirty = guest.dirtied(pass_s, throttle)
        pass_ends.append((round(elapsed, 3), dirty))
        # QEMU checks against the downtime in effect during the pass; the engine raises it one
        # step per completed pass after the first, applied once it sees the pass end.
        allowed_ms = policy.downtime_for_raises(max(0, n - 2)) if stepped else limits.max_downtime_ms
        if dirty * 1000.0 <= bandwidth * allowed_ms:
            return _outcome(limits, strategy, n, elapsed + dirty / final_bandwidth, dirty * 1000.0 / final_bandwidth,
                            sent + dirty, 'converged', dirty, throttle, pass_ends=pass_ends)
        if throttling and dirty > limits.throttle_trigger_percent / 100.0 * to_send:
            high_passes += 1
            if high_passes >= 2:  # QEMU raises the throttle on every second such pass
                high_passes = 0
                raised = limits.throttle_initial if throttle == 0 else throttle + limits.throttle_increment
                throttle, throttle_rose_at = min(limits.throttle_max, raised), n
        # The engine's stall rule (Policy): the smallest of the last stall_window dirty sets is
        # not below min_progress_ratio x the smallest before them.
        recent.append(dirty)
        if len(recent) > limits.stall_window:
            leaving = recent.pop(0)
            older_min = leaving if older_min is None else min(older_min, leaving)
        stalled = stalled + 1 if older_min is not None and min(recent) >= limits.min_progress_ratio * older_min else 0
        can_throttle_more = throttling and throttle < limits.throttle_max
        at_bound = allowed_ms >= limits.max_downtime_ms
        stalled_at_bound = stalled if at_bound else 0
        if postcopy and _switches_to_postcopy(limits, dirty, bandwidth, guest.rate(throttle), stalled_at_bound):
            # From here every page left is sent once, on demand or in the background.
            postcopy_s = dirty / (postcopy_bandwidth or bandwidth)
            return _outcome(limits, strategy, n, elapsed + POSTCOPY_SWITCHOVER_MS / 1000.0 + postcopy_s,
                            POSTCOPY_SWITCHOVER_MS, sent + dirty, 'postcopy', dirty, throttle, postcopy_s, pass_ends)
        exhausted = not throttling or throttle >= limits.throttle_max or n - throttle_rose_at >= limits.stall_window
        if not postcopy and at_bound and exhausted:
            if stalled >= limits.stalled_abort_passes:
                return _outcome(limits, strategy, n, None, None, sent, 'stalled', dirty, throttle, pass_ends=pass_ends)
            if n >= 2 and dirty >= to_send and not can_throttle_more and throttle_rose_at != n:
                # The dirty set grows or holds under the throttle the next passes keep (one just
                # raised acts from the next pass): each pass leaves at least what it sent, for ever.
                return _outcome(limits, strategy, n, None, None, sent, 'no_progress', dirty, throttle, pass_ends=pass_ends)
        to_send = dirty
    return _outcome(limits, strategy, n, None, None, sent, 'pass_limit', dirty, throttle, pass_ends=pass_ends)


def _switches_to_postcopy(limits, dirty, bandwidth, rate, stalled_at_bound):
    # stalled_at_bound: passes stalled with the downtime at its bound (0 below the bound).
    """The engine's post-copy rules at a pass end (``Policy.postcopy_start``)."""
    if stalled_at_bound >= limits.postcopy_after_stalled_passes:
        return True
    if limits.postcopy_start == 'after_first_pass':
        return dirty * 1000.0 > bandwidth * limits.max_downtime_ms
    return limits.postcopy_start == 'when_outpaced' and rate >= limits.min_progress_ratio * bandwidth


def _outcome(limits, strategy, passes, total_s, downtime_ms, sent, stop, dirty, throttle, postcopy_s=None, pass_ends=()):
    finishes = total_s is not None
    meets = (finishes and downtime_ms <= limits.max_downtime_ms
             and (limits.timeout_s is None or total_s <= limits.timeout_s))
    return StrategyOutcome(strategy=strategy, allowed=True, finishes=finishes, meets_limits=meets, passes=passes,
                           total_s=total_s, downtime_ms=downtime_ms, bytes_sent=sent, stop=stop, last_dirty_bytes=dirty,
                           throttle_percent=throttle if strategy == Strategy.AUTO_CONVERGE else None,
                           postcopy_s=postcopy_s, pass_ends=tuple(pass_ends))


def _paused(guest, limits, bandwidth):
    transfer_s = guest.first_pass_bytes / bandwidth
    return _outcome(limits, Strategy.PAUSED, 1, guest.setup_s + transfer_s, transfer_s * 1000.0,
                    guest.first_pass_bytes, 'paused', 0.0, 0)


def _least(meets, low, high, integer=False):
    """The least value in [low, high] for which the monotone ``meets`` holds (None: not even high)."""
    if not meets(high):
        return None
    if meets(low):
        return low
    for dummy_step in range(60):
        if (high - low <= 1) if integer else (high - low <= high * 0.002):
            break
        middle = (low + high) // 2 if integer else (low + high) / 2.0
        low, high = (low, middle) if meets(middle) else (middle, high)
    return high


def _required_bandwidth(guest, limits):
    """Least bandwidth at which plain pre-copy (downtime at max_downtime) meets the limits."""
    def meets(bandwidth):
        return _run(guest, limits, bandwidth, Strategy.PRECOPY).meets_limits
    ceiling = 1e3
    while ceiling < 1e13 and not meets(ceiling):
        ceiling *= 10
    return _least(meets, 1.0, ceiling)


def _required_downtime(guest, limits, bandwidth, paused_ms):
    """Least max_downtime (ms) with which plain pre-copy meets the other limits, if below a pause."""
    def meets(downtime_ms):
        return _run(guest, replace(limits, max_downtime_ms=downtime_ms), bandwidth, Strategy.PRECOPY).meets_limits
    return _least(meets, 1, max(1, int(paused_ms) - 1), integer=True)


def _throttle_needed(guest, limits, bandwidth):
    """Least steady throttle with which pre-copy (the engine's steps) meets the limits."""
    return _least(lambda p: _run(guest, limits, bandwidth, Strategy.PRECOPY_STEPS, fixed_throttle=p).meets_limits,
                  0, limits.throttle_max, integer=True)


def predict(load, path, limits=None, in_flight=None) -> Prediction:
    """Predict every strategy for ``load`` (GuestLoad) over ``path`` (MigrationPath) under ``limits``.

    ``in_flight`` (InFlight): a job already running; the strategies are played on from its pass
    end (the fixed-downtime and post-copy ones as if switched to now), ``paused`` is "stop and
    copy the rest now"; times count from the job's start, bytes from the pass end.  With the
    job's own figures (its dirty rate and ``memory_bps``) this is how the engine checks that the
    chosen strategy still meets the limits.
    """
    limits = limits or Limits()
    rate, rate_source = resolve_dirty_rate(load)
    working_set, working_set_source = resolve_working_set(load)
    link, link_source = resolve_bandwidth(path, load.history, limits.bandwidth_cap_bps)
    zero_share = resolve_zero_page_share(load)
    first_pass = load.memory_bytes * ((1 - zero_share) + zero_share * ZERO_PAGE_WIRE_BYTES / load.page_size)
    bandwidth = link
    if link is not None and limits.bandwidth_cap_bps is not None and limits.bandwidth_cap_bps < link:
        bandwidth, link_source = float(limits.bandwidth_cap_bps), link_source + ', capped'
    guest = _Guest(first_pass_bytes=first_pass, rate_bps=rate or 0.0, working_set=working_set,
                   writer_cpu_share=load.writer_cpu_share, random=load.write_pattern == 'random', setup_s=path.setup_s)
    if in_flight is not None:
        guest = replace(guest, first_pass_bytes=float(in_flight.remaining_bytes), setup_s=float(in_flight.elapsed_s),
                        first_pass_number=in_flight.passes_done + 1, start_throttle=in_flight.throttle_percent)
    common = dict(memory_bytes=load.memory_bytes, bandwidth_bps=bandwidth, bandwidth_source=link_source,
                  dirty_rate_bps=rate, dirty_rate_source=rate_source, working_set_bytes=working_set,
                  working_set_source=working_set_source, zero_page_share=zero_share)
    if bandwidth is None or rate is None:
        missing = ' and '.join(what for what, value in (('bandwidth', bandwidth), ('dirty rate', rate)) if value is None)
        outcomes = () if bandwidth is None else (_paused(guest, limits, bandwidth),)
        return Prediction(outcomes=outcomes, required_bandwidth_bps=None, required_downtime_ms=None,
                          throttle_needed_percent=None, verdict='unknown',
                          sentence='No prediction: the %s is unknown (not measured, no migration history).' % missing,
                          **common)
    postcopy_bandwidth = limits.postcopy_bandwidth_bps or link
    paused = _paused(guest, limits, bandwidth)
    outcomes = tuple(replace(_run(guest, limits, bandwidth, strategy, postcopy_bandwidth=postcopy_bandwidth, link=link),
                             allowed=limits.allows(strategy)) for strategy in Strategy.CHOICE_ORDER) + (paused,)
    verdict = next((o.strategy for o in outcomes if o.strategy in Strategy.CHOICE_ORDER and o.meets_limits), 'cold_only')
    prediction = Prediction(outcomes=outcomes, required_bandwidth_bps=_required_bandwidth(guest, limits),
                            required_downtime_ms=_required_downtime(guest, limits, bandwidth, paused.downtime_ms),
                            throttle_needed_percent=_throttle_needed(guest, limits, bandwidth), verdict=verdict,
                            sentence='', **common)
    return replace(prediction, sentence=describe(prediction, limits))


# ---------------------------------------------------------------------------
# Words and the choice
# ---------------------------------------------------------------------------

def _seconds(value):
    return '%.0f s' % value if value >= 10 else '%.1f s' % value


def _finish_words(outcome):
    words = 'about %s, %d pass%s, downtime about %.0f ms' % (
        _seconds(outcome.total_s), outcome.passes, '' if outcome.passes == 1 else 'es', outcome.downtime_ms)
    if outcome.postcopy_s is not None:
        words += ', %s of it in post-copy' % _seconds(outcome.postcopy_s)
    if outcome.throttle_percent:
        words += ', vCPU throttle reaching %d %%' % outcome.throttle_percent
    return words


def describe(prediction, limits) -> str:
    """One or two sentences an operator can act on."""
    if prediction.verdict == 'unknown':
        return prediction.sentence
    plain = prediction.outcome(Strategy.PRECOPY_STEPS)
    load = 'the guest dirties %s (%s) over a %s working set (%s); the migration gets %s (%s)' % (
        _mib_s(prediction.dirty_rate_bps), prediction.dirty_rate_source, _mib(prediction.working_set_bytes),
        prediction.working_set_source, _mib_s(prediction.bandwidth_bps), prediction.bandwidth_source)
    if prediction.verdict in (Strategy.PRECOPY_STEPS, Strategy.PRECOPY):
        chosen = prediction.outcome(prediction.verdict)
        return 'Plain pre-copy converges: %s; %s.' % (_finish_words(chosen), load)
    if plain.finishes:
        why = 'finishes only after %s, beyond timeout=%s s' % (_seconds(plain.total_s), limits.timeout_s)
    else:
        why = 'does not converge: each pass still leaves about %s, more than the %s that fit in %d ms' % (
            _mib(plain.last_dirty_bytes), _mib(prediction.bandwidth_bps * limits.max_downtime_ms / 1000.0),
            limits.max_downtime_ms)
    parts = ['Plain pre-copy %s; %s.' % (why, load)]
    if prediction.verdict in (Strategy.AUTO_CONVERGE, Strategy.POSTCOPY):
        name = 'Auto-converge' if prediction.verdict == Strategy.AUTO_CONVERGE else 'Post-copy'
        parts.append('%s would: %s.' % (name, _finish_words(prediction.outcome(prediction.verdict))))
    else:
        parts.append('No live strategy meets the limits: only a paused or cold migration (the guest stopped for '
                     'about %s).' % _seconds(prediction.outcome(Strategy.PAUSED).total_s))
    if prediction.required_bandwidth_bps is not None:
        parts.append('%s would make plain pre-copy converge.' % _mib_s(prediction.required_bandwidth_bps))
    return ' '.join(parts)


@dataclass(frozen=True)
class Decision:
    """What ``strategy: auto`` does: run ``strategy``, or refuse (``strategy`` None) before starting
    and offer ``remedies``.  ``known`` False: no prediction could be made (start as before and let
    the engine find out)."""

    strategy: str | None
    known: bool
    reason: str
    remedies: tuple = ()
    outcome: StrategyOutcome | None = None

    @property
    def refused(self) -> bool:
        return self.known and self.strategy is None

    def as_dict(self) -> dict:
        return {'strategy': self.strategy, 'known': self.known, 'refused': self.refused, 'reason': self.reason,
                'remedies': list(self.remedies), 'outcome': self.outcome.as_dict() if self.outcome else None}


def choose_strategy(prediction, limits) -> Decision:
    """The first strategy, in ``Strategy.CHOICE_ORDER``, that ``limits`` allow and that meets them.

    Both pre-copy forms come first (nothing slows the guest, nothing splits it between hosts);
    the stepped one keeps the pause shortest, the fixed one finishes a few passes sooner, which
    only matters when the timeout is close.  Then auto-converge (slows the guest), then post-copy
    (a network failure during its phase loses the guest).  Cold and paused are never chosen
    (the guest stops): they are offered as remedies.
    """
    if prediction.verdict == 'unknown':
        return Decision(strategy=None, known=False, reason=prediction.sentence)
    for strategy in Strategy.CHOICE_ORDER:
        outcome = prediction.outcome(strategy)
        if limits.allows(strategy) and outcome.meets_limits:
            return Decision(strategy=strategy, known=True, reason=prediction.sentence, outcome=outcome)
    return Decision(strategy=None, known=True, reason=prediction.sentence, remedies=_remedies(prediction, limits))


def _remedies(prediction, limits):
    remedies = []
    needed = prediction.required_bandwidth_bps
    if needed is not None:
        capped = limits.bandwidth_cap_bps is not None and 'capped' in prediction.bandwidth_source
        remedies.append('bandwidth: at least %s for plain pre-copy (it gets %s%s)' % (
            _mib_s(needed), _mib_s(prediction.bandwidth_bps), '; raise the bandwidth cap' if capped else ''))
    for strategy, option in ((Strategy.AUTO_CONVERGE, 'auto_converge: true'), (Strategy.POSTCOPY, 'allow_postcopy: true')):
        outcome = prediction.outcome(strategy)
        if outcome.meets_limits and not outcome.allowed:
            risk = (' (until it ends, a network or host failure loses the guest)' if strategy == Strategy.POSTCOPY
                    else ' (the guest runs slower meanwhile)')
            remedies.append('%s: %s%s' % (option, _finish_words(outcome), risk))
    late = [o for o in prediction.outcomes if o.strategy in Strategy.CHOICE_ORDER and o.allowed and o.finishes
            and o.downtime_ms <= limits.max_downtime_ms and not o.meets_limits]
    if late:
        fastest = min(late, key=lambda o: o.total_s)
        remedies.append('timeout: at least %d s (%s would finish in about %s)' % (
            math.ceil(fastest.total_s * 1.2), fastest.strategy, _seconds(fastest.total_s)))
    if prediction.required_downtime_ms is not None:
        remedies.append('max_downtime: %d ms would let plain pre-copy converge at this bandwidth'
                        % prediction.required_downtime_ms)
    paused = prediction.outcome(Strategy.PAUSED)
    remedies.append('mode: paused or cold: the guest stops for about %s (cold: plus its shutdown and boot)'
                    % _seconds(paused.total_s))
    return tuple(remedies)
