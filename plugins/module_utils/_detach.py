# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run a long task in a detached process and return once it has started (``wait: false``).

The process forks *before* any libvirt connection or thread exists: libvirt is not fork-safe
once connections (and their event-loop thread) are open. The detached process does all the
work, validation included, so bad input still fails the task and changes nothing. It tells
the waiting module what happened first over a pipe, one JSON line:

- ``started``: the work called ``announce(result)`` (the migration job is visible in libvirt);
  the module returns that result and the work goes on without it;
- ``finished`` / ``failed``: the work ended before announcing anything; the module returns
  (or fails with) its result as if it had waited.

The work's final result (or error) is also written to a report file the work names through
``report_to(path)``, so ``virt_migrate_info`` and a later ``virt_migrate`` can read it.
"""

from __future__ import annotations

import json
import os
import time

from ansible_collections.kvmops.migration.plugins.module_utils._errors import KvmopsError
from ansible_collections.kvmops.migration.plugins.module_utils._statefile import write_json


def pid_alive(pid):
    """True if a process with this pid exists (signal 0 probes without sending anything)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DetachedRun:
    """The detached process's side: ``announce`` once, ``report_to`` where the final result goes."""

    def __init__(self, channel):
        self._channel = channel
        self.report_path = None
        self.announced = False
        self._header = {}

    def report_to(self, path, header):
        """From now on the final result goes to ``path``; write ``header`` there at once
        (with this process's pid and ``running: true``) so others can see the run."""
        self.report_path = path
        self._header = dict(header, pid=os.getpid(), started_at=time.time())
        write_json(path, dict(self._header, running=True))

    def announce(self, result):
        """Hand ``result`` to the waiting module, which then exits; the work continues."""
        if not self.announced:
            self.announced = True
            self._send({'kind': 'started', 'result': result})

    def finish(self, kind, payload):
        final = None
        if self.report_path:
            final = dict(self._header, **payload)
            final.update(running=False, finished_at=time.time())
            if kind == 'failed':
                final['failed'] = True
            write_json(self.report_path, final)
        if not self.announced and self._send({'kind': kind, 'result': payload}) and final is not None:
            # The module that waited for this run received its result: nobody has to collect it
            # again. Had it died meanwhile (killed mid-wait), the next run hands the result over.
            write_json(self.report_path, dict(final, collected=True))

    def _send(self, message):
        """Write ``message`` to the waiting module; True if it was delivered."""
        if self._channel is None:
            return False
        delivered = True
        try:
            self._channel.write(json.dumps(message, default=str) + '\n')
            self._channel.close()
        except OSError:  # the module is gone: nothing left to tell it
            delivered = False
        self._channel = None
        return delivered


def run_detached(work):
    """Run ``work(run)`` (``run`` a DetachedRun) in a detached grandchild process.

    Returns ``('started' | 'finished', result)`` or raises KvmopsError for ``failed``.
    """
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked process
        _detached_child(work, read_fd, write_fd)
    os.close(write_fd)
    os.waitpid(child, 0)  # the first child exits at once, leaving the grandchild to init
    with os.fdopen(read_fd, encoding='utf-8') as channel:
        line = channel.readline()
    try:
        message = json.loads(line)
    except ValueError:
        raise KvmopsError('the detached migration process ended without reporting anything',
                          remedy='Run the task again with wait: true to see the error.')
    return unpack(message)


def unpack(message):
    """The module's view of the first message: (kind, result), or the KvmopsError it carries."""
    kind, result = message.get('kind'), dict(message.get('result') or {})
    if kind == 'failed':
        msg = result.pop('msg', 'the detached migration failed')
        remedy = result.pop('remedy', None)
        result.pop('failed', None)
        raise KvmopsError(msg, remedy=remedy, details=result)
    return kind, result


def _detached_child(work, read_fd, write_fd):  # pragma: no cover - runs in the forked process
    os.close(read_fd)
    os.setsid()  # no longer in the SSH session's process group: survives its end
    if os.fork() != 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the module's stdout is Ansible's channel: let it close
        os.dup2(devnull, fd)
    run = DetachedRun(os.fdopen(write_fd, 'w', encoding='utf-8'))
    try:
        run.finish('finished', dict(work(run)))
    except KvmopsError as exc:
        run.finish('failed', exc.as_fail_kwargs())
    except BaseException as exc:  # pylint: disable=broad-except
        # Reported, not raised: nobody is left to see a traceback of this process.
        run.finish('failed', {'msg': 'the detached migration stopped on an unexpected error: %r' % (exc,)})
    os._exit(0)
