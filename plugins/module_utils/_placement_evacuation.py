# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The evacuation planner: where each guest of the hosts being emptied goes (pure, no libvirt).

The placement rules are those of ``_placement``. Among the hosts that fit, the evacuation
prefers the one with the most memory left above its reserve after placement (the most free
memory, when reserves are equal), then the lower vCPU load, then the name; ties never depend
on the input order.
"""

from __future__ import annotations

import heapq
from collections import Counter

from ansible_collections.kvmops.migration.plugins.module_utils._placement import (
    Assignment,
    Cluster,
    DEFAULT_MAX_VCPU_OVERCOMMIT,
    DEFAULT_MEMORY_MARGIN_BYTES,
    DEFAULT_MEMORY_MARGIN_RATIO,
    Plan,
    PlannedHost,
    Unplaceable,
)


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
        best = min(fitting, key=PlannedHost.preference) if fitting else None
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
    cluster = Cluster(guests, hosts, memory_margin_bytes, memory_margin_ratio, max_vcpu_overcommit)
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
