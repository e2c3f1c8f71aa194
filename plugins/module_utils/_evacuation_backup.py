# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_evacuate's definitions backup: every persistent guest of this host, one XML file each on the
shared storage, for a recovery after the host is lost (``action=backup``, and before an evacuation)."""

from __future__ import annotations

import glob
import os

from ansible_collections.kvmops.migration.plugins.module_utils._errors import KvmopsError, translated
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation import backup_changes
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_base import EvacuationBase
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_runner import host_facts
from ansible_collections.kvmops.migration.plugins.module_utils._statefile import PRIVATE_FILE_MODE, read_text, write_text


class BackupError(KvmopsError):
    """The definitions backup could not be read or written."""


def read_backups(directory):
    """{guest: file text (None if unreadable)} of the definition backups in ``directory`` ({} if it is missing)."""
    return dict((os.path.basename(path)[:-len('.xml')], read_text(path))
                for path in glob.glob(os.path.join(directory, '*.xml')))


class DefinitionsBackup(EvacuationBase):
    """The backup of the definitions (``do_backup``; ``save_definitions`` also runs before an evacuation)."""

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
