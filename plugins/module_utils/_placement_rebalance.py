# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The rebalance planner: moves that even out the hosts' memory use (pure, no libvirt).

The placement rules are those of ``_placement``; see :func:`plan_rebalance` for the search.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

from ansible_collections.kvmops.migration.plugins.module_utils._placement import (
    Assignment,
    Cluster,
    DEFAULT_MAX_VCPU_OVERCOMMIT,
    DEFAULT_MEMORY_MARGIN_BYTES,
    DEFAULT_MEMORY_MARGIN_RATIO,
    Plan,
)


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
    cluster = Cluster(guests, hosts, memory_margin_bytes, memory_margin_ratio, max_vcpu_overcommit)
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
