# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_evacuate's actions that move guests with the migration manager: evacuate (empty this host),
return (bring its guests back) and rebalance (even out memory use)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.kvmops.migration.plugins.module_utils._errors import KvmopsError, MigrationError
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation import (
    MAINTENANCE_MARK_FILE,
    forget,
    load_record,
    maintenance_mark,
    make_row,
    preflight_verdicts,
    record_move,
    return_plan,
    summarise,
)
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_backup import DefinitionsBackup
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_forecast import forecast_plan
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_runner import (
    MIGRATE_DEFAULTS,
    Move,
    SharedStorage,
    borrow_if_alive,
    host_uri,
)
from ansible_collections.kvmops.migration.plugins.module_utils._placement import Assignment, Plan
from ansible_collections.kvmops.migration.plugins.module_utils._placement_evacuation import plan_evacuation
from ansible_collections.kvmops.migration.plugins.module_utils._placement_rebalance import plan_rebalance
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_runner import PreflightRunner
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_spec import preflight_params
from ansible_collections.kvmops.migration.plugins.module_utils._statefile import read_text, write_json


class GuestMoves(DefinitionsBackup):
    """``do_evacuate``, ``do_return`` and ``do_rebalance`` (an evacuation saves the definitions first)."""

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
                with self.new_client(self.p['uri']) as client:
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
                    with self.new_client(host_uri(move.source, self.p['transport'], self.me)) as client:
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
