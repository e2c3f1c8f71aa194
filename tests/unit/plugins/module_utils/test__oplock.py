# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._oplock import OperationLock, OperationLockedError


def test_holder_is_recorded_while_held_and_cleared_on_release(tmp_path):
    path = str(tmp_path / 'state' / 'operation.lock')
    with OperationLock(path, 'evacuate', 0, describe={'progress_file': '/x.log'}) as lock:
        holder = lock.holder()
        assert holder['action'] == 'evacuate' and holder['progress_file'] == '/x.log' and holder['pid'] > 0
    assert OperationLock(path, 'evacuate', 0).holder() is None


def test_second_run_refuses_at_once_naming_the_holder(tmp_path):
    path = str(tmp_path / 'operation.lock')
    with OperationLock(path, 'evacuate', 0):
        with pytest.raises(OperationLockedError) as err:
            OperationLock(path, 'rebalance', 0).acquire()
    assert 'refusing to rebalance' in err.value.msg and 'action=evacuate' in err.value.msg
    assert 're-run moves only what is left' in err.value.remedy
    assert err.value.details['lock_holder']['action'] == 'evacuate'
    # The refused run left the lock usable.
    with OperationLock(path, 'rebalance', 0):
        pass


def test_second_run_waits_for_the_first_then_proceeds(tmp_path):
    path = str(tmp_path / 'operation.lock')
    first = OperationLock(path, 'evacuate', 0).acquire()
    seen = []
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds
        if now[0] >= 3:
            first.release()

    second = OperationLock(path, 'evacuate', 60, clock=lambda: now[0], sleep=sleep, on_wait=seen.append)
    with second:
        assert second.waited_s == 3.0
    assert len(seen) == 1 and seen[0]['action'] == 'evacuate'


def test_wait_ends_in_refusal_at_the_timeout(tmp_path):
    path = str(tmp_path / 'operation.lock')
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    with OperationLock(path, 'evacuate', 0):
        with pytest.raises(OperationLockedError):
            OperationLock(path, 'evacuate', 5, clock=lambda: now[0], sleep=sleep).acquire()
    assert now[0] == 5.0


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    """The kernel drops flock locks with their holder: a SIGKILLed run (ansible-playbook's
    async job killed with the machine, say) never blocks the next run."""
    path = str(tmp_path / 'operation.lock')
    holder = subprocess.Popen([sys.executable, '-c', (
        'import fcntl, os, sys, time\n'
        'fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n'
        'fcntl.flock(fd, fcntl.LOCK_EX)\n'
        'os.write(fd, b\'{"action": "evacuate", "pid": %d}\' % os.getpid())\n'
        'print("held", flush=True)\n'
        'time.sleep(60)\n'), path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        with pytest.raises(OperationLockedError):
            OperationLock(path, 'evacuate', 0).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # Its description is still in the file, but the lock is free.
    assert json.loads(open(path).read())['pid'] == holder.pid
    start = time.monotonic()
    with OperationLock(path, 'evacuate', 0):
        pass
    assert time.monotonic() - start < 1
