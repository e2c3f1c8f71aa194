# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    InvalidInputError,
    KvmopsError,
    OperationTimeoutError,
)
from ansible_collections.kvmops.migration.plugins.module_utils._waiter import Waiter, wait_until


class FakeClock:
    """Time that only moves when sleep() is called."""

    def __init__(self, start=1000.0):
        self.now = start
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def answers(*values):
    """A predicate returning the given values in turn."""
    it = iter(values)
    calls = []

    def predicate():
        value = next(it)
        calls.append(value)
        return value

    predicate.calls = calls
    return predicate


def test_returns_first_truthy_value_without_sleeping():
    clock = FakeClock()
    assert wait_until(lambda: {'state': 'done'}, 10, 1, clock=clock, sleep=clock.sleep) == {'state': 'done'}
    assert clock.sleeps == []


def test_polls_until_truthy_and_returns_that_value():
    clock = FakeClock()
    predicate = answers(None, 0, '', 'ready')
    assert wait_until(predicate, 10, 2, clock=clock, sleep=clock.sleep) == 'ready'
    assert predicate.calls == [None, 0, '', 'ready']
    assert clock.sleeps == [2, 2, 2]


def test_times_out_with_typed_error():
    clock = FakeClock()
    with pytest.raises(OperationTimeoutError) as info:
        wait_until(lambda: False, 5, 2, clock=clock, sleep=clock.sleep, description='the job to finish')
    err = info.value
    assert isinstance(err, KvmopsError)
    assert err.msg == 'Timed out after 5.0s waiting for the job to finish'
    assert err.details == dict(timeout_s=5, waited_s=5.0, attempts=4)
    assert err.last_value is False
    assert err.remedy
    # never sleeps past the deadline: 2 + 2 + 1, then a last check at the deadline
    assert clock.sleeps == [2, 2, 1]


def test_last_value_is_reported_on_timeout():
    clock = FakeClock()
    with pytest.raises(OperationTimeoutError) as info:
        wait_until(answers(None, [], {}), 2, 1, clock=clock, sleep=clock.sleep)
    assert info.value.last_value == {}


def test_zero_timeout_checks_once():
    clock = FakeClock()
    predicate = answers(False)
    with pytest.raises(OperationTimeoutError):
        wait_until(predicate, 0, 1, clock=clock, sleep=clock.sleep)
    assert predicate.calls == [False]
    assert clock.sleeps == []


def test_slow_predicate_counts_against_the_deadline():
    clock = FakeClock()

    def slow():
        clock.now += 3
        return False

    with pytest.raises(OperationTimeoutError) as info:
        wait_until(slow, 5, 1, clock=clock, sleep=clock.sleep)
    assert info.value.details['attempts'] == 2
    assert clock.sleeps == [1]


def test_predicate_exceptions_propagate():
    def broken():
        raise RuntimeError('libvirt went away')

    with pytest.raises(RuntimeError):
        wait_until(broken, 5, 1, clock=FakeClock(), sleep=pytest.fail)


@pytest.mark.parametrize('timeout_s, interval_s', [(-1, 1), (None, 1), (5, 0), (5, -1), (5, None)])
def test_rejects_bad_arguments(timeout_s, interval_s):
    with pytest.raises(InvalidInputError):
        wait_until(lambda: True, timeout_s, interval_s)


def test_waiter_reports_elapsed_and_remaining():
    clock = FakeClock()
    waiter = Waiter(10, 1, clock=clock, sleep=clock.sleep)
    assert waiter.remaining() == 10
    assert not waiter.expired()
    clock.now += 4
    assert waiter.elapsed() == 4
    assert waiter.remaining() == 6
    clock.now += 7
    assert waiter.remaining() == 0.0
    assert waiter.expired()


def test_uses_monotonic_clock_by_default():
    import time

    waiter = Waiter(1)
    assert waiter._clock is time.monotonic  # pylint: disable=protected-access
    assert wait_until(lambda: 'yes', 1, 0.01) == 'yes'
