# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Polling with a monotonic deadline (private module_utils; API may change).

``wait_until(predicate, timeout_s, interval_s)`` calls ``predicate()`` until it
returns a truthy value, which it returns, or raises OperationTimeoutError once
``timeout_s`` seconds (of ``clock``, ``time.monotonic`` by default) have passed.
The clock and sleep function are injectable so tests need no real time.
"""

from __future__ import annotations

import time

from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError, OperationTimeoutError


class Waiter:
    """A deadline: ``timeout_s`` seconds from creation, measured with ``clock``."""

    def __init__(self, timeout_s, interval_s=1.0, clock=time.monotonic, sleep=time.sleep):
        if timeout_s is None or timeout_s < 0:
            raise InvalidInputError('timeout must be a number of seconds >= 0, got %r' % (timeout_s,))
        if interval_s is None or interval_s <= 0:
            raise InvalidInputError('poll interval must be a number of seconds > 0, got %r' % (interval_s,))
        self.timeout_s = timeout_s
        self.interval_s = interval_s
        self._clock = clock
        self._sleep = sleep
        self.started = clock()
        self.deadline = self.started + timeout_s
        self.attempts = 0

    def elapsed(self):
        """Seconds since the waiter was created."""
        return self._clock() - self.started

    def remaining(self):
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.deadline - self._clock())

    def expired(self):
        return self._clock() >= self.deadline

    def wait_until(self, predicate, description='the condition'):
        """Poll ``predicate`` until truthy (returned) or the deadline passes (OperationTimeoutError).

        The predicate is always called at least once, and once more right at the
        deadline if the last sleep ended there; sleeps never overshoot the deadline.
        Exceptions from the predicate propagate unchanged.
        """
        while True:
            self.attempts += 1
            value = predicate()
            if value:
                return value
            remaining = self.deadline - self._clock()
            if remaining <= 0:
                error = OperationTimeoutError(
                    'Timed out after %.1fs waiting for %s' % (self.elapsed(), description),
                    remedy='Raise the timeout if the operation is just slow, or check why it is not progressing.',
                    details=dict(timeout_s=self.timeout_s, waited_s=round(self.elapsed(), 3), attempts=self.attempts),
                )
                # The predicate's last (falsy) answer, for callers that want to report it.
                error.last_value = value
                raise error
            self._sleep(min(self.interval_s, remaining))


def wait_until(predicate, timeout_s, interval_s=1.0, clock=time.monotonic, sleep=time.sleep, description='the condition'):
    """Poll ``predicate()`` every ``interval_s`` seconds until it returns a truthy value.

    Returns that value; raises OperationTimeoutError after ``timeout_s`` seconds.
    """
    return Waiter(timeout_s, interval_s=interval_s, clock=clock, sleep=sleep).wait_until(predicate, description=description)
