# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where guests should go: evacuation planning, migration scheduling, rebalancing.

Pure and fast: plain data in, plain data out, no libvirt.  Memory is in bytes.

* :func:`plan_evacuation` places every guest of the hosts being emptied.
* :func:`schedule` turns a plan into batches that can run concurrently.
* :func:`plan_rebalance` evens out memory use with few migrations.

Placement rules shared by both planners (a host "fits" a guest when all hold):

* never a host being evacuated, in maintenance or excluded by the caller;
* only hosts in the guest's ``allowed_hosts`` (the hosts that passed preflight
  for it) when that is not None;
* free memory after placement stays at or above the host's reserve,
  ``max(memory_margin_bytes, memory_margin_ratio * memory_total)`` (room for
  QEMU overhead and the host itself);
* used vCPUs stay at or below ``vcpus * max_vcpu_overcommit``;
* two guests sharing an ``anti_affinity`` group never share a host, counting
  the guests already there.

Among the hosts that fit, the evacuation prefers the one with the most memory
left above its reserve after placement (the most free memory, when reserves
are equal), then the lower vCPU load, then the name; ties never depend on the
input order.

Guests that are not running are planned like running ones, with their memory
and vCPUs reserved on the destination, so that starting them later fits; they
free nothing on their source.
"""

from __future__ import annotations

import bisect
import heapq
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import NamedTuple

GIB = 1 << 30
DEFAULT_MEMORY_MARGIN_BYTES = 1 * GIB
DEFAULT_MEMORY_MARGIN_RATIO = 0.05
DEFAULT_MAX_VCPU_OVERCOMMIT = 4.0
# How many blocking hosts a reason names before it summarises.
REASON_EXAMPLES = 3


@dataclass(frozen=True)
class HostInfo:
    """A hypervisor: memory in bytes; ``vcpus`` are its logical CPUs."""

    name: str
    memory_total: int
    memory_free: int
    vcpus: int
    vcpus_used: int
    maintenance: bool = False


@dataclass(frozen=True)
class GuestInfo:
    """A guest on ``host``.

    ``anti_affinity``: group names; ``allowed_hosts``: the hosts that passed
    preflight for this guest (None = any host); ``running``: False for a
    defined but shut-off guest.
    """

    name: str
    host: str
    memory: int
    vcpus: int
    anti_affinity: tuple = ()
    allowed_hosts: frozenset | None = None
    running: bool = True


class Assignment(NamedTuple):
    """Migrate ``guest`` from ``source`` to ``destination``."""

    guest: str
    source: str
    destination: str


class Unplaceable(NamedTuple):
    """A guest no host fits, and why."""

    guest: str
    reason: str


@dataclass
class Plan:
    """The result of a planner: migrations in the order to start them."""

    assignments: list = field(default_factory=list)
    unplaceable: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def as_dict(self) -> dict:
        """A JSON-friendly view for module results."""
        return {
            "assignments": [assignment._asdict() for assignment in self.assignments],
            "unplaceable": [item._asdict() for item in self.unplaceable],
            "notes": list(self.notes),
        }


def _gib(value):
    return "%.1f GiB" % (value / GIB)


class _Host:
    """Planning state of a host: what is left after the moves planned so far."""

    __slots__ = ("name", "total", "free", "vcpus", "vcpus_used", "reserve", "vcpu_limit", "version")

    def __init__(self, info, margin_bytes, margin_ratio, overcommit):
        self.name = info.name
        self.total = info.memory_total
        self.free = info.memory_free
        self.vcpus = info.vcpus
        self.vcpus_used = info.vcpus_used
        self.reserve = max(margin_bytes, int(margin_ratio * info.memory_total))
        self.vcpu_limit = info.vcpus * overcommit
        self.version = 0  # bumped on every change; heap entries of older versions are stale

    @property
    def headroom(self):
        """Memory a guest may still take: free memory above the reserve."""
        return self.free - self.reserve

    @property
    def spare_vcpus(self):
        return self.vcpu_limit - self.vcpus_used

    @property
    def load(self):
        return self.vcpus_used / self.vcpus if self.vcpus else float("inf")

    @property
    def used_ratio(self):
        return (self.total - self.free) / self.total if self.total else 0.0

    def preference(self):
        """Heap key: most memory left above the reserve, then the lower vCPU load, then the name."""
        return (-self.headroom, self.load, self.name, self.version)


class _Cluster:
    """Hosts, their planned capacity and who shares a host with whom."""

    def __init__(self, guests, hosts, margin_bytes, margin_ratio, overcommit):
        if margin_bytes < 0 or margin_ratio < 0 or overcommit <= 0:
            raise ValueError("memory margins must be >= 0 and max_vcpu_overcommit > 0")
        self.overcommit = overcommit
        self.hosts = {}
        for info in hosts:
            if info.name in self.hosts:
                raise ValueError("host %s is listed twice" % info.name)
            self.hosts[info.name] = _Host(info, margin_bytes, margin_ratio, overcommit)
        seen = set()
        self.group_members = defaultdict(lambda: defaultdict(list))  # group -> host -> guest names
        self.group_hosts = defaultdict(set)  # group -> hosts with at least one member
        for guest in guests:
            if guest.name in seen:
                raise ValueError("guest %s is listed twice" % guest.name)
            seen.add(guest.name)
            for group in guest.anti_affinity:
                self.group_members[group][guest.host].append(guest.name)
                self.group_hosts[group].add(guest.host)

    def blocked_hosts(self, guest):
        """Hosts holding a guest that shares an anti-affinity group with ``guest`` (a set; do not modify)."""
        groups = guest.anti_affinity
        if len(groups) == 1:
            return self.group_hosts[next(iter(groups))]
        return set().union(*(self.group_hosts[group] for group in groups))

    def rejection(self, guest, host):
        """Why ``host`` cannot take ``guest`` ("memory", "vcpu" or "anti_affinity"), or None if it can.

        ``host`` is never the guest's own host, so every group member there is another guest.
        """
        if host.headroom < guest.memory:
            return "memory"
        if host.spare_vcpus < guest.vcpus:
            return "vcpu"
        if any(host.name in self.group_hosts[group] for group in guest.anti_affinity):
            return "anti_affinity"
        return None

    def move(self, guest, destination):
        """Account for ``guest`` leaving ``guest.host`` for ``destination`` (each guest moves at most once)."""
        source = self.hosts.get(guest.host)
        if source is not None and guest.running:
            source.free += guest.memory
            source.vcpus_used -= guest.vcpus
            source.version += 1
        destination.free -= guest.memory
        destination.vcpus_used += guest.vcpus
        destination.version += 1
        for group in guest.anti_affinity:
            members = self.group_members[group]
            members[guest.host].remove(guest.name)
            if not members[guest.host]:
                self.group_hosts[group].discard(guest.host)
            members[destination.name].append(guest.name)
            self.group_hosts[group].add(destination.name)

    def explain(self, guest, tried, blocked=()):
        """Why no host fits ``guest``.

        ``blocked``: candidate hosts ruled out by anti-affinity; ``tried``:
        (host, "memory" or "vcpu") for hosts found short of capacity.
        """
        parts = []
        if blocked:
            examples = []
            for name in heapq.nsmallest(REASON_EXAMPLES, blocked):
                group = next(group for group in guest.anti_affinity if name in self.group_hosts[group])
                examples.append("%s has %s (group %s)" % (name, _some(self.group_members[group][name]), group))
            parts.append("anti-affinity rules out %d host(s): %s%s"
                         % (len(blocked), "; ".join(examples), "; ..." if len(blocked) > REASON_EXAMPLES else ""))
        short_of_vcpus = [host for host, verdict in tried if verdict == "vcpu"]
        if short_of_vcpus:
            best = max(short_of_vcpus, key=lambda host: (host.spare_vcpus, host.name))
            parts.append("no %shost with %d vCPUs to spare under the overcommit limit %.1f (most is %d on host %s)"
                         % ("other " if parts else "", guest.vcpus, self.overcommit, max(0, best.spare_vcpus),
                            best.name))
        short_of_memory = [host for host, verdict in tried if verdict == "memory"]
        if short_of_memory:
            best = max(short_of_memory, key=lambda host: (host.headroom, host.name))
            parts.append("no %shost with enough free memory (needed %s, best %s free on host %s, which keeps %s "
                         "in reserve)" % ("other " if parts else "", _gib(guest.memory), _gib(best.free), best.name,
                                          _gib(best.reserve)))
        return "; ".join(parts)


def _some(names):
    """Up to REASON_EXAMPLES names, then how many more."""
    names = sorted(names)
    shown = ", ".join(names[:REASON_EXAMPLES])
    return shown if len(names) <= REASON_EXAMPLES else "%s and %d more" % (shown, len(names) - REASON_EXAMPLES)


class _Evacuation:
    """The search state of :func:`plan_evacuation`.

    ``by_preference`` is a heap of the available hosts in preference order,
    ``by_spare_vcpus`` one by spare vCPUs (for the vCPU check).  Both hold
    (key..., name, version) entries and are pruned lazily: an entry whose
    version is older than its host's is stale, the host has a newer entry.
    """

    def __init__(self, cluster, available, sources, maintenance, min_guest_vcpus):
        self.cluster = cluster
        self.available = available
        self.sources = sources
        self.maintenance = maintenance
        self.min_guest_vcpus = min_guest_vcpus
        self.by_preference = [cluster.hosts[name].preference() for name in available]
        self.by_spare_vcpus = [self._spare_entry(cluster.hosts[name]) for name in available]
        heapq.heapify(self.by_preference)
        heapq.heapify(self.by_spare_vcpus)

    @staticmethod
    def _spare_entry(host):
        return (-host.spare_vcpus, host.name, host.version)

    def _top(self, heap):
        """The host of the best fresh entry of ``heap`` (dropping stale ones), or None."""
        while heap:
            host = self.cluster.hosts[heap[0][-2]]
            if heap[0][-1] == host.version:
                return host
            heapq.heappop(heap)
        return None

    def place(self, guest):
        """Choose a host and book ``guest`` on it: (host, None), or (None, reason) when none fits."""
        host, reason = self._find(guest)
        if host is not None:
            self.cluster.move(guest, host)
            heapq.heappush(self.by_preference, host.preference())
            heapq.heappush(self.by_spare_vcpus, self._spare_entry(host))
        return host, reason

    def _find(self, guest):
        cluster = self.cluster
        eligible = self.available
        if guest.allowed_hosts is not None:
            eligible = self.available.intersection(guest.allowed_hosts)
        if not eligible:
            return None, self._eligibility_reason(guest)
        blocked = cluster.blocked_hosts(guest) & eligible if guest.anti_affinity else set()
        open_hosts = eligible - blocked if blocked else eligible
        if not open_hosts:
            return None, cluster.explain(guest, [], blocked)
        # Each heap is led by the host with the most of its resource left: when even
        # that one is short, no host fits and the guest costs O(1).  (vCPUs first: the
        # preference heap drops hosts that cannot take any guest's vCPUs.)
        most_vcpus = self._top(self.by_spare_vcpus)
        if most_vcpus.spare_vcpus < guest.vcpus:
            return None, cluster.explain(guest, [(most_vcpus, "vcpu")], blocked)
        most_memory = self._top(self.by_preference)
        if most_memory.headroom < guest.memory:
            return None, cluster.explain(guest, [(most_memory, "memory")], blocked)
        if 8 * len(open_hosts) <= len(self.available):
            # Few hosts are open to this guest (preflight, anti-affinity): comparing
            # them directly beats popping the many closed ones off the heap.
            best, tried = self._best_of(guest, open_hosts)
        else:
            best, tried = self._pop_best(guest, open_hosts)
        if best is None:
            return None, cluster.explain(guest, tried, blocked)
        return best, None

    def _best_of(self, guest, open_hosts):
        tried = []
        fitting = []
        for name in open_hosts:
            host = self.cluster.hosts[name]
            verdict = self.cluster.rejection(guest, host)
            if verdict is None:
                fitting.append(host)
            else:
                tried.append((host, verdict))
        best = min(fitting, key=_Host.preference) if fitting else None
        return best, tried

    def _pop_best(self, guest, open_hosts):
        """Pop hosts in preference order until one fits; put the others back.

        Stops as soon as a host lacks the memory: the rest have even less.
        Hosts that cannot take even the smallest guest's vCPUs are dropped.
        """
        heap = self.by_preference
        popped = []
        tried = []
        best = None
        while True:
            host = self._top(heap)
            if host is None:
                break
            if host.headroom < guest.memory:
                tried.append((host, "memory"))
                break
            entry = heapq.heappop(heap)
            if host.name not in open_hosts:
                popped.append(entry)
                continue
            verdict = self.cluster.rejection(guest, host)
            if verdict is None:
                best = host  # its entry goes stale when the guest is booked
                break
            tried.append((host, verdict))
            if verdict != "vcpu" or host.spare_vcpus >= self.min_guest_vcpus:
                popped.append(entry)
        for entry in popped:
            heapq.heappush(heap, entry)
        if best is None and not tried:
            # Every open host had been dropped from the heap for lack of vCPUs (by an earlier
            # guest's search): say so, rather than give no reason at all.
            tried = [(host, self.cluster.rejection(guest, host) or "vcpu")
                     for host in (self.cluster.hosts[name] for name in sorted(open_hosts))]
        return best, tried

    def _eligibility_reason(self, guest):
        """Why no host is even a candidate for ``guest``."""
        def unavailability(name):
            if name not in self.cluster.hosts:
                return "unknown"
            if name in self.sources:
                return "being evacuated"
            if name in self.maintenance:
                return "in maintenance"
            return "excluded"

        if guest.allowed_hosts is not None:
            if not guest.allowed_hosts:
                return "excluded by preflight: no host passed preflight for this guest"
            return "excluded by preflight: it passed preflight only on %s" % ", ".join(
                "%s (%s)" % (name, unavailability(name)) for name in sorted(guest.allowed_hosts))
        if not self.cluster.hosts:
            return "no candidate host: no hosts were given"
        counts = Counter(unavailability(name) for name in self.cluster.hosts)
        return "no candidate host: all %d hosts are unavailable (%s)" % (
            len(self.cluster.hosts), ", ".join("%d %s" % (count, what) for what, count in sorted(counts.items())))


def plan_evacuation(guests, hosts, source_hosts, exclude=(), memory_margin_bytes=DEFAULT_MEMORY_MARGIN_BYTES,
                    memory_margin_ratio=DEFAULT_MEMORY_MARGIN_RATIO, max_vcpu_overcommit=DEFAULT_MAX_VCPU_OVERCOMMIT):
    """Plan moving every guest off ``source_hosts``.

    ``guests`` are all known guests (those elsewhere count for anti-affinity),
    ``hosts`` all known hosts.  Big guests are placed first, each on the fitting
    host with the most free memory left above its reserve after placement (the
    same as the most free memory when reserves are equal), then the lowest vCPU
    load, then the name.  Returns a :class:`Plan`; every guest of a source host
    is either assigned or unplaceable with a reason.

    Cost: O(H + G log H) plus, per guest, the hosts that fit its memory but are
    skipped for vCPUs, preflight or anti-affinity (bounded: when few hosts are
    open to a guest they are compared directly).
    """
    guests, hosts = list(guests), list(hosts)
    cluster = _Cluster(guests, hosts, memory_margin_bytes, memory_margin_ratio, max_vcpu_overcommit)
    sources = set(source_hosts)
    maintenance = {info.name for info in hosts if info.maintenance}
    available = set(cluster.hosts) - sources - set(exclude) - maintenance
    leaving = sorted((guest for guest in guests if guest.host in sources),
                     key=lambda guest: (-guest.memory, -guest.vcpus, guest.name))
    search = _Evacuation(cluster, available, sources, maintenance, min((g.vcpus for g in leaving), default=0))

    plan = Plan()
    for guest in leaving:
        host, reason = search.place(guest)
        if host is None:
            plan.unplaceable.append(Unplaceable(guest.name, reason))
        else:
            plan.assignments.append(Assignment(guest.name, guest.host, host.name))
    return plan


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


def plan_rebalance(guests, hosts, threshold_ratio=0.1, exclude=(), memory_margin_bytes=DEFAULT_MEMORY_MARGIN_BYTES,
                   memory_margin_ratio=DEFAULT_MEMORY_MARGIN_RATIO, max_vcpu_overcommit=DEFAULT_MAX_VCPU_OVERCOMMIT,
                   max_moves=None):
    """Plan moves that bring every host's memory-used ratio within ``threshold_ratio`` of the cluster's.

    The cluster ratio is total used over total memory of the hosts taking part
    (not in maintenance, not excluded); it does not change as guests move, so
    every accepted move strictly lowers the sum of squared deviations and the
    greedy loop ends.  Each step moves, from the most loaded host, the running
    guest that best closes the gap to the least loaded host that fits it (trying
    the next hosts when none fits); hosts inside the band only take part as the
    other end of a move.  No guest moves twice; guests on maintenance or
    excluded hosts stay.  Returns a :class:`Plan` whose notes name hosts left
    outside the band.
    """
    if threshold_ratio < 0:
        raise ValueError("threshold_ratio must be >= 0")
    guests, hosts = list(guests), list(hosts)
    cluster = _Cluster(guests, hosts, memory_margin_bytes, memory_margin_ratio, max_vcpu_overcommit)
    excluded = set(exclude)
    pool = [cluster.hosts[info.name] for info in hosts
            if not info.maintenance and info.name not in excluded and info.memory_total > 0]
    plan = Plan()
    if len(pool) < 2:
        plan.notes.append("nothing to balance: fewer than two hosts take part")
        return plan
    balance = _Rebalance(cluster, pool, guests, threshold_ratio)
    max_moves = len(guests) if max_moves is None else max_moves
    while len(plan.assignments) < max_moves:
        move = balance.best_move()
        if move is None:
            break
        guest, destination = move
        plan.assignments.append(Assignment(guest.name, guest.host, destination.name))
        balance.apply(guest, destination)

    target = balance.target
    outside = sorted((host for host in pool if abs(host.used_ratio - target) > threshold_ratio),
                     key=lambda host: (-abs(host.used_ratio - target), host.name))
    if outside and len(plan.assignments) >= max_moves:
        plan.notes.append("stopped after max_moves=%d" % max_moves)
    for host in outside:
        plan.notes.append("host %s stays at %.1f%% memory used, %.1f points from the cluster's %.1f%%: no move that "
                          "helps fits (capacity, anti-affinity or preflight)"
                          % (host.name, 100 * host.used_ratio, 100 * abs(host.used_ratio - target), 100 * target))
    return plan


class _Rebalance:
    """The search state of :func:`plan_rebalance`.

    ``order`` keeps the hosts taking part sorted by memory-used ratio, updated
    for the two hosts of each move, so finding the most and least loaded hosts
    costs nothing per step.
    """

    def __init__(self, cluster, pool, guests, threshold):
        self.cluster = cluster
        self.threshold = threshold
        self.target = sum(host.total - host.free for host in pool) / sum(host.total for host in pool)
        self.order = sorted((host.used_ratio, host.name) for host in pool)
        pool_names = {host.name for host in pool}
        self.movable = defaultdict(list)  # host -> running guests that have not moved, by name
        for guest in sorted(guests, key=lambda guest: guest.name):
            if guest.running and guest.host in pool_names:
                self.movable[guest.host].append(guest)

    def _hot(self):
        """(host, deviation) above the target, most loaded first."""
        for ratio, name in reversed(self.order):
            if ratio <= self.target:
                return
            yield self.cluster.hosts[name], ratio - self.target

    def _cold(self):
        """(host, deviation) below the target, least loaded first."""
        for ratio, name in self.order:
            if ratio >= self.target:
                return
            yield self.cluster.hosts[name], ratio - self.target

    def _pairs(self):
        # Only pairs with a host outside the band: hot outliers first, then cold ones.
        for source, source_deviation in self._hot():
            if source_deviation <= self.threshold:
                break
            for destination, destination_deviation in self._cold():
                yield source, source_deviation, destination, destination_deviation
        for destination, destination_deviation in self._cold():
            if -destination_deviation <= self.threshold:
                break
            for source, source_deviation in self._hot():
                if source_deviation <= self.threshold:
                    yield source, source_deviation, destination, destination_deviation

    def best_move(self):
        """The next greedy move as (guest, destination host), or None when no move helps."""
        for source, source_deviation, destination, destination_deviation in self._pairs():
            # A tiny epsilon keeps float noise from counting as an improvement.
            best_cost = source_deviation ** 2 + destination_deviation ** 2 - 1e-12
            best_guest = None
            for guest in self.movable[source.name]:
                if self.cluster.rejection(guest, destination) is not None:
                    continue
                if guest.allowed_hosts is not None and destination.name not in guest.allowed_hosts:
                    continue
                after_source = (source.total - source.free - guest.memory) / source.total - self.target
                after_destination = (destination.total - destination.free + guest.memory) / destination.total - self.target
                cost = after_source ** 2 + after_destination ** 2
                if cost < best_cost:
                    best_cost, best_guest = cost, guest
            if best_guest is not None:
                return best_guest, destination
        return None

    def apply(self, guest, destination):
        """Book the move and keep ``order`` sorted."""
        source = self.cluster.hosts[guest.host]
        for host in (source, destination):
            del self.order[bisect.bisect_left(self.order, (host.used_ratio, host.name))]
        self.movable[guest.host].remove(guest)
        self.cluster.move(guest, destination)
        for host in (source, destination):
            bisect.insort(self.order, (host.used_ratio, host.name))
