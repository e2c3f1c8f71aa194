# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The progress file of an evacuation run: written by virt_evacuate (``ProgressLog``), read while
the run goes on by virt_evacuate_watch (``watch``), which also notices when the asynchronous job
that runs it has ended and hands its result over.

Kept apart from the evacuation code so that the watcher module, which runs every few seconds
during an evacuation on a host that is busy migrating, loads nothing but this file.
"""

from __future__ import annotations

import json
import os
import threading
import time

# The last line of every progress file (after the time stamp).
RUN_ENDED = '=== %s run ended'
# How often watch() looks at the job's results file and the progress file.
WATCH_INTERVAL_S = 0.1


class ProgressLog:
    """Timestamped lines, to a file on the host (tail -f it, or read it from AWX) and to the result."""

    def __init__(self, path=None, keep=400):
        self.path = path
        self.keep = keep
        self.lines = []   # the last `keep` lines
        self.total = 0    # lines written so far
        self._lock = threading.Lock()
        self._file = None
        if path:
            directory = os.path.dirname(path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            self._file = open(path, 'a', encoding='utf-8')

    def __call__(self, text):
        line = '%s %s' % (time.strftime('%H:%M:%S'), text)
        with self._lock:
            self.total += 1
            self.lines.append(line)
            if len(self.lines) > self.keep:
                del self.lines[:len(self.lines) - self.keep]
            if self._file:
                self._file.write(line + '\n')
                self._file.flush()

    def close(self):
        if self._file:
            self._file.close()
            self._file = None


class NoSuchJobError(Exception):
    """The asynchronous job's results file does not exist."""


def job_outcome(text):
    """(finished, result) of an asynchronous job from its results file's text, read the way
    ansible.builtin.async_status reads it: while the job runs the file holds ``started`` and no
    ``finished``; once it ended, the module's own result (or async_wrapper's, e.g. on a timeout).
    A file that is empty or not JSON yet counts as still running."""
    try:
        data = json.loads(text) if text and text.strip() else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return False, None
    if 'started' in data and not data.get('finished'):
        return False, None
    result = dict(data)
    result.pop('started', None)
    result['finished'] = True
    return True, result


def complete_lines(chunk):
    """(whole lines in ``chunk``, bytes they take): a line still being written is left for later."""
    end = chunk.rfind(b'\n') + 1
    return [line.decode('utf-8', 'replace') for line in chunk[:end].splitlines()], end


def read_from(path, offset):
    """The bytes of ``path`` from ``offset`` on (b'' if the file is not there yet)."""
    try:
        with open(path, 'rb') as stream:
            stream.seek(offset)
            return stream.read()
    except FileNotFoundError:
        return b''


def watch(progress_file, results_file, offset=0, timeout=3.0, clock=time.monotonic, sleep=time.sleep):
    """Wait up to ``timeout`` seconds for the job behind ``results_file`` to end, then return the
    progress lines written since ``offset``: {lines, offset, finished, result}. It returns as soon
    as the job has ended (within WATCH_INTERVAL_S), with the last lines and the job's result."""
    deadline = clock() + timeout
    while True:
        try:
            with open(results_file, encoding='utf-8') as stream:
                text = stream.read()
        except FileNotFoundError:
            raise NoSuchJobError(results_file)
        finished, result = job_outcome(text)
        # Read after the result: once the job has ended, its progress file is complete.
        lines, used = complete_lines(read_from(progress_file, offset))
        if finished or clock() >= deadline:
            return {'lines': lines, 'offset': offset + used, 'finished': finished, 'result': result}
        sleep(WATCH_INTERVAL_S)
