# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where guests should go: the model the planners share (hosts, guests, plans) and the placement rules.

Pure and fast: plain data in, plain data out, no libvirt.  Memory is in bytes.

* :func:`_placement_evacuation.plan_evacuation` places every guest of the hosts being emptied.
* :func:`_placement_rebalance.plan_rebalance` evens out memory use with few migrations.
* :func:`_migration_scheduler.schedule` turns a plan into batches that can run concurrently.

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

Guests that are not running are planned like running ones, with their memory
and vCPUs reserved on the destination, so that starting them later fits; they
free nothing on their source.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
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


class PlannedHost:
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


class Cluster:
    """Hosts, their planned capacity and who shares a host with whom."""

    def __init__(self, guests, hosts, margin_bytes, margin_ratio, overcommit):
        if margin_bytes < 0 or margin_ratio < 0 or overcommit <= 0:
            raise ValueError("memory margins must be >= 0 and max_vcpu_overcommit > 0")
        self.overcommit = overcommit
        self.hosts = {}
        for info in hosts:
            if info.name in self.hosts:
                raise ValueError("host %s is listed twice" % info.name)
            self.hosts[info.name] = PlannedHost(info, margin_bytes, margin_ratio, overcommit)
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
