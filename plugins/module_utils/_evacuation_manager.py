# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The virt_evacuate manager: gather host facts, plan, run migrations concurrently with the
same MigrationManager as virt_migrate, record maintenance marks and origins, report.

``Evacuation`` puts the actions together (``_evacuation_moves``: evacuate, return, rebalance;
``_evacuation_recovery``: recover, rejoin; ``_evacuation_backup``: backup) over what they share
(``_evacuation_base``), validates the parameters and runs the action under this host's lock.
"""

from __future__ import annotations

import os

from ansible_collections.kvmops.migration.plugins.module_utils._destination import HOST_FORMS, check_data_stream, check_host
from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_moves import GuestMoves
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_recovery import Recovery
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_runner import PASSTHROUGH
from ansible_collections.kvmops.migration.plugins.module_utils._oplock import OperationLock
from ansible_collections.kvmops.migration.plugins.module_utils._progress import RUN_ENDED, ProgressLog
from ansible_collections.kvmops.migration.plugins.module_utils._statefile import DEFAULT_STATE_DIR

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


class Evacuation(GuestMoves, Recovery):
    """A run of virt_evacuate: ``run()`` validates, connects, and does ``do_<action>``."""

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

    def run(self):
        self.validate()
        local = self.new_client(self.p['uri'])
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
