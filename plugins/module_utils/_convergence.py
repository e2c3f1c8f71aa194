# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Convergence policy for live pre-copy migrations, as a pure state machine.

Pre-copy migration sends guest memory in passes: the first pass copies all of
it, every further pass re-sends the pages the guest dirtied meanwhile.  QEMU
switches over (pauses the guest and copies the rest) once the rest fits into
the allowed downtime.  A guest that dirties memory faster than the link carries
it never gets there.  The engine watches ``dom.jobStats()`` samples and decides
what a controller should change while the job runs; the controller applies the
decisions through libvirt:

======================  ==================================================
action kind             libvirt call
======================  ==================================================
``set_max_downtime``    ``dom.migrateSetMaxDowntime(value)`` (ms)
``start_postcopy``      ``dom.migrateStartPostCopy()``
``abort``               ``dom.abortJob()``
``auto_converge_engaged``  nothing: a record that QEMU started throttling
======================  ==================================================

Auto-converge cannot be switched on or off during a job (it is the
``AUTO_CONVERGE`` start flag); QEMU raises the vCPU throttle itself after
passes that do not shrink enough.  The engine only records it, and counts a
throttle that stopped rising as "auto-converge has nothing more to give".

Usage::

    engine = ConvergenceEngine(Policy(max_downtime_ms=300),
                               postcopy_enabled=spec.postcopy_enabled,
                               auto_converge_enabled=spec.auto_converge_enabled)
    apply(engine.initial_actions(t_ms=now_ms()))
    while job_running():
        apply(engine.observe(JobSample.from_job_stats(dom.jobStats(), now_ms())))
    report(engine.summary(), engine.actions, engine.advice())

A ``course`` check (``_course.CourseCheck``, pure like the engine) may be given: at every pass
end, after the engine's own rules, it plays the rest of the job from the job's figures and may
answer ``start_postcopy`` or ``abort`` (with what would work, then part of :meth:`advice`).

``t_ms`` is any monotonic millisecond clock.  ``observe`` is cheap (O(1) per
sample) and never raises for odd samples: missing statistics are None.

Progress is judged per pass on the *dirty set* a pass starts with (the largest
``data_remaining`` seen in it), see :class:`Policy`.

