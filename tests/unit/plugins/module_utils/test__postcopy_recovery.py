# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Post-copy recovery: when to wait, when to resume (VIR_MIGRATE_POSTCOPY_RESUME), when to leave the
guest to the operator's procedure; and the libvirt calls a resume makes."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils import _migration, _postcopy_recovery
from ansible_collections.kvmops.migration.plugins.module_utils._postcopy_recovery import (
    GIVE_UP,
    NOTHING,
    RESUME,
    STALL_S,
    VIR_DOMAIN_ABORT_JOB_POSTCOPY,
    VIR_MIGRATE_POSTCOPY,
    VIR_MIGRATE_POSTCOPY_RESUME,
    WAIT,
    PostcopyRecovery,
    decide,
    format_lib,
)

NEW, OLD, CRASHING = 11004000, 8004000, 11003000
UUID = '8b315ef4-505e-4594-a5a2-abdc91383df0'


def test_nothing_to_do_for_a_guest_that_is_not_split():
    assert decide(False, NEW, NEW, True, 100, 0, False, None)[0] == NOTHING


def test_libvirt_older_than_8_5_on_either_host_leaves_the_exact_report():
    action, why = decide(True, OLD, NEW, True, 100, 0, False, None)
    assert action == GIVE_UP and 'libvirt 8.5 or newer' in why and '8.4.0' in why


@pytest.mark.parametrize('reachable,stalled,attempts,since,expected', [
    (False, STALL_S + 50, 0, None, WAIT),  # the link is still down
    (True, 5, 0, None, WAIT),             # QEMU's own stream still moves: it may finish by itself
    (True, STALL_S, 0, None, RESUME),     # no progress for long enough, the destination answers
    (True, None, 0, None, RESUME),
    (True, STALL_S + 50, 1, 3, WAIT),     # the last try failed just now
    (True, STALL_S + 50, 1, 30, RESUME),
    (True, STALL_S + 50, 3, 30, GIVE_UP),  # enough tries
])
def test_the_decision(reachable, stalled, attempts, since, expected):
    assert decide(True, NEW, NEW, reachable, stalled, attempts, False, since)[0] == expected


def test_the_operator_sets_how_long_a_stalled_stream_waits():
    # postcopy_resume_after: 30 where TCP is known to give up at once (the lab's recovery case)
    assert decide(True, NEW, NEW, True, 30, 0, False, None, stall_limit_s=30)[0] == RESUME
    assert decide(True, NEW, NEW, True, 29, 0, False, None, stall_limit_s=30)[0] == WAIT
    assert decide(True, NEW, NEW, True, 30, 0, False, None)[0] == WAIT  # the default: STALL_S


@pytest.mark.parametrize('destination', [11002000, 11003000, 11003001])
def test_no_resume_towards_a_libvirt_whose_destination_daemon_crashes_on_it(destination):
    action, why = decide(True, NEW, destination, True, STALL_S + 50, 0, False, None)
    assert action == GIVE_UP and 'crashes' in why and '11.4' in why and format_lib(destination) in why


@pytest.mark.parametrize('source,destination', [(CRASHING, NEW), (CRASHING, 12009000), (NEW, 11001000)])
def test_the_crash_is_the_destinations_only(source, destination):
    # The source's half of a resume does not go through the defective Prepare.
    assert decide(True, source, destination, True, STALL_S + 50, 0, False, None)[0] == RESUME


def test_a_resume_that_cost_the_destination_its_daemon_is_never_repeated():
    action, why = decide(True, NEW, NEW, True, 100, 1, True, 60)
    assert action == GIVE_UP and 'crashed' in why


class LvError(Exception):
    def get_error_code(self):
        return 1

    def get_error_domain(self):
        return 0

    def get_error_message(self):
        return str(self)


class Dom:
    def __init__(self, state, remaining=(100,)):
        self._state = state
        self.remaining = list(remaining)
        self.calls = []

    def state(self, flags=0):
        return self._state

    def isPersistent(self):  # noqa: N802
        return True

    def jobStats(self, flags=0):  # noqa: N802
        return {'memory_remaining': self.remaining[0] if len(self.remaining) == 1 else self.remaining.pop(0)}

    def jobInfo(self):  # noqa: N802
        return [2]

    def abortJobFlags(self, flags):  # noqa: N802
        self.calls.append(('abortJobFlags', flags))

    def migrateToURI3(self, uri, params, flags):  # noqa: N802
        self.calls.append(('migrateToURI3', uri, params, flags))
        if getattr(self, 'fail', None):
            raise LvError(self.fail)


