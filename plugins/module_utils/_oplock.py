# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One guest-moving operation per host, and one operation per guest, at a time.

Two evacuations of the same host started together (two operators, an AWX job launched twice,
a re-run while the first run's async job is still going after its ``ansible-playbook`` was
killed) would plan from the same facts and race to move the same guests. ``OperationLock``
serialises them with ``flock`` on a file in the state directory: the kernel drops the lock when
its holder dies, so a killed run never leaves a stale lock behind. The holder writes who it is
into the file so a refused run can say what it waits for.

``GuestLock`` is the same lock for one guest (by UUID) on the host that operates on it: a
migration, a block copy or an evacuation's move of that guest holds it from the first look at
the guest to the last check of where it ended up, so a second operation on the same guest (a
second operator, an AWX job launched twice) waits or is refused instead of mistaking the first
one's destination copy for a leftover.
"""

from __future__ import annotations

import fcntl
import json
import os
import time

from ansible_collections.kvmops.migration.plugins.module_utils._errors import KvmopsError


class OperationLockedError(KvmopsError):
    """Another guest-moving operation holds this host's lock."""


class OperationLock:
    def __init__(self, path, action, timeout_s, poll_s=1.0, clock=time.monotonic, sleep=time.sleep,
                 describe=None, on_wait=None):
        self.path = path
        self.action = action
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.clock = clock
        self.sleep = sleep
        self.describe = describe or {}
        self.on_wait = on_wait  # called once with the holder's description when we must wait
        self.fd = None
        self.waited_s = 0.0

    def holder(self):
        """What the current holder wrote about itself (None when unreadable)."""
        try:
            with open(self.path, encoding='utf-8') as handle:
                return json.loads(handle.read() or 'null')
        except (OSError, ValueError):
            return None

    def acquire(self):
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        start = self.clock()
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if self.clock() - start >= self.timeout_s:
                        raise self._refusal()
                    if self.on_wait:
                        self.on_wait(self.holder() or {})
                        self.on_wait = None
                    self.sleep(self.poll_s)
        except BaseException:
            os.close(fd)
            raise
        self.waited_s = round(self.clock() - start, 1)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(dict(self.describe, action=self.action, pid=os.getpid(),
                                     started=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))).encode())
        self.fd = fd
        return self

    subject = 'guests of this host'
    remedy = ('Wait for that run to end (its progress file shows what it does) and run again: a re-run moves '
              'only what is left. Raise lock_timeout to wait longer. Never delete the lock file: the lock '
              'goes away by itself when its holder ends.')

    def _refusal(self):
        holder = self.holder() or {}
        who = 'another run (%s)' % ', '.join('%s=%s' % (k, holder[k]) for k in sorted(holder)) if holder else 'another run'
        return OperationLockedError(
            'refusing to %s: %s is operating on %s and holds %s (waited %ss)' % (
                self.action, who, self.subject, self.path, self.timeout_s),
            remedy=self.remedy, details={'lock_holder': holder})

    def release(self):
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


class GuestLock(OperationLock):
    """The lock of one guest (``state_dir/guests/<uuid>.lock``) on the host operating on it."""

    remedy = ('Wait for that operation to end and run again (a migration reports where the guest ended up; '
              'virt_migrate_info shows a running one). Raise lock_timeout to wait longer. Never delete the lock '
              'file: the lock goes away by itself when its holder ends.')

    def __init__(self, state_dir, uuid, guest, action, timeout_s, **kwargs):
        super(GuestLock, self).__init__(guest_lock_path(state_dir, uuid), action, timeout_s, **kwargs)
        self.subject = 'guest %s' % guest


def guest_lock_path(state_dir, uuid):
    """Where the lock of the guest with this UUID lives on a host."""
    return os.path.join(state_dir, 'guests', '%s.lock' % uuid)