Pass numbering follows what libvirt reports in ``memory_iteration`` (QEMU's
dirty-sync count): 0 before memory is sent (for example while disks are
mirrored), 1 during the first full pass, N during pass N.  So when iteration N
is seen, N - 1 passes are complete.
"""

from __future__ import annotations

from collections import deque

from ansible_collections.kvmops.migration.plugins.module_utils._convergence_types import (
    Action,
    ActionKind,
    EngineState,
    JobSample,
    Policy,
)

MIB = 1024 * 1024


class ConvergenceEngine:
    """Turns a stream of :class:`JobSample` into :class:`Action` decisions.

    ``postcopy_enabled``: the job was started with the POSTCOPY flag (post-copy
    is only started when the policy also allows it).  ``auto_converge_enabled``:
    the job was started with AUTO_CONVERGE.

    Guarantees: no action is repeated while it is in effect; the downtime never
    decreases and never exceeds the policy bound; after ``abort`` or
    ``start_postcopy`` nothing more is emitted (libvirt cannot abort a job in
    post-copy: ``abortJob`` fails there, and the guest's state is already split
    between the hosts); action times never decrease.
    """

    def __init__(self, policy: Policy | None = None, postcopy_enabled: bool = False, auto_converge_enabled: bool = False,
                 course=None):
        self.policy = policy or Policy()
        self.course = course  # called at pass ends: at_pass_end(sample, engine) -> a correction or None
        self._course_remedy = None
        self.postcopy_enabled = postcopy_enabled
        self.auto_converge_enabled = auto_converge_enabled
        self.actions: list[Action] = []
        self.state = EngineState.PRECOPY
        self._downtime_ms = None
        self._start_t = None
        self._last_t = None
        self._last_sample = None
        self._last_dirty_rate_bps = None
        self._last_bandwidth_bps = None
        self._max_remaining = None
        self._min_remaining = None
        self._iteration = 0
        self._pass_dirty_set = None  # largest remaining size seen in the pass in progress
        self._recent_dirty_sets = deque()  # dirty sets of the last stall_window observed passes
        self._older_dirty_set = None  # the smallest dirty set of the passes before those
        self._stalled_passes = 0
        self._throttle_recorded = 0
        self._throttle_recorded_iteration = None
        self._throttle_max = 0
        self._throttle_rose_at_pass = 0

    # -- public API ---------------------------------------------------------

    @property
    def completed_passes(self) -> int:
        """Memory passes completed so far (see the module docstring)."""
        return max(0, self._iteration - 1)

    @property
    def postcopy_possible(self) -> bool:
        """True when the engine may start post-copy."""
        return self.policy.allow_postcopy and self.postcopy_enabled

    @property
    def downtime_in_effect_ms(self) -> int | None:
        """The max downtime the engine has put in effect (None before its first action)."""
        return self._downtime_ms

    def initial_actions(self, t_ms: int = 0) -> list[Action]:
        """Actions to apply when the job starts: the first downtime step."""
        if self.state != EngineState.PRECOPY or self._downtime_ms is not None:
            return []
        t_ms = self._clock(t_ms)
        return [self._emit(ActionKind.SET_MAX_DOWNTIME, self.policy.initial_downtime_ms, t_ms, None,
                           "first of %d downtime steps towards max_downtime=%d ms"
                           % (self.policy.downtime_steps, self.policy.max_downtime_ms))]

    def observe(self, sample: JobSample) -> list[Action]:
        """Take one sample into account and return the new actions (often none).

        Samples of a job that is no longer running (``job_type`` completed,
        failed, cancelled or none) are ignored.
        """
        if self.state != EngineState.PRECOPY or not sample.is_running:
            return []
        t_ms = self._clock(sample.t_ms)
        self._record_measurements(sample)
        timeout = self.policy.completion_timeout_ms
        if timeout is not None and t_ms - self._start_t >= timeout:
            return [self._emit(ActionKind.ABORT, None, t_ms, sample,
                               "not complete after %d ms (completion_timeout_ms=%d)" % (t_ms - self._start_t, timeout))]
        passes_done = self._advance_passes(sample)
        actions = self._observe_throttle(sample, t_ms)
        if passes_done:
            actions += self._decide_after_passes(sample, t_ms, passes_done)
        return actions

    def required_bandwidth_bps(self) -> float | None:
        """Bandwidth (bytes/s) the guest needs to converge within the downtime bound.

        None until a dirty rate or a dirty set (a pass after the first) was seen.
        """
        needs = [need for need in self._bandwidth_needs() if need is not None]
        return max(needs) if needs else None

    def advice(self) -> str:
        """Explain, in plain words, what it would take for this guest to converge."""
        if self._last_sample is None:
            return "No job statistics were observed, so there is nothing to advise."
        policy = self.policy
        dirty_set = self._dirty_set_level()
        by_dirty_rate, by_downtime = self._bandwidth_needs()
        head = {
            EngineState.ABORTING: "The migration was aborted after %d passes.",
            EngineState.POSTCOPY: "The migration was switched to post-copy after %d passes.",
            EngineState.PRECOPY: "The migration is in pre-copy after %d passes.",
        }[self.state] % self.completed_passes
        parts = [head, self._measured_sentence(dirty_set)]
        if self._course_remedy:
            parts.append(self._course_remedy)
        reasons = []
        if by_dirty_rate is not None:
            reasons.append("the dirty rate / %.2f = %s so that every pass shrinks the dirty set"
                           % (policy.min_progress_ratio, _mib_s(by_dirty_rate)))
        if by_downtime is not None:
            reasons.append("%s / %d ms = %s to copy the dirty set within the downtime"
                           % (_mib(dirty_set), policy.max_downtime_ms, _mib_s(by_downtime)))
        if reasons:
            parts.append("Converging within max_downtime=%d ms needs about %s: %s."
                         % (policy.max_downtime_ms, _mib_s(self.required_bandwidth_bps()), ", and ".join(reasons)))
        parts.append(
            "Options: give the migration more bandwidth (bandwidth option, a dedicated or faster link, "
            "parallel_connections, compression), reduce the guest's write load, or accept a longer max_downtime%s."
            % self._downtime_hint(dirty_set)
        )
        if self.state in (EngineState.PRECOPY, EngineState.ABORTING):
            parts.append(self._postcopy_sentence())
        return " ".join(parts)

    def summary(self) -> dict:
        """Figures for reporting."""
        return {
            "state": self.state,
            "passes": self.completed_passes,
            "max_remaining": self._max_remaining,
            "min_remaining": self._min_remaining,
            "last_dirty_rate_bps": self._last_dirty_rate_bps,
            "last_bandwidth_bps": self._last_bandwidth_bps,
            "max_downtime_ms": self._downtime_ms,
            "stalled_passes": self._stalled_passes,
            "auto_converge_throttle": self._throttle_max,
            "actions": len(self.actions),
        }

    # -- bookkeeping --------------------------------------------------------

    def _clock(self, t_ms):
        """Make action times non-decreasing even if the caller's clock is not."""
        t_ms = t_ms if self._last_t is None else max(self._last_t, t_ms)
        self._last_t = t_ms
        if self._start_t is None:
            self._start_t = t_ms
        return t_ms

    def _record_measurements(self, sample):
        self._last_sample = sample
        if sample.dirty_rate_bps is not None:
            self._last_dirty_rate_bps = sample.dirty_rate_bps
        if sample.memory_bps is not None:
            self._last_bandwidth_bps = sample.memory_bps
        remaining = sample.remaining
        if remaining is not None:
            self._max_remaining = remaining if self._max_remaining is None else max(self._max_remaining, remaining)
            self._min_remaining = remaining if self._min_remaining is None else min(self._min_remaining, remaining)

    def _emit(self, kind, value, t_ms, sample, reason):
        action = Action(
            kind=kind,
            value=value,
            t_ms=t_ms,
            iteration=sample.memory_iteration if sample else 0,
            data_remaining=sample.remaining if sample else None,
            dirty_rate_bps=sample.dirty_rate_bps if sample else None,
            bandwidth_bps=sample.memory_bps if sample else None,
            reason=reason,
        )
        self.actions.append(action)
        if kind == ActionKind.SET_MAX_DOWNTIME:
            self._downtime_ms = value
        elif kind == ActionKind.START_POSTCOPY:
            self.state = EngineState.POSTCOPY
        elif kind == ActionKind.ABORT:
            self.state = EngineState.ABORTING
        return action

    def _observe_throttle(self, sample, t_ms):
        throttle = sample.auto_converge_throttle
        if throttle > self._throttle_max:
            self._throttle_max = throttle
            self._throttle_rose_at_pass = self.completed_passes
        # Record the first engagement and later rises, at most once per pass.
        if throttle <= self._throttle_recorded or self._throttle_recorded_iteration == sample.memory_iteration:
            return []
        first = self._throttle_recorded == 0
        self._throttle_recorded = throttle
        self._throttle_recorded_iteration = sample.memory_iteration
        reason = "QEMU started throttling the vCPUs" if first else "QEMU raised the vCPU throttle"
        return [self._emit(ActionKind.AUTO_CONVERGE_ENGAGED, throttle, t_ms, sample, "%s to %d%%" % (reason, throttle))]

    def _advance_passes(self, sample):
        """Track each pass's dirty set; return how many passes completed since the last sample.

        A pass starts with the dirty set and sends it down to QEMU's switch-over
        threshold, so the largest remaining size seen in a pass is the best view
        of its dirty set; the smallest is only the threshold.  Iteration 0 (before
        memory moves, e.g. while disks are mirrored) is no pass, and the first
        pass sends all memory, not a dirty set.
        """
        iteration = sample.memory_iteration
        remaining = sample.remaining
        if iteration <= self._iteration:
            if iteration == self._iteration >= 2 and remaining is not None:
                self._pass_dirty_set = max(self._pass_dirty_set or 0, remaining)
            return 0
        if self._pass_dirty_set is not None:
            self._remember_dirty_set(self._pass_dirty_set)
        passes_done = iteration - max(self._iteration, 1)
        self._iteration = iteration
        self._pass_dirty_set = remaining if iteration >= 2 else None
        return passes_done

    def _remember_dirty_set(self, dirty_set):
        self._recent_dirty_sets.append(dirty_set)
        if len(self._recent_dirty_sets) > self.policy.stall_window:
            leaving = self._recent_dirty_sets.popleft()
            self._older_dirty_set = leaving if self._older_dirty_set is None else min(self._older_dirty_set, leaving)

    def _is_stalled(self):
        if self._older_dirty_set is None:
            return False
        return min(self._recent_dirty_sets) >= self.policy.min_progress_ratio * self._older_dirty_set

    def _early_postcopy_reason(self, sample):
        """Why post-copy should start now, before any stall (policy.postcopy_start), or None."""
        start = self.policy.postcopy_start
        bandwidth = self._last_bandwidth_bps
        if start == "after_first_pass" and sample.remaining is not None and bandwidth:
            fits = bandwidth * self.policy.max_downtime_ms / 1000.0
            if sample.remaining > fits:
                return ("pass %d left %s to send, more than the %s that fit in max_downtime=%d ms at %s: another "
                        "pre-copy pass would resend what the guest keeps dirtying" % (
                            self.completed_passes, _mib(sample.remaining), _mib(fits), self.policy.max_downtime_ms,
                            _mib_s(bandwidth)))
        if start == "when_outpaced" and self._outpaced():
            return ("pass %d: the guest dirties memory at %s, at least %.2f x the %s the migration moves, so "
                    "pre-copy cannot converge" % (self.completed_passes, _mib_s(self._last_dirty_rate_bps),
                                                  self.policy.min_progress_ratio, _mib_s(bandwidth)))
        return None

    def _outpaced(self):
        """True when the measured rates say no pass can shrink the dirty set enough: a pass sending D
        bytes at bandwidth B lets the guest dirty R*D/B, so the next one starts at R/B times this one."""
        dirty, bandwidth = self._last_dirty_rate_bps, self._last_bandwidth_bps
        if not dirty or not bandwidth or self.completed_passes < 1:
            return False
        return dirty >= self.policy.min_progress_ratio * bandwidth

    def _throttle_exhausted(self):
        """True when auto-converge cannot make the guest dirty memory any slower."""
        if not self.auto_converge_enabled or self._throttle_max >= self.policy.max_throttle_percent:
            return True
        # QEMU raises the throttle after every pass that does not shrink enough;
        # a throttle flat for a whole stall window is capped (or never engages).
        return self.completed_passes - self._throttle_rose_at_pass >= self.policy.stall_window

    def _decide_after_passes(self, sample, t_ms, passes_done):
        actions = self._policy_after_passes(sample, t_ms, passes_done)
        if self.course is not None and self.state == EngineState.PRECOPY:
            actions += self._course_correction(sample, t_ms)
        return actions

    def _course_correction(self, sample, t_ms):
        correction = self.course.at_pass_end(sample, self)
        if correction is None or (correction.kind == ActionKind.START_POSTCOPY and not self.postcopy_possible):
            return []
        self._course_remedy = correction.remedy
        return [self._emit(correction.kind, None, t_ms, sample, correction.reason)]

    def _policy_after_passes(self, sample, t_ms, passes_done):
        policy = self.policy
        self._stalled_passes = self._stalled_passes + passes_done if self._is_stalled() else 0
        early = self._early_postcopy_reason(sample) if self.postcopy_possible else None
        if early:
            return [self._emit(ActionKind.START_POSTCOPY, None, t_ms, sample, early)]
        actions = []
        target = policy.downtime_for_raises(max(0, self.completed_passes - 1))
        if self._downtime_ms is None or target > self._downtime_ms:
            actions.append(self._emit(ActionKind.SET_MAX_DOWNTIME, target, t_ms, sample,
                                      "pass %d completed without converging; downtime step towards %d ms"
                                      % (self.completed_passes, policy.max_downtime_ms)))
        if self._downtime_ms < policy.max_downtime_ms:
            return actions
        if self.postcopy_possible:
            if self._stalled_passes >= policy.postcopy_after_stalled_passes:
                actions.append(self._emit(ActionKind.START_POSTCOPY, None, t_ms, sample,
                                          "stalled for %d passes at max_downtime=%d ms"
                                          % (self._stalled_passes, policy.max_downtime_ms)))
        elif self._stalled_passes >= policy.stalled_abort_passes and self._throttle_exhausted():
            actions.append(self._emit(ActionKind.ABORT, None, t_ms, sample,
                                      "stalled for %d passes at max_downtime=%d ms with auto-converge exhausted "
                                      "and post-copy not allowed" % (self._stalled_passes, policy.max_downtime_ms)))
        return actions

    # -- advice helpers -----------------------------------------------------

    def _bandwidth_needs(self):
        # Each pass re-sends what the guest dirtied during the previous one: a pass
        # sending D bytes at bandwidth B lasts D/B s while the guest dirties R*D/B
        # bytes, so every pass shrinks the dirty set by the factor R/B.  For the
        # progress the policy demands, R/B <= min_progress_ratio: B >= R / ratio.
        # QEMU switches over once the rest fits into the downtime T, D <= B*T; the
        # final dirty set is about the smallest recent one (S), so B >= S / T.
        # The need is the larger of the two.
        dirty_rate = self._last_dirty_rate_bps
        dirty_set = self._dirty_set_level()
        by_dirty_rate = None if dirty_rate is None else dirty_rate / self.policy.min_progress_ratio
        by_downtime = None if dirty_set is None else dirty_set * 1000.0 / self.policy.max_downtime_ms
        return by_dirty_rate, by_downtime

    def _dirty_set_level(self):
        """The smallest recent dirty set, about what the final stop-and-copy would send (None: none seen)."""
        candidates = list(self._recent_dirty_sets)
        if self._pass_dirty_set is not None:
            candidates.append(self._pass_dirty_set)
        return min(candidates) if candidates else None

    def _measured_sentence(self, dirty_set):
        dirty = self._last_dirty_rate_bps
        bandwidth = self._last_bandwidth_bps
        if dirty_set is not None:
            progress = "each pass still starts with about %s" % _mib(dirty_set)
        else:
            progress = "%s remained in the first pass" % _mib(self._last_sample.remaining or 0)
        return "The guest dirties memory at %s while the migration moves %s; %s." % (
            _mib_s(dirty) if dirty is not None else "an unreported rate",
            _mib_s(bandwidth) if bandwidth is not None else "an unreported rate",
            progress,
        )

    def _downtime_hint(self, dirty_set):
        bandwidth = self._last_bandwidth_bps
        dirty = self._last_dirty_rate_bps or 0
        if not bandwidth or dirty_set is None:
            return ""
        if bandwidth <= dirty:
            return " (that alone cannot help while the dirty rate exceeds the bandwidth)"
        return " (about %d ms at the current bandwidth)" % -(-dirty_set * 1000 // bandwidth)

    def _postcopy_sentence(self):
        risk = ("post-copy runs the guest on the destination at once and fetches the remaining pages on demand, so "
                "it always finishes, but until it does the guest's memory is split between the hosts: if the network "
                "or either host fails, the guest is lost, and its memory accesses are slower meanwhile.")
        if self.postcopy_possible:
            return "Post-copy was allowed: " + risk
        if self.policy.allow_postcopy:
            return ("Post-copy was allowed but the job was started without the POSTCOPY flag; start it with "
                    "allow_postcopy=true to use it: " + risk)
        return "Setting allow_postcopy=true would finish it: " + risk


def _mib(value):
    return "%.1f MiB" % (value / MIB)


def _mib_s(value):
    return "%.1f MiB/s" % (value / MIB)
