# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fixed cost of one migration: what runs at once, and where the time goes (private module_utils).

Besides moving memory, every ``virt_migrate`` pays the module's start, an SSH handshake to the
destination, the checks and the two-sided outcome check.  Work that does not depend on each
other runs at once (:func:`at_once`): the destination's connection (an SSH handshake, about
0.3 s) while the source is read, and the outcome reads of both hosts.  Each read still happens
and is still checked: only the waiting overlaps.  libvirt connections are thread-safe, and each
call here runs on its own host's connection.

:class:`PhaseClock` records where the seconds of one run went (the ``timings`` result of
``virt_migrate``, the benchmark's breakdown); :func:`process_age_s` is how long the module's
process ran before its work began (Python's start, AnsiballZ unpacking, imports).
"""

from __future__ import annotations

import os
import threading
import time


def at_once(*calls):
    """Run the zero-argument ``calls`` concurrently (the first in this thread) and return their
    results in order.  Every call runs to its end; then the first exception, in call order,
    is raised (so a failure is reported as if the calls had run one after the other)."""
    results = [None] * len(calls)
    errors = [None] * len(calls)

    def run(index):
        try:
            results[index] = calls[index]()
        except BaseException as exc:  # pylint: disable=broad-except
            errors[index] = exc

    threads = [threading.Thread(target=run, args=(index,), name='kvmops-at-once-%d' % index, daemon=True)
               for index in range(1, len(calls))]
    for thread in threads:
        thread.start()
    if calls:
        run(0)
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return results


class PhaseClock:
    """Seconds spent in each named phase of a run, in the order they ended.

    ``mark(name)`` ends the phase running since the previous mark (or the clock's start) and
    names it; a name marked again adds up.  ``as_dict()`` gives {phase: seconds} with
    ``total_s`` (start to the last mark) and any ``extra`` figures (e.g. ``module_start_s``)."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._started = self._last = clock()
        self._phases = {}
        self.extra = {}

    def mark(self, name):
        now = self._clock()
        self._phases[name] = self._phases.get(name, 0.0) + (now - self._last)
        self._last = now

    def as_dict(self):
        view = dict((name, round(seconds, 3)) for name, seconds in self._phases.items())
        view['total_s'] = round(self._last - self._started, 3)
        view.update((name, round(value, 3)) for name, value in self.extra.items() if value is not None)
        return view


def process_age_s(proc_root='/proc', pid='self'):
    """Seconds since this process started (None where /proc does not say): read when a module's
    work begins, it is the module's start-up (interpreter, AnsiballZ payload, imports)."""
    try:
        with open(os.path.join(proc_root, str(pid), 'stat')) as handle:
            stat = handle.read()
        with open(os.path.join(proc_root, 'uptime')) as handle:
            uptime_s = float(handle.read().split()[0])
        # Field 22 (starttime, in clock ticks since boot) counts from after the command name,
        # which may hold spaces: split after its closing parenthesis.
        fields = stat.rsplit(')', 1)[1].split()
        started_s = int(fields[19]) / float(os.sysconf('SC_CLK_TCK'))
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime_s - started_s)
