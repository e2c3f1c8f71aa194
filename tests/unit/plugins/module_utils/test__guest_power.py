# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError, OperationTimeoutError
from ansible_collections.kvmops.migration.plugins.module_utils._guest_power import GuestPower, power_plan

RUNNING, PAUSED, SHUTOFF = 1, 3, 5


class FakeDomain:
    """A domain that shuts off ``stops_after`` polls after the shutdown request (never: None)."""

    def __init__(self, name, active=True, persistent=True, state=None, stops_after=0):
        self._name, self.active, self.persistent = name, active, persistent
        self.state_number = state if state is not None else (RUNNING if active else SHUTOFF)
        self.stops_after = stops_after
        self.calls = []

    def name(self):
        return self._name

    def isActive(self):  # noqa: N802 (libvirt's name)
        if self.active and 'shutdown' in self.calls and self.stops_after is not None:
            if self.stops_after == 0:
                self.active, self.state_number = False, SHUTOFF
            else:
                self.stops_after -= 1
        return self.active

    def isPersistent(self):  # noqa: N802
        return self.persistent

    def state(self, flags):
        return [self.state_number, 0]

    def shutdown(self):
        self.calls.append('shutdown')

    def create(self):
        self.calls.append('create')
        self.active, self.state_number = True, RUNNING


class FakeConn:
    def __init__(self, *domains):
        self.domains = list(domains)

    def listAllDomains(self, flags):  # noqa: N802
        return self.domains


def power(conn, check_mode=False):
    """GuestPower on a clock that moves only when it sleeps."""
    now = [0.0]
    return GuestPower(conn, check_mode=check_mode, clock=lambda: now[0],
                      sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))


def facts(name, active=True, persistent=True, state=RUNNING):
    return {'name': name, 'active': active, 'persistent': persistent, 'state': state}


def test_the_plan_shuts_down_running_persistent_guests_and_leaves_shut_off_ones():
    actions, refusals = power_plan([facts('a'), facts('b', active=False, state=SHUTOFF)], 'shutdown')
    assert actions == {'a': 'shutdown', 'b': None} and refusals == []


def test_transient_and_paused_guests_are_refused():
    actions, refusals = power_plan([facts('t', persistent=False), facts('p', state=PAUSED)], 'shutdown')
    assert 't is transient' in refusals[0] and 'p is paused' in refusals[1]


def test_the_plan_starts_what_is_off():
    assert power_plan([facts('a'), facts('b', active=False)], 'running') == ({'a': None, 'b': 'start'}, [])


def test_shutdown_waits_for_every_guest_and_reports_what_runs():
    slow, fast, other = FakeDomain('slow', stops_after=3), FakeDomain('fast'), FakeDomain('other')
    result = power(FakeConn(slow, fast, other)).apply(['slow', 'fast'], 'shutdown', 60)
    assert slow.calls == ['shutdown'] and fast.calls == ['shutdown'] and other.calls == []
    assert result['changed'] and result['running'] == ['other']
    assert result['guests'][0] == {'name': 'slow', 'before': 'running', 'after': 'shut off', 'changed': True}


def test_a_guest_that_ignores_the_request_times_out_and_is_never_forced():
    stubborn = FakeDomain('stubborn', stops_after=None)
    with pytest.raises(OperationTimeoutError, match='stubborn did not shut down within 5s'):
        power(FakeConn(stubborn)).apply(['stubborn'], 'shutdown', 5)
    assert stubborn.calls == ['shutdown'] and stubborn.active


def test_a_refusal_changes_nothing():
    good, transient = FakeDomain('good'), FakeDomain('t', persistent=False)
    with pytest.raises(InvalidInputError, match='t is transient'):
        power(FakeConn(good, transient)).apply(['good', 't'], 'shutdown', 5)
    assert good.calls == [] and transient.calls == []


def test_an_unknown_guest_is_refused():
    with pytest.raises(InvalidInputError, match='no guest ghost on this host'):
        power(FakeConn(FakeDomain('a'))).apply(['ghost'], 'running', 5)


def test_check_mode_reports_and_changes_nothing():
    dom = FakeDomain('a')
    result = power(FakeConn(dom), check_mode=True).apply(['a'], 'shutdown', 5)
    assert dom.calls == [] and result['changed'] and result['guests'][0]['after'] == 'shut off'
    assert result['running'] == ['a']


def test_start_and_no_names():
    off = FakeDomain('off', active=False)
    result = power(FakeConn(off)).apply(['off'], 'running', 5)
    assert off.calls == ['create'] and result['running'] == ['off']
    assert power(FakeConn(off)).apply([], 'shutdown', 5) == {'changed': False, 'guests': [], 'running': ['off']}
