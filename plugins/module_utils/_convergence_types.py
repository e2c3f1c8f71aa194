# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the convergence engine (``_convergence``) reads and decides, as plain values (pure).

:class:`JobSample` is one ``dom.jobStats()`` reading, :class:`Policy` how hard to push a
live migration towards convergence, :class:`Action` one decision of the engine (its kind from
:class:`ActionKind`), :class:`EngineState` where the engine is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

DEFAULT_PAGE_SIZE = 4096
MIN_DOWNTIME_MS = 50

# virDomainJobType values of a job that is still running (BOUNDED, UNBOUNDED).
RUNNING_JOB_TYPES = (1, 2)
# JobSample field -> jobStats() key, where the names differ.
_STATS_KEYS = {"job_type": "type", "time_elapsed_ms": "time_elapsed", "downtime_ms": "downtime"}
# Statistics that are counters: absent means nothing counted yet.
_COUNTERS = ("memory_iteration", "memory_postcopy_requests", "auto_converge_throttle")


class ActionKind:
    """Kinds of :class:`Action`."""

    SET_MAX_DOWNTIME = "set_max_downtime"
    START_POSTCOPY = "start_postcopy"
    ABORT = "abort"
    AUTO_CONVERGE_ENGAGED = "auto_converge_engaged"


class EngineState:
    """Values of :attr:`ConvergenceEngine.state`."""

    PRECOPY = "precopy"
    POSTCOPY = "postcopy"
    ABORTING = "aborting"


def _int_or_none(value):
    return None if value is None else int(value)


@dataclass(frozen=True)
class JobSample:
    """One ``dom.jobStats()`` reading taken at ``t_ms``.

    Sizes are bytes, rates bytes/s except ``memory_dirty_rate`` (pages/s, as
    libvirt reports it; see :attr:`dirty_rate_bps`), times ms.  Statistics the
    hypervisor did not report are None; the counters ``memory_iteration``,
    ``memory_postcopy_requests`` and ``auto_converge_throttle`` are 0 instead.
    """

    t_ms: int
    job_type: int | None = None
    operation: int | None = None
    time_elapsed_ms: int | None = None
    data_total: int | None = None
    data_processed: int | None = None
    data_remaining: int | None = None
    memory_total: int | None = None
    memory_processed: int | None = None
    memory_remaining: int | None = None
    memory_bps: int | None = None
    memory_dirty_rate: int | None = None
    memory_page_size: int | None = None
    memory_iteration: int = 0
    memory_postcopy_requests: int = 0
    downtime_ms: int | None = None
    auto_converge_throttle: int = 0
    disk_total: int | None = None
    disk_processed: int | None = None
    disk_remaining: int | None = None

    @classmethod
    def from_job_stats(cls, stats: dict, t_ms: int) -> JobSample:
        """Build a sample from a libvirt-python ``jobStats()`` dict (unknown keys are ignored)."""
        values = {}
        for field in fields(cls):
            if field.name == "t_ms":
                continue
            value = _int_or_none(stats.get(_STATS_KEYS.get(field.name, field.name)))
            values[field.name] = (value or 0) if field.name in _COUNTERS else value
        return cls(t_ms=int(t_ms), **values)

    @property
    def dirty_rate_bps(self) -> int | None:
        """Dirty rate in bytes/s (pages/s times the page size, 4 KiB if unreported)."""
        if self.memory_dirty_rate is None:
            return None
        return self.memory_dirty_rate * (self.memory_page_size or DEFAULT_PAGE_SIZE)

    @property
    def remaining(self) -> int | None:
        """Bytes still to send: ``data_remaining`` (memory and disks), else ``memory_remaining``."""
        return self.data_remaining if self.data_remaining is not None else self.memory_remaining

    @property
    def is_running(self) -> bool:
        """False for samples of a job that finished, failed or was cancelled (or of no job)."""
        return self.job_type is None or self.job_type in RUNNING_JOB_TYPES


POSTCOPY_STARTS = ("after_first_pass", "when_outpaced", "when_stalled")


