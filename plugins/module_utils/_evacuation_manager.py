# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The virt_evacuate manager: gather host facts, plan, run migrations concurrently with the
same MigrationManager as virt_migrate, record maintenance marks and origins, report."""

from __future__ import annotations

import glob
import os
import time
from concurrent.futures import ThreadPoolExecutor
import xml.etree.ElementTree as ET

from ansible_collections.kvmops.migration.plugins.module_utils._client import LibvirtClient
from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    InvalidInputError,
    KvmopsError,
    MigrationError,
    translated,
)
from ansible_collections.kvmops.migration.plugins.module_utils._destination import HOST_FORMS, check_data_stream, check_host
from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import local_disks, read_domain
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation import (
    anti_affinity_groups,
    backup_changes,
    format_table,
    forget,
    load_record,
    MAINTENANCE_MARK_FILE,
    maintenance_mark,
    make_row,
    marks_maintenance,
    metadata_of,
    preflight_allows,
    preflight_verdicts,
    record_move,
    rejoin_plan,
    return_plan,
    summarise,
)
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_forecast import forecast_plan
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_runner import (
    MIGRATE_DEFAULTS,
    PASSTHROUGH,
    ConcurrentRunner,
    Move,
    SharedStorage,
    borrow_if_alive,
    host_facts,
    host_uri,
)
from ansible_collections.kvmops.migration.plugins.module_utils._oplock import OperationLock
from ansible_collections.kvmops.migration.plugins.module_utils._placement import Assignment, GuestInfo, HostInfo, Plan
from ansible_collections.kvmops.migration.plugins.module_utils._placement_evacuation import plan_evacuation
from ansible_collections.kvmops.migration.plugins.module_utils._placement_rebalance import plan_rebalance
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_runner import PreflightRunner
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_spec import preflight_params
from ansible_collections.kvmops.migration.plugins.module_utils._progress import RUN_ENDED, ProgressLog
from ansible_collections.kvmops.migration.plugins.module_utils._statefile import (
    DEFAULT_STATE_DIR,
    PRIVATE_FILE_MODE,
    read_text,
    write_json,
    write_text,
)
from ansible_collections.kvmops.migration.plugins.module_utils._storage import read_host_file

ARGUMENT_SPEC = dict(
    action=dict(type='str', default='evacuate', choices=['evacuate', 'return', 'rebalance', 'recover', 'backup', 'rejoin']),
    host=dict(type='str'),
    hosts=dict(type='list', elements='str', default=[]),
    transport=dict(type='str', default='ssh', choices=['ssh', 'tls', 'tcp']),
    guests=dict(type='list', elements='str'),
    pinned=dict(type='list', elements='str', default=[]),
    exclude_hosts=dict(type='list', elements='str', default=[]),
    maintenance_hosts=dict(type='list', elements='str', default=[]),
    read_maintenance_marks=dict(type='bool', default=True),
    anti_affinity=dict(type='dict', default={}),
    preflight=dict(type='list', elements='dict', default=[]),
    run_preflight=dict(type='bool', default=False),
    copy_storage=dict(type='bool', default=True),
    no_storage_copy=dict(type='list', elements='str', default=[]),
    move_shutoff=dict(type='bool', default=False),
    max_per_source=dict(type='int', default=2),
    max_per_dest=dict(type='int', default=1),
    memory_basis=dict(type='str', default='allocated', choices=['allocated', 'free']),
    memory_margin_mib=dict(type='int', default=1024),
    memory_margin_ratio=dict(type='float', default=0.05),
    max_vcpu_overcommit=dict(type='float', default=4.0),
    threshold=dict(type='float', default=0.1),
    max_moves=dict(type='int'),
    migrate_options=dict(type='dict', default={}),
    maintenance=dict(type='bool', default=True),
    state_dir=dict(type='path', default=DEFAULT_STATE_DIR),
    definitions_dir=dict(type='path', default='/var/lib/libvirt/images/.kvmops/definitions'),
    shared_paths=dict(type='list', elements='path', default=['/var/lib/libvirt/images']),
    dead_host=dict(type='str'),
    fenced=dict(type='bool', default=False),
    fenced_hosts=dict(type='list', elements='str', default=[]),
    remove_stale_copies=dict(type='bool', default=True),
    progress_file=dict(type='path'),
    progress_interval=dict(type='float', default=2.0),
    lock_timeout=dict(type='int', default=900),
)

MIB = 1024 * 1024
# undefineFlags of a stale copy: its managed save image, snapshot and checkpoint metadata go with it
# (all of this host, all stale); an NVRAM file is kept (it may be the only copy of the guest's vars).
VIR_DOMAIN_UNDEFINE_MANAGED_SAVE = 1
VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA = 2
VIR_DOMAIN_UNDEFINE_KEEP_NVRAM = 8
VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA = 16
UNDEFINE_STALE = (VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                  | VIR_DOMAIN_UNDEFINE_KEEP_NVRAM | VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)
VIR_DOMAIN_JOB_NONE = 0
# Reading a host's mark is tried again this often, this far apart, before the host counts as in
# maintenance: two runs reading one host's mark at the same moment can meet on its transient pool.
MARK_READ_ATTEMPTS = 3
MARK_READ_RETRY_S = 0.2


class BackupError(KvmopsError):
    """The definitions backup could not be read or written."""


def read_backups(directory):
    """{guest: file text (None if unreadable)} of the definition backups in ``directory`` ({} if it is missing)."""
    return dict((os.path.basename(path)[:-len('.xml')], read_text(path))
                for path in glob.glob(os.path.join(directory, '*.xml')))


class Evacuation:
    def __init__(self, kvm):
        self.kvm = kvm
        self.p = kvm.params
        self.check = kvm.check_mode
        self.clients = {}
        self.log = None
        self.in_maintenance = set(self.p.get('maintenance_hosts') or ())

    # -- helpers ---------------------------------------------------------------------
    def validate(self):
        p = self.p
        if p['lock_timeout'] < 0:
            raise InvalidInputError('lock_timeout=%d must be 0 (refuse at once) or more seconds' % p['lock_timeout'])
        if p['max_per_source'] < 1 or p['max_per_dest'] < 1:
            raise InvalidInputError('max_per_source and max_per_dest must be at least 1')
        if p['memory_margin_mib'] < 0 or not 0 <= p['memory_margin_ratio'] < 1 or p['max_vcpu_overcommit'] <= 0:
            raise InvalidInputError('memory_margin_mib >= 0, 0 <= memory_margin_ratio < 1 and max_vcpu_overcommit > 0 are required')
        if not 0 <= p['threshold'] < 1:
            raise InvalidInputError('threshold must be between 0 and 1')
        unknown = sorted(set(p['migrate_options']) - set(PASSTHROUGH))
        if unknown:
            raise InvalidInputError('migrate_options: unsupported option(s) %s' % ', '.join(unknown),
                                    remedy='Supported: %s' % ', '.join(PASSTHROUGH))
        if p['action'] in ('evacuate', 'rebalance', 'recover', 'rejoin') and not p['hosts']:
            raise InvalidInputError('hosts is required for action=%s' % p['action'])
        if p['action'] == 'recover' and not p['dead_host']:
            raise InvalidInputError('dead_host is required for action=recover')
        for host in p['hosts'] + ([p['dead_host']] if p['dead_host'] else []):
            check_host(host, 'hosts', HOST_FORMS)  # before any connection: a host name is also an ssh argument
        check_data_stream(p['migrate_options'].get('migrate_uri'))
        if p['action'] == 'backup' and not p['definitions_dir']:
            raise InvalidInputError('definitions_dir is empty: action=backup has nowhere to write',
                                    remedy='Give a directory on storage shared by every hypervisor, e.g. '
                                           '/var/lib/libvirt/images/.kvmops/definitions')
        if p['action'] == 'backup' and p['guests'] is not None:
            raise InvalidInputError('guests does not apply to action=backup: the backup always holds every '
                                    'persistent guest of the host (backups of the others would be removed)',
                                    remedy='Leave guests out.')

    def client(self, host):
        client = self.clients.get(host)
        if client is None:
            client = self.clients[host] = LibvirtClient(uri=host_uri(host, self.p['transport'], self.me))
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
        return (self.p['guests'] is None or guest in self.p['guests']) and guest not in getattr(self, 'busy', ())

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

    # -- actions ---------------------------------------------------------------------
    def run(self):
        self.validate()
        local = LibvirtClient(uri=self.p['uri'])
        self.clients['__local__'] = local
        self.me = self.p['host'] or local.conn.getHostname()
        self.clients[self.me] = local
        progress_file = self.p['progress_file'] or os.path.join(self.p['state_dir'], '%s.log' % self.p['action'])
        self.log = ProgressLog(None if self.check else progress_file)
        action = getattr(self, 'do_' + self.p['action'])
        # A plan reads only, and a backup moves no guest: neither waits for a run in progress.
        if self.check or self.p['action'] == 'backup':
            return action()

        def waiting(holder):
            self.log('waiting up to %ds for the %s run (pid %s) that holds this host\'s lock' % (
                self.p['lock_timeout'], holder.get('action', '?'), holder.get('pid', '?')))
        lock = OperationLock(os.path.join(self.p['state_dir'], 'operation.lock'), self.p['action'],
                             self.p['lock_timeout'], describe={'progress_file': progress_file}, on_wait=waiting)
        try:
            with lock:
                result = action()
        finally:
            # The last line of the progress file, for whoever follows it (tail -f): nothing comes after it.
            self.log(RUN_ENDED % self.p['action'])
        result['lock_waited_s'] = lock.waited_s
        return result

    def do_evacuate(self):
        record_path = os.path.join(self.p['state_dir'], 'evacuation.json')
        candidates = [h for h in self.p['hosts'] if h != self.me and h not in self.p['exclude_hosts']]
        hosts, guests, notes = self.gather([self.me] + candidates, marks_of=candidates)
        if not any(h.name == self.me for h in hosts):
            raise MigrationError('cannot read this host (%s) through libvirt' % self.me)
        preflight = list(self.p['preflight'])
        if self.p['run_preflight']:
            preflight += self.run_preflights([h for h in candidates if h not in self.in_maintenance])
        verdicts = preflight_verdicts(preflight)
        shared = SharedStorage()
        rows, infos, copies, leaving = [], [], {}, []
        for facts in guests:
            if facts.host != self.me:
                infos.append(self.guest_info(facts))
                continue
            if not self.wanted(facts.name):
                infos.append(self.guest_info(facts, allowed=frozenset()))
                continue
            if facts.name in self.p['pinned']:
                rows.append(make_row(facts.name, self.me, None, 'stayed', 'pinned'))
                infos.append(self.guest_info(facts, allowed=frozenset()))
                continue
            if not facts.running and not (facts.persistent and self.p['move_shutoff']):
                rows.append(make_row(facts.name, self.me, None, 'skipped',
                                     'shut off (set move_shutoff to move it cold)' if facts.persistent else 'shut off'))
                infos.append(self.guest_info(facts, allowed=frozenset()))
                continue
            allowed, why, copy = self.destinations_for(facts, candidates, verdicts, shared)
            copies[facts.name] = copy
            if not allowed:
                reason = '; '.join('%s: %s' % item for item in sorted(why.items())) or 'no candidate host'
                rows.append(make_row(facts.name, self.me, None, 'stayed', reason))
                infos.append(self.guest_info(facts, allowed=frozenset()))
                continue
            infos.append(self.guest_info(facts, allowed=frozenset(allowed)))
            leaving.append(facts)
        # Guests that stay on this host are not given to the planner (it would place them); this host
        # is no destination, so they do not matter for anti-affinity either.
        leaving_names = {facts.name for facts in leaving}
        plan = plan_evacuation([g for g in infos if g.host != self.me or g.name in leaving_names],
                               hosts, [self.me], exclude=self.p['exclude_hosts'], **self.margins())
        plan.notes.extend(notes)
        for item in plan.unplaceable:
            rows.append(make_row(item.guest, self.me, None, 'stayed', item.reason))
        by_name = dict((f.name, f) for f in leaving)
        moves = {}
        for assignment in plan.assignments:
            facts = by_name[assignment.guest]
            copy_disks = copies[facts.name].get(assignment.destination)
            options, mode = self.options_for(facts, copy_disks)
            moves[facts.name] = Move(facts.name, facts.uuid, self.me, assignment.destination, options, mode,
                                     [d.path for d in facts.disks if d.target in (copy_disks or [])])
            self.log('plan %s -> %s (%s%s)' % (facts.name, assignment.destination, mode,
                                               ', copying %s' % ','.join(options['migrate_disks'])
                                               if options.get('migrate_disks') else ''))
        # Before anything moves: the expected window, and the moves in the forecast's order.
        forecast = forecast_plan(self.conn(self.me), plan, leaving, dict(MIGRATE_DEFAULTS, **self.p['migrate_options']),
                                 preflight, self.p['max_per_source'], self.p['max_per_dest'], self.log)
        record = load_record(read_text(record_path), self.me)
        if self.check:
            rows = [make_row(a.guest, a.source, a.destination, 'planned', None, mode=moves[a.guest].mode)
                    for a in plan.assignments] + rows
            return self.finish(rows, plan, hosts, {'record': record, 'forecast': forecast})
        if self.p['maintenance']:
            write_json(os.path.join(self.p['state_dir'], MAINTENANCE_MARK_FILE),
                       maintenance_mark(self.me, 'evacuate'))
        if self.p['definitions_dir']:
            try:
                self.save_definitions()
            except KvmopsError as exc:  # the guests can move without it; recover.yml cannot use it
                self.kvm.warn('%s%s' % (exc, ' (%s)' % exc.remedy if exc.remedy else ''))

        def moved(move):
            record_move(record, move.guest, move.uuid, move.source, move.dest, move.copied)
            write_json(record_path, record)

        done, max_concurrent = self.execute(plan, moves, moved)
        rows = done + rows
        result = self.finish(rows, plan, hosts, {'record': record, 'maintenance': self.p['maintenance'],
                                                 'forecast': forecast}, max_concurrent)
        result['changed'] = result['changed'] or self.p['maintenance']
        return result

    def run_preflights(self, destinations):
        """virt_migrate_preflight's checks (its defaults, fail_on=never) from this host to each destination,
        all at once, one thread and one libvirt client each: [result with ``item`` = destination].
        A preflight that cannot run at all rules its destination out (preflight_verdicts)."""
        shared = self.shared_connections()

        def one(dest):
            params = preflight_params(dest=dest, transport=self.p['transport'], guests=self.p['guests'] or [],
                                      fail_on='never')
            try:
                with LibvirtClient(uri=self.p['uri']) as client:
                    uri = host_uri(dest, self.p['transport'])
                    borrow_if_alive(client, uri, shared.get(uri))
                    result = PreflightRunner(client, params).run()
            except KvmopsError as exc:
                return {'item': dest, 'msg': '%s%s' % (exc, ' (%s)' % exc.remedy if exc.remedy else '')}
            except Exception as exc:  # pylint: disable=broad-except
                return {'item': dest, 'msg': 'unexpected error: %s' % exc}
            return dict(result, item=dest)

        if not destinations:
            return []
        with ThreadPoolExecutor(max_workers=len(destinations)) as pool:
            results = list(pool.map(one, destinations))
        for result in results:
            summary = result.get('summary')
            if summary is None:
                self.log('preflight %s -> %s did not run: %s' % (self.me, result['item'], result['msg']))
                continue
            self.log('preflight %s -> %s: %s (%d ok, %d warn, %d fail%s)' % (
                self.me, result['item'], summary['verdict'], summary['ok'], summary['warn'], summary['fail'],
                ': ' + ', '.join(summary['failed_checks']) if summary['failed_checks'] else ''))
        return results

    def save_definitions(self):
        """Make definitions_dir/<this host>/ hold the persistent definition of every guest defined on this
        host, one ``<guest>.xml`` each, written atomically, and nothing else: the backup of a guest no
        longer defined here is removed. Check mode writes nothing. Returns what changed (or would)."""
        directory = os.path.join(self.p['definitions_dir'], self.me)
        with translated('Reading the definitions of the guests of %s' % self.me):
            dummy, guests = host_facts(self.conn(self.me), self.me)
        wanted = dict((facts.name, facts.xml) for facts in guests if facts.persistent)
        try:
            changes = backup_changes(read_backups(directory), wanted)
            if not self.check:
                os.makedirs(directory, mode=0o700, exist_ok=True)
                for name in changes['written']:
                    write_text(os.path.join(directory, '%s.xml' % name), wanted[name], PRIVATE_FILE_MODE)
                for name in changes['removed']:
                    os.remove(os.path.join(directory, '%s.xml' % name))
        except OSError as exc:
            raise BackupError('definitions backup in %s failed: %s' % (directory, exc),
                              remedy='Check that %s is on the shared storage, mounted on %s and writable by root.'
                              % (self.p['definitions_dir'], self.me))
        would = 'would ' if self.check else ''
        for name in changes['written']:
            self.log('%swrite the definition of %s' % (would, name))
        for name in changes['removed']:
            self.log('%sremove the backup of %s (not defined on %s)' % (would, name, self.me))
        changes['directory'] = directory
        return changes

    def do_backup(self):
        changes = self.save_definitions()
        changed = bool(changes['written'] or changes['removed'])
        msg = 'backup of %s in %s: %d written, %d removed, %d unchanged%s' % (
            self.me, changes['directory'], len(changes['written']), len(changes['removed']),
            len(changes['unchanged']), ' (check mode: nothing written)' if self.check and changed else '')
        return dict(changed=changed, definitions=changes, report=[msg] + list(self.log.lines),
                    progress=list(self.log.lines), msg=msg)

    def do_return(self):
        record_path = os.path.join(self.p['state_dir'], 'evacuation.json')
        record = load_record(read_text(record_path), self.me)
        wanted = dict((g, e) for g, e in record['guests'].items() if self.wanted(g))
        places = set(self.p['hosts']) | {entry.get('to') for entry in wanted.values() if entry.get('to')}
        places.discard(None)
        hosts, guests, notes = self.gather([self.me] + sorted(places - {self.me}))
        locations = {}
        for facts in guests:
            if facts.running:
                locations.setdefault(facts.uuid, []).append(facts.host)
        moves_list, rows = return_plan({'guests': wanted}, locations, self.me)
        plan = Plan(notes=notes)
        moves = {}
        shared = SharedStorage()
        for guest, uuid, where in moves_list:
            facts = next(f for f in guests if f.uuid == uuid and f.host == where)
            allowed, why, copy = self.destinations_for(facts, [self.me], {}, shared)
            if not allowed:
                rows.append(make_row(guest, where, self.me, 'stayed', why.get(self.me)))
                continue
            options, mode = self.options_for(facts, copy[self.me])
            plan.assignments.append(Assignment(guest, where, self.me))
            moves[guest] = Move(guest, uuid, where, self.me, options, mode,
                                [d.path for d in facts.disks if d.target in copy[self.me]])
            if copy[self.me] and not self.check:
                self.remove_stale(wanted[guest], facts)
        for row in rows:
            if row['result'] == 'skipped' and not self.check:
                forget(record, row['guest'])
        if self.check:
            rows = [make_row(a.guest, a.source, a.destination, 'planned') for a in plan.assignments] + rows
            return self.finish(rows, plan, hosts, {'record': record})

        def moved(move):
            forget(record, move.guest)
            write_json(record_path, record)
            # The images copied back home are left on the host the guest ran on: our evacuation made them.
            for path in move.copied:
                try:
                    with LibvirtClient(uri=host_uri(move.source, self.p['transport'], self.me)) as client:
                        client.conn.storageVolLookupByPath(path).delete(0)
                    self.log('removed %s on %s (copied there by the evacuation)' % (path, move.source))
                except Exception:  # pylint: disable=broad-except
                    self.log('could not remove %s on %s; remove it before moving %s there again'
                             % (path, move.source, move.guest))

        done, max_concurrent = self.execute(plan, moves, moved)
        write_json(record_path, record)
        rows = done + rows
        mark = os.path.join(self.p['state_dir'], MAINTENANCE_MARK_FILE)
        cleared = False
        if self.p['maintenance'] and not summarise(rows)['stayed'] and os.path.exists(mark):
            os.remove(mark)
            cleared = True
        result = self.finish(rows, plan, hosts, {'record': record, 'maintenance_cleared': cleared}, max_concurrent)
        result['changed'] = result['changed'] or cleared
        return result

    def remove_stale(self, entry, facts):
        """Delete, here, the images this guest left behind when evacuate copied its disks away.

        Only paths the record names (copied by evacuate) and that the guest still uses on its
        current host: its data is there now, the file here is from before it left.
        """
        in_use = {disk.path for disk in facts.disks}
        for path in entry.get('stale_copies', []):
            if path not in in_use or not self.p['remove_stale_copies']:
                continue
            try:
                self.conn(self.me).storageVolLookupByPath(path).delete(0)
                self.log('removed %s, the image %s left here when it was evacuated' % (path, facts.name))
            except Exception:  # pylint: disable=broad-except
                pass  # not there (or not in a pool): the storage copy reports what is in the way

    def do_rebalance(self):
        hosts, guests, notes = self.gather(self.p['hosts'], marks_of=self.p['hosts'])
        pinned = set(self.p['pinned'])
        infos = []
        for facts in guests:
            movable = self.wanted(facts.name) and facts.name not in pinned and facts.running
            infos.append(self.guest_info(facts, allowed=None if movable else frozenset()))
        # A host in maintenance takes no part: its guests stay, and none go to it.
        exclude = list(self.p['exclude_hosts']) + sorted(self.in_maintenance - set(self.p['exclude_hosts']))
        plan = plan_rebalance(infos, hosts, threshold_ratio=self.p['threshold'], exclude=exclude,
                              max_moves=self.p['max_moves'], **self.margins())
        plan.notes.extend(notes)
        by_name = dict((f.name, f) for f in guests)
        shared = SharedStorage()
        moves, rows = {}, []
        kept = []
        for assignment in plan.assignments:
            facts = by_name[assignment.guest]
            allowed, why, copy = self.destinations_for(facts, [assignment.destination], {}, shared)
            if not allowed:
                rows.append(make_row(facts.name, facts.host, assignment.destination, 'stayed',
                                     why.get(assignment.destination)))
                continue
            options, mode = self.options_for(facts, copy[assignment.destination])
            moves[facts.name] = Move(facts.name, facts.uuid, facts.host, assignment.destination, options, mode)
            kept.append(assignment)
        plan.assignments = kept
        if self.check:
            rows = [make_row(a.guest, a.source, a.destination, 'planned') for a in plan.assignments] + rows
            return self.finish(rows, plan, hosts)
        done, max_concurrent = self.execute(plan, moves)
        return self.finish(done + rows, plan, hosts, None, max_concurrent)

    def do_recover(self):
        dead = self.p['dead_host']
        if not self.p['fenced']:
            raise InvalidInputError(
                'refusing to recover the guests of %s: fencing is not confirmed' % dead,
                remedy='Power the host off (or fence it) and set fenced: true. Starting a guest whose first copy '
                       'may still run corrupts its shared disks.')
        try:
            with LibvirtClient(uri=host_uri(dead, self.p['transport'])) as probe:
                probe.conn.getHostname()
            raise InvalidInputError('refusing to recover: %s still answers over libvirt, it is not dead' % dead,
                                    remedy='Evacuate it instead (evacuate.yml), or fence it first.')
        except InvalidInputError:
            raise
        except Exception:  # pylint: disable=broad-except
            pass  # unreachable, as a fenced host must be
        survivors = [h for h in self.p['hosts'] if h != dead]
        hosts, guests, notes = self.gather(survivors)
        self.require_every_survivor(dead, survivors, hosts, notes)
        running = {f.uuid: f.host for f in guests if f.running}
        defined = {f.uuid: f.host for f in guests}
        directory = os.path.join(self.p['definitions_dir'], dead)
        infos = [self.guest_info(f) for f in guests]
        rows, xmls = [], {}
        shared_paths = [path.rstrip('/') + '/' for path in self.p['shared_paths']]
        for path in sorted(glob.glob(os.path.join(directory, '*.xml'))):
            xml = read_text(path) or ''
            name = os.path.basename(path)[:-4]
            if not self.wanted(name):
                continue
            uuid = _xml_field(xml, 'uuid')
            if uuid in running:
                rows.append(make_row(name, dead, running[uuid], 'skipped', 'already running on %s' % running[uuid]))
                continue
            if uuid in defined:
                rows.append(make_row(name, dead, defined[uuid], 'stayed', 'defined (shut off) on %s; start it there'
                                     % defined[uuid]))
                continue
            local = [d.path for d in local_disks(xml) if d.path and not d.readonly
                     and not any(d.path.startswith(prefix) for prefix in shared_paths)]
            if local:
                rows.append(make_row(name, dead, None, 'stayed', 'disk(s) on the dead host\'s local storage: %s'
                                     % ', '.join(local)))
                continue
            memory = int(_xml_field(xml, 'memory') or 0) * 1024
            vcpus = int(_xml_field(xml, 'vcpu') or 1)
            from_meta = metadata_of(xml)['anti_affinity']
            infos.append(GuestInfo(name=name, host=dead, memory=memory, vcpus=vcpus,
                                   anti_affinity=anti_affinity_groups(name, from_meta, self.p['anti_affinity'])))
            xmls[name] = xml
        plan = plan_evacuation(infos, hosts + [HostInfo(dead, 0, 0, 0, 0)], [dead], exclude=self.p['exclude_hosts'],
                               **self.margins())
        plan.notes.extend(notes)
        if not os.path.isdir(directory):
            plan.notes.append('no definitions backup in %s' % directory)
        for item in plan.unplaceable:
            rows.append(make_row(item.guest, dead, None, 'stayed', item.reason))
        if self.check:
            rows = [make_row(a.guest, dead, a.destination, 'planned') for a in plan.assignments] + rows
            return self.finish(rows, plan, hosts)
        done = []
        for assignment in plan.assignments:
            try:
                conn = self.conn(assignment.destination)
                dom = conn.defineXML(xmls[assignment.guest])
                dom.create()
                self.log('recovered %s on %s' % (assignment.guest, assignment.destination))
                done.append(make_row(assignment.guest, dead, assignment.destination, 'moved', mode='restart'))
            except Exception as exc:  # pylint: disable=broad-except
                done.append(make_row(assignment.guest, dead, assignment.destination, 'failed', str(exc), mode='restart'))
        return self.finish(done + rows, plan, hosts)

    def require_every_survivor(self, dead, survivors, answered, notes):
        """Recovery starts guests that must not run anywhere else. A survivor that does not answer may
        run some of them (a guest migrated there before the failure, or recovered there by an earlier
        run): starting them again would put two copies on the shared disks. So every survivor must
        answer, unless the operator names it as fenced too (powered off, like the dead host)."""
        seen = {host.name for host in answered}
        silent = [h for h in survivors if h not in seen]
        unconfirmed = [h for h in silent if h not in self.p['fenced_hosts']]
        if unconfirmed:
            raise InvalidInputError(
                'refusing to recover the guests of %s: %s did not answer, and a guest that still runs there would '
                'be started a second time on the same disks (%s)' % (
                    dead, ', '.join(unconfirmed), '; '.join(n for n in notes if any(h in n for h in unconfirmed))),
                remedy='Bring %s back (libvirtd, network, SSH) and run again, or, if it is down too, power it off and '
                       'list it in fenced_hosts (recover.yml: -e \'{"recover_fenced_hosts": [...]}\').'
                       % ', '.join(unconfirmed), details={'unanswered_hosts': unconfirmed})
        for host in silent:
            notes.append('host %s does not answer; fenced as the operator confirmed (fenced_hosts): its guests are '
                         'not looked at' % host)

    def do_rejoin(self):
        """On a host that answers again after its guests were recovered elsewhere: every guest that now runs
        on another host loses its stale copy here (autostart off, destroyed if it runs, undefined)."""
        dead = self.p['dead_host']
        if dead and dead != self.me:
            raise InvalidInputError('rejoin runs on the host that comes back (dead_host=%s), but this is %s'
                                    % (dead, self.me),
                                    remedy='Run it on %s (recover.yml -e dead_host=%s -e rejoin=true does).'
                                    % (dead, dead))
        conn = self.conn(self.me)
        dummy, here = host_facts(conn, self.me)
        hosts, guests, notes = self.gather([h for h in self.p['hosts'] if h != self.me])
        elsewhere = dict((facts.uuid, (facts.host, facts.state)) for facts in guests)
        local = []
        for facts in here:
            if not self.wanted(facts.name):
                continue
            try:
                dom = conn.lookupByUUIDString(facts.uuid)
                local.append({'name': facts.name, 'uuid': facts.uuid, 'active': facts.running,
                              'persistent': facts.persistent,
                              'autostart': facts.persistent and bool(dom.autostart()),
                              'job': facts.running and dom.jobInfo()[0] != VIR_DOMAIN_JOB_NONE})
            except Exception:  # pylint: disable=broad-except
                continue  # gone while we looked: nothing left to clean up
        cleanups, rows = rejoin_plan(self.me, local, elsewhere)
        done, changed = [], False
        for entry, where, steps in cleanups:
            if self.check:
                done.append(make_row(entry['name'], self.me, where, 'planned',
                                     'runs on %s; here it would: %s' % (where, ', '.join(steps))))
                changed = True
                continue
            row, steps_done = self.remove_stale_copy(conn, entry, where, steps)
            done.append(row)
            changed = changed or bool(steps_done)
        result = self.finish(done + rows, Plan(notes=notes), hosts)
        counts = result['summary']['counts']
        result['changed'] = changed
        result['msg'] = 'rejoin of %s: %d stale copies %s, %d guests left as they are, %d need a look' % (
            self.me, counts.get('planned', 0) if self.check else counts.get('removed', 0),
            'to remove (check mode: nothing changed)' if self.check else 'removed', counts.get('skipped', 0),
            len(result['summary']['stayed']))
        return result

    def remove_stale_copy(self, conn, entry, where, steps):
        """Apply the rejoin steps to this host's copy of a guest that runs on ``where``: (row, steps done)."""
        done, step = [], 'look up'
        try:
            dom = conn.lookupByUUIDString(entry['uuid'])
            for step in steps:
                if step == 'disable autostart':
                    dom.setAutostart(0)
                elif step == 'destroy':
                    dom.destroy()
                else:
                    dom.undefineFlags(UNDEFINE_STALE)
                done.append(step)
                self.log('%s runs on %s: %s here' % (entry['name'], where, step))
        except Exception as exc:  # pylint: disable=broad-except
            return make_row(entry['name'], self.me, where, 'failed', '%s here failed (done: %s): %s' % (
                step, ', '.join(done) or 'nothing', exc)), done
        return make_row(entry['name'], self.me, where, 'removed', 'runs on %s; here: %s' % (
            where, ', '.join(done))), done


def _xml_field(xml, tag):
    """``uuid``, ``memory`` (KiB, the maximum) or ``vcpu`` (the maximum) of a saved domain XML (``_domain_xml``)."""
    try:
        domain = read_domain(xml)
    except ET.ParseError:
        return None
    return {'uuid': domain.uuid, 'memory': domain.memory_kib, 'vcpu': domain.max_vcpus}[tag]
