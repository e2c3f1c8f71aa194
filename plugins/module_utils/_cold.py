# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Cold and offline migration as a sequence that is undone when a step fails.

The steps: shut the guest down (cold), copy its disks that are not on shared storage, define it
on the destination (libvirt's offline migration, *without* removing it from the source), start it
there; only once it runs there is it removed from the source. So a persistent definition
exists at every instant, and a failure after the shutdown (a full disk, a cut link, a refused
definition, a guest that does not start) is rolled back: what this run made on the destination
is removed, and a guest that was running runs again on the source. The result names every step
done and undone, and where the guest is (``location``, as after a live migration).

What was made on the destination is also written to a journal in the state directory before the
next step starts: a run killed half-way (or a rollback that could not reach the destination) is
finished by the next run before it does anything else.
"""

from __future__ import annotations

import os

from ansible_collections.kvmops.migration.plugins.module_utils._errors import KvmopsError, MigrationError
from ansible_collections.kvmops.migration.plugins.module_utils._location import Attempt
from ansible_collections.kvmops.migration.plugins.module_utils._migration import (
    UNDEFINE_FLAGS,
    delete_volume,
    read_view,
    shutdown_guest,
    verify_and_repair,
)
from ansible_collections.kvmops.migration.plugins.module_utils._statefile import read_json, write_json
from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import Disk
from ansible_collections.kvmops.migration.plugins.module_utils._storage import copy_volume, volume_exists


def journal_path(state_dir, uuid):
    return os.path.join(state_dir, 'migrations', '%s.cold.json' % uuid)


class ColdMigration:
    """One cold (or offline) migration of ``dom`` between ``sides`` (a ``_migration.Sides``).

    ``storage``: the manager's storage plan (disks with their action); ``spec``: the offline
    migration that defines the guest on the destination; ``options``: the module's parameters.
    """

    def __init__(self, sides, dom, uri, storage, spec, options, dest_defined_before):
        self.sides = sides
        self.dom = dom
        self.uuid = dom.UUIDString()
        self.name = dom.name()
        self.uri = uri
        self.storage = storage
        self.spec = spec
        self.options = options
        self.dest_defined_before = dest_defined_before
        self.journal_file = journal_path(options['state_dir'], self.uuid)
        self.made = {'volumes': [], 'defined': False, 'started': False}
        self.done = []       # [step] in order
        self.undone = []     # rollback entries

    # -- the sequence --------------------------------------------------------------------
    def run(self):
        was_running = bool(self.dom.isActive())
        cold = self.options['mode'] == 'cold'
        stopped = None
        if cold and was_running:
            # Before this nothing has changed; a guest that does not stop in time is left running.
            stopped = shutdown_guest(self.dom, self.options['shutdown_timeout'], self.options['force_shutdown'])
            self.done.append('shut down on %s (%s)' % (self.sides.src_host, stopped))
        step = None
        copies = []
        try:
            for disk in self.storage:
                if disk['action'] == 'copy (cold)':
                    step = 'copy %s to %s' % (disk['path'], self.sides.dst_host)
                    copies.append(self._copy(disk))
            step = 'define on %s' % self.sides.dst_host
            self._define_on_destination()
            if cold and was_running:
                step = 'start on %s' % self.sides.dst_host
                self._start_on_destination()
        except Exception as exc:  # every failure after the shutdown is rolled back
            raise self._rolled_back(step, exc, was_running and cold)
        self._commit(copies)
        outcome = verify_and_repair(self.sides, self.uuid, self._attempt())
        self._forget_journal()
        return {'location': outcome.as_dict(), 'shutdown': stopped, 'copied_disks': copies, 'steps': self.done,
                'moved': outcome.location.verdict == 'destination' or (
                    not (cold and was_running) and self.sides.dst_host in outcome.location.defined_on),
                'restarted': cold and was_running}

    def _copy(self, disk):
        disk_obj = Disk(disk['target'], disk['path'], disk['format'], disk['readonly'], disk['device'])
        if volume_exists(self.sides.dst_conn, disk['path']):
            # Not ours: never journalled, so never deleted by a rollback.
            raise MigrationError('%s already exists on %s; refusing to overwrite it' % (disk['path'], self.sides.dst_host),
                                 remedy='Remove or rename the file on the destination, or use shared storage.')
        # Journalled before the copy starts: copy_volume deletes its own partial volume on failure,
        # but a run killed mid-copy leaves it behind, and the next run must know it is ours.
        self.made['volumes'].append(disk['path'])
        self._save_journal()
        copied = copy_volume(self.sides.src_conn, self.sides.dst_conn, disk_obj, self.sides.src_host,
                             self.sides.dst_host)
        self.done.append('copied %s to %s' % (disk['path'], self.sides.dst_host))
        return copied

    def _define_on_destination(self):
        self.made['defined'] = not self.dest_defined_before
        self._save_journal()
        try:
            self.dom.migrateToURI3(self.uri, self.spec.params, self.spec.flags)
        except Exception:
            # libvirt may have defined it before failing: the rollback looks at the destination.
            raise
        self.done.append('defined on %s' % self.sides.dst_host)

    def _start_on_destination(self):
        dest = self.sides.dst_conn.lookupByUUIDString(self.uuid)
        self.made['started'] = True
        self._save_journal()
        dest.create()
        if not dest.isActive():
            raise MigrationError('%s did not stay running on %s after it was started' % (self.name, self.sides.dst_host))
        self.done.append('started on %s' % self.sides.dst_host)

    def _commit(self, copies):
        """The guest is defined (and, if it was running, runs) on the destination: now, and only
        now, its definition (and, when asked, its copied images) leave the source."""
        if self.options['undefine_source']:
            try:
                self.dom.undefineFlags(UNDEFINE_FLAGS)
                self.done.append('undefined on %s' % self.sides.src_host)
            except Exception as exc:  # the guest runs on the destination: reported, the re-run removes it
                self.done.append('undefine on %s failed: %s' % (self.sides.src_host, exc))
        if self.options['remove_source_storage']:
            for copy in copies:
                entry = delete_volume(self.sides.src_conn, self.sides.src_host, copy['path'],
                                      'remove_source_storage: copied to %s' % self.sides.dst_host)
                self.done.append('removed %s on %s%s' % (copy['path'], self.sides.src_host,
                                                         '' if entry['done'] else ' failed: %s' % entry['error']))

    # -- undoing ------------------------------------------------------------------------
    def _rolled_back(self, step, exc, restart_source):
        """Undo what this run made on the destination, start the guest again on the source if it
        was running, and return the error that reports both."""
        self.undone = self.rollback(restart_source)
        outcome = verify_and_repair(self.sides, self.uuid, self._attempt())
        reason = exc.msg if isinstance(exc, KvmopsError) else str(exc)
        left = [u for u in self.undone if not u['done']]
        if not left:
            self._forget_journal()
        where = ', '.join(outcome.location.running_on) or 'no host'
        msg = ('Cold migration of %s failed at "%s": %s. Rolled back: %s. The guest now runs on %s.' % (
            self.name, step, reason, ', '.join(u['step'] for u in self.undone if u['done']) or 'nothing to undo',
            where) if restart_source else
            'Offline migration of %s failed at "%s": %s. Rolled back: %s.' % (
                self.name, step, reason, ', '.join(u['step'] for u in self.undone if u['done']) or 'nothing to undo'))
        remedy = None
        if left:
            msg += ' NOT undone: %s.' % '; '.join('%s (%s)' % (u['step'], u.get('error')) for u in left)
            remedy = ('Run the same task again once %s answers: it finishes the rollback first (journal %s).'
                      % (self.sides.dst_host, self.journal_file))
        error = MigrationError(msg, remedy=remedy)
        error.details.update(location=outcome.as_dict(), steps=self.done, rollback=self.undone)
        return error

    def rollback(self, restart_source):
        """Undo the journalled changes on the destination; start the source again if asked."""
        undone = []
        dst = read_view(self.sides.dst_conn, self.uuid, self.sides.dst_host)
        dst_conn = self.sides.dst_conn if dst.reachable else None
        left = {'volumes': [], 'defined': False, 'started': False}
        if self.made['started'] or dst.active:
            entry = self._undo('destroy on %s' % self.sides.dst_host, dst_conn,
                               lambda c: c.lookupByUUIDString(self.uuid).destroy(), dst.active or not dst.reachable)
            left['started'] = not entry['done']
            undone.append(entry)
        if self.made['defined']:
            entry = self._undo('undefine on %s' % self.sides.dst_host, dst_conn,
                               lambda c: c.lookupByUUIDString(self.uuid).undefineFlags(UNDEFINE_FLAGS),
                               dst.exists or not dst.reachable)
            left['defined'] = not entry['done']
            undone.append(entry)
        for path in self.made['volumes']:
            entry = self._undo('delete %s on %s' % (path, self.sides.dst_host), dst_conn,
                               lambda c, p=path: _delete_if_there(c, p), True)
            if not entry['done']:
                left['volumes'].append(path)
            undone.append(entry)
        self.made = left
        self._save_journal()
        if restart_source:
            undone.append(self._undo('start on %s' % self.sides.src_host, self.sides.src_conn,
                                     lambda c: _start_if_off(c.lookupByUUIDString(self.uuid)), True))
        return undone

    def _undo(self, step, conn, action, needed):
        if not needed:
            return {'step': step, 'done': True, 'note': 'nothing there'}
        if conn is None:
            return {'step': step, 'done': False, 'error': 'host unreachable'}
        try:
            action(conn)
            return {'step': step, 'done': True}
        except Exception as exc:  # reported: the journal keeps it for the next run
            return {'step': step, 'done': False, 'error': str(exc)}

    def _attempt(self):
        return Attempt(want_persistent=self.options['persistent'], want_undefine_source=self.options['undefine_source'],
                       dest_defined_before=self.dest_defined_before)

    # -- journal ---------------------------------------------------------------------------
    def _save_journal(self):
        write_json(self.journal_file, {'name': self.name, 'uuid': self.uuid, 'source': self.sides.src_host,
                                       'destination': self.sides.dst_host, 'made': self.made, 'pid': os.getpid()})

    def _forget_journal(self):
        try:
            os.remove(self.journal_file)
        except OSError:
            pass


def finish_interrupted(sides, uuid, state_dir):
    """Undo what an earlier cold run left on the destination (its journal names it) when that run
    was killed or could not reach the destination to roll back. Returns the rollback entries, or
    None when there is no journal for this pair. A guest that already runs on the destination
    (the earlier run got that far) is not touched: its journal is just dropped."""
    path = journal_path(state_dir, uuid)
    journal = read_json(path)
    if not journal or journal.get('destination') != sides.dst_host:
        return None
    dst = read_view(sides.dst_conn, uuid, sides.dst_host)
    src = read_view(sides.src_conn, uuid, sides.src_host)
    if dst.holds_guest and not src.active:
        os.remove(path)
        return []
    runner = ColdMigration.__new__(ColdMigration)
    runner.sides, runner.uuid, runner.name = sides, uuid, journal.get('name', uuid)
    runner.made, runner.journal_file = journal['made'], path
    undone = runner.rollback(restart_source=False)
    if all(u['done'] for u in undone):
        os.remove(path)
    return undone


def _delete_if_there(conn, path):
    try:
        vol = conn.storageVolLookupByPath(path)
    except Exception:  # not there: nothing to delete
        return
    vol.delete(0)


def _start_if_off(dom):
    if not dom.isActive():
        dom.create()