class Conn:
    def __init__(self, dom, version=NEW, alive=True):
        self.dom, self.version, self.alive = dom, version, alive

    def lookupByUUIDString(self, uuid):  # noqa: N802
        return self.dom

    def getLibVersion(self):  # noqa: N802
        return self.version

    def isAlive(self):  # noqa: N802
        return self.alive

    def getHostname(self):  # noqa: N802
        return 'host-d'


class Spec:
    flags = 1 | 2 | 8   # LIVE | PEER2PEER | PERSIST_DEST
    params = {'bandwidth.postcopy': 4}


@pytest.fixture(autouse=True)
def lv_errors(monkeypatch):
    for module in (_postcopy_recovery, _migration):
        monkeypatch.setattr(module, 'is_libvirt_error', lambda exc: isinstance(exc, LvError))
    monkeypatch.setattr(_migration, 'job_of', lambda dom, disks=None: None)


def recovery(clock):
    result = {}
    return PostcopyRecovery(UUID, 'qemu+ssh://host-d/system', Spec(), result, clock=lambda: clock[0]), result


def test_a_stalled_split_guest_is_paused_then_resumed_with_the_original_flags():
    src_dom, dst_dom = Dom([3, 13]), Dom([1, 11])
    src, dst = Conn(src_dom), Conn(dst_dom)
    clock = [0.0]
    rec, result = recovery(clock)
    rec.step(src, dst, 'postcopy_split')
    assert result['postcopy_recovery']['action'] == WAIT and src_dom.calls == []
    clock[0] = STALL_S - 1
    rec.step(src, dst, 'postcopy_split')
    assert src_dom.calls == [], 'no progress, but not for long enough since the destination answers'
    clock[0] = STALL_S + 1
    rec.step(src, dst, 'postcopy_split')
    assert src_dom.calls[0] == ('abortJobFlags', VIR_DOMAIN_ABORT_JOB_POSTCOPY)
    assert src_dom.calls[1] == ('migrateToURI3', 'qemu+ssh://host-d/system', Spec.params,
                                Spec.flags | VIR_MIGRATE_POSTCOPY | VIR_MIGRATE_POSTCOPY_RESUME)
    assert result['postcopy_recovery']['attempts'][0]['result'] == 'resumed'


def test_progress_of_qemus_own_stream_keeps_the_module_waiting():
    src_dom = Dom([3, 13], remaining=(300, 250, 200, 150))
    clock = [0.0]
    rec, result = recovery(clock)
    for t in (0, 15, 30, 45):
        clock[0] = t
        rec.step(Conn(src_dom), Conn(Dom([1, 11])), 'postcopy_split')
    assert result['postcopy_recovery']['action'] == WAIT and src_dom.calls == []


def test_a_destination_daemon_lost_during_the_resume_ends_the_tries():
    src_dom = Dom([3, 13])
    src_dom.fail = 'internal error: client socket is closed'
    dst = Conn(Dom([1, 11]))
    clock = [0.0]
    rec, result = recovery(clock)
    rec.step(Conn(src_dom), dst, 'postcopy_split')
    clock[0] = STALL_S + 1
    rec.step(Conn(src_dom), dst, 'postcopy_split')
    assert result['postcopy_recovery']['attempts'][0]['error'] == 'internal error: client socket is closed'
    dst.alive = False      # its daemon restarted: our connection died
    clock[0] += 60
    rec.step(Conn(src_dom), Conn(Dom([1, 11])), 'postcopy_split')
    assert result['postcopy_recovery']['action'] == GIVE_UP
    assert [c[0] for c in src_dom.calls].count('migrateToURI3') == 1


def test_other_verdicts_and_an_old_libvirt_touch_nothing():
    src_dom = Dom([3, 13])
    rec, result = recovery([100.0])
    rec.step(Conn(src_dom), Conn(Dom([1, 11])), 'destination')
    assert result == {}
    rec.step(Conn(src_dom, version=OLD), Conn(Dom([1, 11]), version=OLD), 'postcopy_split')
    assert result['postcopy_recovery']['action'] == GIVE_UP and src_dom.calls == []