@dataclass(frozen=True)
class Policy:
    """How hard to push a migration towards convergence.  The defaults need no tuning.

    max_downtime_ms
        The user's bound on the final pause (default 500).  Never exceeded.
    downtime_steps
        The downtime starts at ``max_downtime_ms / downtime_steps`` (at least
        50 ms) and rises by that much per completed pass after the first full
        pass, up to the bound (default 5 steps).
    allow_postcopy / postcopy_after_stalled_passes
        Switch to post-copy once the downtime is at its bound and the migration
        has been stalled this many passes (default off / 2).  Needs a job
        started with the POSTCOPY flag.
    postcopy_start
        When, with post-copy allowed, to switch before any stall (default
        ``after_first_pass``):

        - ``after_first_pass``: at the end of a pass (the first or any later
          one) whose dirty set does not fit in ``max_downtime_ms`` at the
          measured bandwidth, so pre-copy would need at least another pass.
          Post-copy then sends each remaining page once; another pass would
          resend pages the guest keeps dirtying.  A guest whose first pass
          leaves little to send finishes in pre-copy.  What hand-tuned
          ``virsh migrate --postcopy --postcopy-after-precopy`` does, less the
          switch for guests that were about to finish.
        - ``when_outpaced``: once the measured dirty rate is at least
          ``min_progress_ratio`` times the measured bandwidth (no pass can
          shrink the dirty set by the progress a stall demands).  QEMU's
          first dirty-rate figure can be low (it was 6 of 20 MiB/s on the
          lab), so this can come a pass late.
        - ``when_stalled``: only by the stall rule below.

        The stall rule (``postcopy_after_stalled_passes``) applies in every
        case.
    stall_window / min_progress_ratio
        Stalled: the smallest dirty set of the last ``stall_window`` passes
        (default 3) is not below ``min_progress_ratio`` (default 0.9) times the
        smallest dirty set before them.  Minima over windows, not last values,
        so dirty sets that oscillate neither hide nor fake a stall.  A pass's
        dirty set is the largest remaining size seen in it: QEMU sends each
        pass down to its switch-over threshold (bandwidth x downtime), so the
        smallest remaining size of every pass is that threshold, whatever the
        guest does.
    completion_timeout_ms
        Abort a pre-copy job running longer than this (default None: no limit).
    stalled_abort_passes
        Give up early (abort) once the downtime is at its bound, auto-converge
        has nothing more to give, post-copy is not possible and the migration
        has been stalled this many passes (default 12: under a full throttle
        QEMU can need several passes before the dirty set shrinks).
    max_throttle_percent
        The throttle QEMU stops at (its ``max-cpu-throttle``, default 99).
    """

    max_downtime_ms: int = 500
    downtime_steps: int = 5
    allow_postcopy: bool = False
    postcopy_after_stalled_passes: int = 2
    postcopy_start: str = "after_first_pass"
    stall_window: int = 3
    min_progress_ratio: float = 0.9
    completion_timeout_ms: int | None = None
    stalled_abort_passes: int = 12
    max_throttle_percent: int = 99

    def __post_init__(self):
        positive = ("max_downtime_ms", "downtime_steps", "postcopy_after_stalled_passes", "stall_window",
                    "stalled_abort_passes", "max_throttle_percent")
        problems = ["%s must be a positive integer, got %r" % (name, getattr(self, name))
                    for name in positive if not isinstance(getattr(self, name), int) or getattr(self, name) < 1]
        if not 0 < self.min_progress_ratio <= 1:
            problems.append("min_progress_ratio must be in (0, 1], got %r" % (self.min_progress_ratio,))
        if self.completion_timeout_ms is not None and self.completion_timeout_ms < 1:
            problems.append("completion_timeout_ms must be positive or None, got %r" % (self.completion_timeout_ms,))
        if self.postcopy_start not in POSTCOPY_STARTS:
            problems.append("postcopy_start must be one of %s, got %r" % (", ".join(POSTCOPY_STARTS), self.postcopy_start))
        if problems:
            raise ValueError("invalid convergence policy: " + "; ".join(problems))

    def downtime_for_raises(self, raises: int) -> int:
        """Downtime (ms) after ``raises`` steps: step ``raises + 1`` of ``downtime_steps``, capped by the bound."""
        step_value = self.max_downtime_ms * (raises + 1) // self.downtime_steps
        return min(self.max_downtime_ms, max(MIN_DOWNTIME_MS, step_value))

    @property
    def initial_downtime_ms(self) -> int:
        """The downtime applied when the job starts."""
        return self.downtime_for_raises(0)


@dataclass(frozen=True)
class Action:
    """A decision, with the measurements it was based on (None when unreported)."""

    kind: str
    value: int | None
    t_ms: int
    iteration: int
    data_remaining: int | None
    dirty_rate_bps: int | None
    bandwidth_bps: int | None
    reason: str

    def as_dict(self) -> dict:
        """A JSON-friendly view for module results."""
        return asdict(self)
