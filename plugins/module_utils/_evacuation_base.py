# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What every action of virt_evacuate shares: the connections to the hosts, their facts and
maintenance marks, where a guest may go and with which options, running the moves, the result.

``EvacuationBase`` is the base of the actions (``_evacuation_moves``, ``_evacuation_recovery``,
``_evacuation_backup``), which ``_evacuation_manager.Evacuation`` puts together.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.kvmops.migration.plugins.module_utils._client import LibvirtClient
from ansible_collections.kvmops.migration.plugins.module_utils._errors import KvmopsError
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation import (
    MAINTENANCE_MARK_FILE,
    anti_affinity_groups,
    format_table,
    marks_maintenance,
    preflight_allows,
    summarise,
)
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_runner import ConcurrentRunner, host_facts, host_uri
from ansible_collections.kvmops.migration.plugins.module_utils._placement import GuestInfo
from ansible_collections.kvmops.migration.plugins.module_utils._storage import read_host_file

MIB = 1024 * 1024
# Reading a host's mark is tried again this often, this far apart, before the host counts as in
# maintenance: two runs reading one host's mark at the same moment can meet on its transient pool.
MARK_READ_ATTEMPTS = 3
MARK_READ_RETRY_S = 0.2


class EvacuationBase:
    """One run of virt_evacuate (``kvm``: its module or manager context), whatever the action."""

    def __init__(self, kvm):
        self.kvm = kvm
        self.p = kvm.params
        self.check = kvm.check_mode
        self.clients = {}
        self.log = None
        self.in_maintenance = set(self.p.get('maintenance_hosts') or ())
        self.me = None  # this host's name, known once the run has connected (Evacuation.run)
        self.busy = set()  # guests seen active on several hosts: left alone (dedupe)

    def new_client(self, uri):
        """A LibvirtClient of its own for ``uri``: every client of the evacuation comes from here."""
        return LibvirtClient(uri=uri)

    def client(self, host):
        client = self.clients.get(host)
        if client is None:
            client = self.clients[host] = self.new_client(host_uri(host, self.p['transport'], self.me))
        return client

    def conn(self, host):
        return self.client(host).conn

    def connect_all(self, names):
        """{host: its connection, or the exception that opening it raised}, all hosts at once: each
        remote connection costs an SSH handshake, and an unreachable host its connect timeout."""
        clients = dict((name, self.client(name)) for name in names)

        def one(name):
            try:
                return clients[name].conn
            except Exception as exc:  # pylint: disable=broad-except
                return exc  # the caller notes the host as left out
        if not names:
            return {}
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            return dict(zip(names, pool.map(one, names)))

    def shared_connections(self):
        """{libvirt URI: open connection} of the other hosts, for the preflights and the migrations
        to borrow instead of opening their own."""
        return dict((client.uri, client.conn) for name, client in self.clients.items()
                    if name not in ('__local__', self.me) and client.uri in client.open_uris)

    def close(self):
        for client in self.clients.values():
            client.close()
        if self.log:
            self.log.close()

    def margins(self):
        return dict(memory_margin_bytes=self.p['memory_margin_mib'] * MIB,
                    memory_margin_ratio=self.p['memory_margin_ratio'],
                    max_vcpu_overcommit=self.p['max_vcpu_overcommit'])

    def gather(self, names, marks_of=()):
        """HostInfo and guests of every reachable host; unreachable ones are noted and left out.
        The hosts of ``marks_of`` whose maintenance mark is set join ``in_maintenance`` (with
        read_maintenance_marks), on top of the maintenance_hosts given."""
        hosts, guests, notes = [], [], []
        conns = self.connect_all(names)
        if self.p['read_maintenance_marks']:
            self.in_maintenance |= self.read_marks(
                [name for name in marks_of if not isinstance(conns.get(name), Exception)], conns, notes)
        blocked = self.in_maintenance
        for name in names:
            try:
                if isinstance(conns[name], Exception):
                    raise conns[name]
                info, found = host_facts(conns[name], name, self.p['memory_basis'], maintenance=name in blocked)
            except Exception as exc:  # pylint: disable=broad-except
                notes.append('host %s left out: %s' % (name, exc))
                continue
            hosts.append(info)
            guests.extend(found)
        return hosts, self.dedupe(guests, notes), notes

    def read_marks(self, names, conns, notes):
        """The hosts among ``names`` that their maintenance mark (MAINTENANCE_MARK_FILE in state_dir on
        each, read through its libvirt connection) puts in maintenance, all hosts at once. A mark that
        cannot be read counts as set, with a note: a guest never goes where that is unknown."""
        path = os.path.join(self.p['state_dir'], MAINTENANCE_MARK_FILE)

        def one(name):
            for attempt in range(MARK_READ_ATTEMPTS):
                try:
                    return marks_maintenance(read_host_file(conns[name], path, name), name)
                except KvmopsError as exc:
                    if attempt + 1 == MARK_READ_ATTEMPTS:
                        return True, 'its maintenance mark could not be read (%s); taken as in maintenance' % exc
                    time.sleep(MARK_READ_RETRY_S)
        if not names:
            return set()
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            verdicts = dict(zip(names, pool.map(one, names)))
        marked = set()
        for name in names:
            in_maintenance, why = verdicts[name]
            if why:
                notes.append('host %s: %s' % (name, why))
            elif in_maintenance:
                notes.append('host %s is in maintenance (its mark): no guest goes there' % name)
            if in_maintenance:
                marked.add(name)
                self.log('%s is in maintenance: no guest goes there' % name)
        return marked

    def dedupe(self, guests, notes):
        """One entry per UUID. A guest seen on several hosts is being migrated by someone else (or was
        left defined behind): keep the running copy, else the active one, and never move it in this run."""
        by_uuid = {}
        for facts in guests:
            by_uuid.setdefault(facts.uuid, []).append(facts)
        kept = []
        self.busy = set()
        for copies in by_uuid.values():
            if len(copies) == 1:
                kept.append(copies[0])
                continue
            copies.sort(key=lambda f: (f.state != 1, not f.running, f.host))
            kept.append(copies[0])
            if sum(1 for f in copies if f.running) > 1:
                self.busy.add(copies[0].name)
                notes.append('guest %s is active on %s (a migration in progress?): left alone'
                             % (copies[0].name, ', '.join(f.host for f in copies if f.running)))
        return kept

    def wanted(self, guest):
        return (self.p['guests'] is None or guest in self.p['guests']) and guest not in self.busy

    def guest_info(self, facts, allowed=None):
        return GuestInfo(name=facts.name, host=facts.host, memory=facts.memory, vcpus=facts.vcpus,
                         anti_affinity=anti_affinity_groups(facts.name, facts.anti_affinity, self.p['anti_affinity']),
                         allowed_hosts=allowed, running=facts.running)

    def destinations_for(self, facts, candidates, verdicts, shared):
        """(allowed destination names, {host: why not}, copy needed per host) for one guest."""
        allowed, why, copy = set(), {}, {}
        for dest in candidates:
            ok, reason = preflight_allows(verdicts, facts.name, dest)
            if not ok:
                why[dest] = 'preflight: ' + reason
                continue
            local = []
            for directory in sorted({disk.directory for disk in facts.disks}):
                try:
                    same = shared.check(self.conn(facts.host), self.conn(dest), directory, facts.host, dest)
                except Exception:  # pylint: disable=broad-except
                    same = False
                if not same:
                    local.extend(disk.target for disk in facts.disks if disk.directory == directory)
            if local and (not self.p['copy_storage'] or facts.name in self.p['no_storage_copy']):
                why[dest] = 'disk(s) %s not on storage shared with %s and storage copy is disabled' % (
                    ', '.join(local), dest)
                continue
            allowed.add(dest)
            copy[dest] = local
        return allowed, why, copy

    def options_for(self, facts, copy_disks):
        options = dict(self.p['migrate_options'])
        options.update(persistent=facts.persistent, undefine_source=facts.persistent)
        mode = 'live' if facts.running else 'cold'
        if copy_disks and mode == 'live':
            options.update(copy_storage='all', migrate_disks=copy_disks)
        if mode != 'live':
            options.pop('strategy', None)  # how a live migration converges: a cold move has no such choice
        return options, mode

    def execute(self, plan, moves, on_moved=None):
        uris = dict((host, host_uri(host, self.p['transport'], self.me)) for host in
                    {move.source for move in moves.values()} | {move.dest for move in moves.values()})
        runner = ConcurrentRunner(plan, moves, uris, self.p['transport'], self.p['max_per_source'],
                                  self.p['max_per_dest'], self.log, on_moved=on_moved,
                                  progress_interval=self.p['progress_interval'], shared=self.shared_connections())
        rows = runner.run()
        return rows, runner.max_concurrent

    def finish(self, rows, plan, hosts, extra=None, max_concurrent=0):
        summary = summarise(rows)
        summary['max_concurrent'] = max_concurrent
        moved = len(summary['moved'])
        result = dict(changed=moved > 0, plan=plan.as_dict(), table=rows, report=format_table(rows), summary=summary,
                      progress=list(self.log.lines) if self.log else [],
                      progress_total=self.log.total if self.log else 0,
                      hosts=[dict(h.__dict__) for h in hosts])
        result['msg'] = '%s: %d moved, %d stayed%s' % (
            self.p['action'], moved, len(summary['stayed']),
            ' (check mode: plan only)' if self.check else '')
        result.update(extra or {})
        return result
