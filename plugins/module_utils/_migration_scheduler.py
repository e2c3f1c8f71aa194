# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""When the migrations of a plan (``_placement.Plan``) may start: at most so many per source
and per destination at once, in plan order where possible (pure, no libvirt)."""

from __future__ import annotations

from collections import Counter, defaultdict, deque


class MigrationScheduler:
    """Hands out the migrations of a :class:`Plan` as concurrency allows.

    At most ``max_per_source`` migrations leave a host and ``max_per_dest``
    arrive on one at the same time.  A migration into a host also waits for the
    earlier planned migrations out of that host (rebalance plans count on the
    memory they free).  Migrations start in plan order where possible.

    Call :meth:`next_batch` whenever something finished, start what it returns,
    and call :meth:`done` for each migration that ended (succeeded or failed).
    """

    def __init__(self, plan, max_per_source=2, max_per_dest=1):
        if max_per_source < 1 or max_per_dest < 1:
            raise ValueError("max_per_source and max_per_dest must be at least 1")
        self.max_per_source = max_per_source
        self.max_per_dest = max_per_dest
        self._assignments = list(plan.assignments)
        self._index = {assignment.guest: index for index, assignment in enumerate(self._assignments)}
        self._pending = list(range(len(self._assignments)))
        self._in_flight = set()
        self._done = set()
        self._outgoing = defaultdict(deque)  # host -> plan indices of its unfinished outgoing moves, ascending
        for index, assignment in enumerate(self._assignments):
            self._outgoing[assignment.source].append(index)

    @property
    def pending(self) -> list:
        """Assignments not handed out yet, in plan order."""
        return [self._assignments[index] for index in self._pending]

    @property
    def in_flight(self) -> set:
        """Guests handed out and not reported done."""
        return set(self._in_flight)

    @property
    def finished(self) -> bool:
        """True when every migration was handed out and reported done."""
        return not self._pending and not self._in_flight

    def next_batch(self, running=()) -> list:
        """Assignments that may start now, in plan order.

        ``running``: guests of this plan whose migration runs now.  Together
        with the ones handed out and not done they count against the limits;
        any the scheduler did not hand out (started elsewhere) are taken as
        handed out, so report them with :meth:`done` too.
        """
        running = set(running)
        unknown = running - set(self._index)
        if unknown:
            raise ValueError("running guests not in this plan: %s" % ", ".join(sorted(unknown)))
        if running & self._done:
            raise ValueError("guests reported done are running: %s" % ", ".join(sorted(running & self._done)))
        self._in_flight |= running
        leaving = Counter(self._assignments[self._index[guest]].source for guest in self._in_flight)
        arriving = Counter(self._assignments[self._index[guest]].destination for guest in self._in_flight)
        batch = []
        still_pending = []
        for index in self._pending:
            assignment = self._assignments[index]
            if assignment.guest in running:
                continue  # adopted above
            outgoing = self._outgoing[assignment.destination]
            if (leaving[assignment.source] >= self.max_per_source
                    or arriving[assignment.destination] >= self.max_per_dest
                    or (outgoing and outgoing[0] < index)):
                still_pending.append(index)
                continue
            batch.append(assignment)
            leaving[assignment.source] += 1
            arriving[assignment.destination] += 1
            self._in_flight.add(assignment.guest)
        self._pending = still_pending
        return batch

    def done(self, guest) -> None:
        """Mark the migration of ``guest`` as ended."""
        if guest not in self._in_flight:
            raise ValueError("%s is not a migration in flight" % guest)
        self._in_flight.remove(guest)
        self._done.add(guest)
        index = self._index[guest]
        self._outgoing[self._assignments[index].source].remove(index)


def schedule(plan, max_per_source=2, max_per_dest=1) -> MigrationScheduler:
    """A :class:`MigrationScheduler` for ``plan``."""
    return MigrationScheduler(plan, max_per_source=max_per_source, max_per_dest=max_per_dest)
