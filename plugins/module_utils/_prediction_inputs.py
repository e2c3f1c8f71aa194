# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The inputs of the migration model (``_prediction``): what is known of the guest, the path and the
operator's limits, and how a fresh measurement, history and defaults combine (pure; private
module_utils).

Figures are bytes, bytes/s, seconds, and ms for downtimes.  Each value object checks itself
(``PredictionInputError``, a ValueError naming the field and the fix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ansible_collections.kvmops.migration.plugins.module_utils._convergence import MIB
from ansible_collections.kvmops.migration.plugins.module_utils._convergence_types import DEFAULT_PAGE_SIZE, Policy

# QEMU's throttle-trigger-threshold: a pass is "not converging" when it dirtied more than this
# share of what it sent; after two such passes QEMU raises the vCPU throttle.
QEMU_THROTTLE_TRIGGER_PERCENT = 50
# virt_migrate's throttle steps (QEMU's own are 20 and +10: minutes to bite when a pass lasts ~10 s).
THROTTLE_INITIAL = 50
THROTTLE_INCREMENT = 25
# A fresh 1-second sample sees the guest now, history sees whole migrations: both are estimates
# of the rate the next migration will face, the fresh one weighs more (see resolve_dirty_rate).
FRESH_WEIGHT = 2.0 / 3.0
WRITE_PATTERNS = ('sequential', 'random')
# The fixed part of one migration job besides moving memory, as libvirt times it (the source's
# connection to the destination libvirtd, the destination QEMU's start, the switch-over's device
# state, the source QEMU's stop).  Lab-calibrated (issue 20's breakdown: an idle 128 MiB guest's
# job took 1.36 s for about 0.1 s of memory, 0.8 s with SSH connection sharing); to be checked
# against the benchmark's quiet run (the breakdown's virsh job time of an idle guest).
JOB_SETUP_S = 1.0
_POLICY_DEFAULTS = Policy()
# virt_migrate's policy sub-options that are Limits fields of the same name.
POLICY_OPTIONS = ('downtime_steps', 'stall_window', 'min_progress_ratio', 'stalled_abort_passes', 'postcopy_start',
                  'postcopy_after_stalled_passes')


class PredictionInputError(ValueError):
    """An input the model cannot use; the message names the field and what it needs."""


class Strategy:
    """How a migration can be run (keys of :attr:`Prediction.outcomes`)."""

    PRECOPY_STEPS = 'precopy_steps'  # pre-copy, downtime raised step by step (the engine's policy)
    PRECOPY = 'precopy'              # pre-copy at max_downtime from the start (virsh migrate --live)
    AUTO_CONVERGE = 'auto_converge'  # pre-copy with the steps and QEMU's vCPU throttle
    POSTCOPY = 'postcopy'            # pre-copy, switched to post-copy after a pass that does not fit
    PAUSED = 'paused'                # the guest paused for one full transfer (cold: plus shutdown and boot)
    CHOICE_ORDER = (PRECOPY_STEPS, PRECOPY, AUTO_CONVERGE, POSTCOPY)


def _check(problems, ok, message):
    if not ok:
        problems.append(message)


def _raise_if(problems, what):
    if problems:
        raise PredictionInputError('invalid %s: %s' % (what, '; '.join(problems)))


def _is_number(value, minimum=0.0, allow_none=True):
    if value is None:
        return allow_none
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= minimum


@dataclass(frozen=True)
class GuestLoad:
    """The guest.  ``dirty_pages_per_s`` x ``page_size``, when given, is the rate QEMU must resend
    (whole pages), else ``dirty_rate_bps``; neither and no history: the prediction is unknown.

    writer_cpu_share
        Share of a vCPU's time the guest spends producing its dirty rate (1.0: CPU-bound).  A
        throttle of p % leaves 1 - p/100 of the time, so the rate falls only once that is below
        this share: a writer needing 5 % of its vCPU keeps its pace until the throttle passes
        95 % (what the lab's TCG guests show).  The measured vCPU busy share bounds it.
    history
        Earlier migrations' ``HistoryEntry`` objects, newest first.
    measured_working_set_bytes
        The set a short and a longer dirty-rate sample showed saturated (``_dirtyrate``'s
        ``probe_working_sets``); history that shows one wins over it (whole migrations).
    """

    memory_bytes: int
    dirty_rate_bps: float | None = None
    dirty_pages_per_s: float | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    working_set_bytes: int | None = None
    zero_page_share: float | None = None
    writer_cpu_share: float = 1.0
    write_pattern: str = 'sequential'
    history: tuple = ()
    measured_working_set_bytes: float | None = None

    def __post_init__(self):
        problems = []
        _check(problems, _is_number(self.memory_bytes, 1, allow_none=False),
               'memory_bytes must be a positive number of bytes, got %r' % (self.memory_bytes,))
        for name in ('dirty_rate_bps', 'dirty_pages_per_s', 'working_set_bytes', 'measured_working_set_bytes'):
            _check(problems, _is_number(getattr(self, name)), '%s must be >= 0 or None, got %r' % (name, getattr(self, name)))
        _check(problems, _is_number(self.page_size, 1, allow_none=False), 'page_size must be positive, got %r' % (self.page_size,))
        _check(problems, self.zero_page_share is None or (_is_number(self.zero_page_share) and self.zero_page_share <= 1),
               'zero_page_share must be within 0..1 or None, got %r' % (self.zero_page_share,))
        _check(problems, _is_number(self.writer_cpu_share, allow_none=False) and 0 < self.writer_cpu_share <= 1,
               'writer_cpu_share must be within (0, 1], got %r' % (self.writer_cpu_share,))
        _check(problems, self.write_pattern in WRITE_PATTERNS,
               'write_pattern must be one of %s, got %r' % (', '.join(WRITE_PATTERNS), self.write_pattern))
        _raise_if(problems, 'guest load')

    @property
    def measured_rate_bps(self) -> float | None:
        if self.dirty_pages_per_s is not None:
            return float(self.dirty_pages_per_s) * self.page_size
        return None if self.dirty_rate_bps is None else float(self.dirty_rate_bps)


@dataclass(frozen=True)
class MigrationPath:
    """The path: measured bandwidth (None: unknown, history or the cap may tell), where that figure
    comes from (``bandwidth_source``: ``measured`` by the preflight, ``job`` for a running job's
    own ``memory_bps``...) and the fixed cost of a migration besides moving memory (connections,
    checks, the job's start and end)."""

    bandwidth_bps: float | None
    setup_s: float = 0.0
    bandwidth_source: str = 'measured'

    def __post_init__(self):
        problems = []
        _check(problems, self.bandwidth_bps is None or _is_number(self.bandwidth_bps, 1),
               'bandwidth_bps must be at least 1 byte/s or None, got %r' % (self.bandwidth_bps,))
        _check(problems, _is_number(self.setup_s, allow_none=False), 'setup_s must be >= 0, got %r' % (self.setup_s,))
        _raise_if(problems, 'migration path')


@dataclass(frozen=True)
class Limits:
    """The operator's limits and the policy's knobs (defaults: virt_migrate's and the engine's).

    ``downtime_steps`` ... ``postcopy_after_stalled_passes`` are the engine's ``Policy`` knobs.
    ``bandwidth_cap_bps`` limits pre-copy; post-copy runs at ``postcopy_bandwidth_bps`` or, as
    QEMU does when that is unset, uncapped.  ``throttle_*`` are QEMU's cpu-throttle-initial,
    -increment and max-cpu-throttle; ``throttle_trigger_percent`` its throttle-trigger-threshold.
    """

    max_downtime_ms: int = _POLICY_DEFAULTS.max_downtime_ms
    allow_auto_converge: bool = True
    allow_postcopy: bool = False
    timeout_s: float | None = None
    bandwidth_cap_bps: float | None = None
    postcopy_bandwidth_bps: float | None = None
    throttle_initial: int = THROTTLE_INITIAL
    throttle_increment: int = THROTTLE_INCREMENT
    throttle_max: int = _POLICY_DEFAULTS.max_throttle_percent
    throttle_trigger_percent: int = QEMU_THROTTLE_TRIGGER_PERCENT
    downtime_steps: int = _POLICY_DEFAULTS.downtime_steps
    stall_window: int = _POLICY_DEFAULTS.stall_window
    min_progress_ratio: float = _POLICY_DEFAULTS.min_progress_ratio
    stalled_abort_passes: int = _POLICY_DEFAULTS.stalled_abort_passes
    postcopy_start: str = _POLICY_DEFAULTS.postcopy_start
    postcopy_after_stalled_passes: int = _POLICY_DEFAULTS.postcopy_after_stalled_passes

    def __post_init__(self):
        problems = []
        for name in ('timeout_s', 'bandwidth_cap_bps', 'postcopy_bandwidth_bps'):
            value = getattr(self, name)
            _check(problems, value is None or _is_number(value, 1), '%s must be positive or None, got %r' % (name, value))
        for name in ('throttle_initial', 'throttle_increment', 'throttle_max', 'throttle_trigger_percent'):
            value = getattr(self, name)
            _check(problems, isinstance(value, int) and 1 <= value <= 100,
                   '%s must be a percentage within 1..100, got %r' % (name, value))
        _raise_if(problems, 'limits')
        try:
            self.policy()
        except ValueError as exc:
            raise PredictionInputError('invalid limits: %s' % exc) from exc

    def policy(self) -> Policy:
        """The engine policy these limits describe (its downtime steps and stall rule)."""
        return Policy(max_downtime_ms=self.max_downtime_ms, downtime_steps=self.downtime_steps,
                      stall_window=self.stall_window, min_progress_ratio=self.min_progress_ratio,
                      stalled_abort_passes=self.stalled_abort_passes, max_throttle_percent=self.throttle_max,
                      postcopy_start=self.postcopy_start,
                      postcopy_after_stalled_passes=self.postcopy_after_stalled_passes)

    def allows(self, strategy) -> bool:
        return {Strategy.AUTO_CONVERGE: self.allow_auto_converge, Strategy.POSTCOPY: self.allow_postcopy}.get(strategy, True)


@dataclass(frozen=True)
class InFlight:
    """Where a running pre-copy job stands at a pass end, from ``dom.jobStats()``: the passes done
    (``memory_iteration`` - 1), what the next pass starts with (``data_remaining``), the job's
    time so far and QEMU's throttle (``auto_converge_throttle``).  ``predict(..., in_flight=)``
    plays the rest from there, for the engine to compare and correct course."""

    passes_done: int
    remaining_bytes: float
    elapsed_s: float
    throttle_percent: int = 0

    def __post_init__(self):
        problems = []
        _check(problems, isinstance(self.passes_done, int) and self.passes_done >= 1,
               'passes_done must be at least 1 (a pass end), got %r' % (self.passes_done,))
        for name in ('remaining_bytes', 'elapsed_s'):
            _check(problems, _is_number(getattr(self, name), allow_none=False),
                   '%s must be >= 0, got %r' % (name, getattr(self, name)))
        _check(problems, isinstance(self.throttle_percent, int) and 0 <= self.throttle_percent <= 100,
               'throttle_percent must be within 0..100, got %r' % (self.throttle_percent,))
        _raise_if(problems, 'job state')


def limits_from_options(options, timeout_s=None) -> Limits:
    """Limits from virt_migrate's options as its argument spec gives them (``bandwidth`` and
    ``postcopy_bandwidth`` in MiB/s, 0 or None: unlimited; ``max_downtime`` ms; the ``policy``
    dict).  ``timeout_s``: the completion timeout in force (the module's default when the
    ``timeout`` option is unset)."""
    def rate(mib_s):
        return mib_s * MIB if mib_s else None
    policy = dict((name, value) for name, value in (options.get('policy') or {}).items()
                  if name in POLICY_OPTIONS and value is not None)
    return Limits(max_downtime_ms=options.get('max_downtime') or _POLICY_DEFAULTS.max_downtime_ms,
                  allow_auto_converge=bool(options.get('auto_converge', True)),
                  allow_postcopy=bool(options.get('allow_postcopy')),
                  timeout_s=timeout_s if timeout_s is not None else options.get('timeout'),
                  bandwidth_cap_bps=rate(options.get('bandwidth')),
                  postcopy_bandwidth_bps=rate(options.get('postcopy_bandwidth')),
                  throttle_initial=options.get('auto_converge_initial') or THROTTLE_INITIAL,
                  throttle_increment=options.get('auto_converge_increment') or THROTTLE_INCREMENT,
                  **policy)


def _recent_mean(values):
    """Mean of values (newest first) weighing each one half the one after it: a guest's load
    drifts, so the last migration says more than the fifth."""
    weights = [0.5 ** index for index in range(len(values))]
    return sum(w * v for w, v in zip(weights, values)) / sum(weights) if values else None


def resolve_dirty_rate(load):
    """(bytes/s, source).  Measured and history are blended, FRESH_WEIGHT on the measurement:
    a 1-second page sample catches the guest in a lull or a burst, history records what it
    did through whole migrations; neither alone is trusted.  History alone when nothing was
    measured (libvirt < 7.2, paused guest, measurement timed out)."""
    measured = load.measured_rate_bps
    remembered = _recent_mean([e.dirty_rate_bps for e in load.history if e.dirty_rate_bps is not None])
    if measured is None:
        return remembered, ('history' if remembered is not None else 'unknown')
    if remembered is None:
        return measured, 'measured'
    return FRESH_WEIGHT * measured + (1 - FRESH_WEIGHT) * remembered, 'measured+history'


def _first_pass_s(entry, memory_bytes):
    """How long an earlier migration's first pass lasted: the memory less its zero pages, at the
    throughput that migration achieved; None when either figure was not recorded."""
    if not entry.throughput_bps or entry.zero_page_share is None:
        return None
    return memory_bytes * (1.0 - entry.zero_page_share) / entry.throughput_bps


def resolve_working_set(load):
    """(bytes, source).  Given, else the largest dirty set of an earlier migration whose passes
    were long enough to saturate it (the guest could have dirtied twice that set in the first
    pass, which the set after it comes from, but did not: the set, not the pass, was the limit),
    else the set two dirty-rate samples showed saturated (``measured``), else the whole memory
    (no saturation seen: the safe assumption).  The first pass's time comes from
    the memory, zero pages and throughput recorded; without them, the job's average pass, less
    the job's fixed part (JOB_SETUP_S): a short uncapped job is mostly that part, and counted as
    pass time it made the small dirty set of a short first pass look like the working set."""
    if load.working_set_bytes is not None:
        return float(min(load.working_set_bytes, load.memory_bytes)), 'given'
    saturated = []
    for e in load.history:
        if not (e.dirty_set_bytes and e.dirty_rate_bps and e.duration_s and e.passes and e.passes >= 2):
            continue
        pass_s = _first_pass_s(e, load.memory_bytes)
        if pass_s is None:
            pass_s = max(0.0, e.duration_s - JOB_SETUP_S) / e.passes
        if e.dirty_rate_bps * pass_s >= 2 * e.dirty_set_bytes:
            saturated.append(e.dirty_set_bytes)
    if saturated:
        return float(min(max(saturated), load.memory_bytes)), 'history'
    if load.measured_working_set_bytes is not None:
        return float(min(load.measured_working_set_bytes, load.memory_bytes)), 'measured'
    return float(load.memory_bytes), 'assumed'


def working_set_unknown(load):
    """True when nothing but the safe assumption gives ``load``'s working set: a longer dirty-rate
    sample may tell it (``_dirtyrate.probe_working_sets``)."""
    return resolve_working_set(load)[1] == 'assumed'


def resolve_bandwidth(path, history, cap_bps=None):
    """(bytes/s, source): measured, else what earlier migrations achieved, else the bandwidth cap,
    else unknown.

    Only migrations that ran without a cap (``HistoryEntry.bandwidth_cap_bps`` None) tell what
    the path gives: one capped at 10 MiB/s achieved 10 MiB/s on any faster link.  With a cap and
    no other figure the link is taken to carry at least the cap (operators cap below the link).
    """
    if path.bandwidth_bps is not None:
        return float(path.bandwidth_bps), path.bandwidth_source
    remembered = _recent_mean([e.throughput_bps for e in history
                               if e.throughput_bps and getattr(e, 'bandwidth_cap_bps', None) is None])
    if remembered is not None:
        return remembered, 'history'
    if cap_bps:
        return float(cap_bps), 'bandwidth cap'
    return None, 'unknown'


def resolve_zero_page_share(load):
    """Share of zero pages: given, else the last migration's, else none (the safe assumption)."""
    if load.zero_page_share is not None:
        return float(load.zero_page_share)
    return next((e.zero_page_share for e in load.history if e.zero_page_share is not None), 0.0)
