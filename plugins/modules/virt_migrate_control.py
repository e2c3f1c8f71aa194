#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: virt_migrate_control
short_description: Act on a running migration - abort, change bandwidth or downtime, start post-copy
version_added: 0.1.0
description:
  - Acts on the migration job of a domain on the host the module runs on (the source), like
    C(virsh domjobabort), C(virsh migrate-setspeed), C(virsh migrate-setmaxdowntime) and C(virsh migrate-postcopy).
  - O(action=abort) is idempotent - with no job running, nothing is done and C(changed=false).
  - O(action=set_bandwidth) is idempotent - the limit already in effect is not set again.
    Note that a bandwidth of 0 means B(unlimited) in libvirt; it never pauses a migration.
  - The other actions fail with a clear message when no migration runs.
author:
  - kvmops.migration contributors (@kvmops)
extends_documentation_fragment:
  - kvmops.migration.connection
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what would be done.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  name:
    description: Domain whose migration to act on.
    type: str
    required: true
  action:
    description: What to do.
    type: str
    required: true
    choices: [abort, set_bandwidth, set_max_downtime, start_postcopy]
  bandwidth:
    description: New bandwidth limit in MiB/s for O(action=set_bandwidth); V(0) means unlimited.
    type: int
  max_downtime:
    description: New maximum downtime in ms for O(action=set_max_downtime).
    type: int
'''

EXAMPLES = r'''
- name: Give a running migration more bandwidth
  kvmops.migration.virt_migrate_control:
    name: db01
    action: set_bandwidth
    bandwidth: 500

- name: Abort it
  kvmops.migration.virt_migrate_control:
    name: db01
    action: abort
'''

RETURN = r'''
job_running:
  description: Whether a migration job was running when the module acted.
  returned: always
  type: bool
previous:
  description: The setting before the change (bandwidth in MiB/s) where libvirt reports it.
  returned: when O(action=set_bandwidth)
  type: int
msg:
  description: What was done.
  returned: always
  type: str
'''

from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    InvalidInputError,
    MigrationError,
    translated,
)
from ansible_collections.kvmops.migration.plugins.module_utils._module_wrapper import KvmopsModule
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import VIR_DOMAIN_JOB_NONE


def run_module(kvm):
    p = kvm.params
    action = p['action']
    if action == 'set_bandwidth' and (p['bandwidth'] is None or not 0 <= p['bandwidth'] <= 1000000):
        raise InvalidInputError('action=set_bandwidth needs bandwidth between 0 (unlimited) and 1000000 MiB/s, got %s'
                                % p['bandwidth'], remedy='Set bandwidth in MiB/s.')
    if action == 'set_max_downtime' and (p['max_downtime'] is None or not 1 <= p['max_downtime'] <= 600000):
        raise InvalidInputError('action=set_max_downtime needs max_downtime between 1 and 600000 ms, got %s'
                                % p['max_downtime'], remedy='Set max_downtime in milliseconds.')
    dom = kvm.client.lookup_domain(name=p['name'])
    with translated('Reading the job of %s' % p['name']):
        running = dom.isActive() and dom.jobInfo()[0] != VIR_DOMAIN_JOB_NONE
    result = {'changed': False, 'job_running': bool(running)}
    if not running:
        if action == 'abort':
            result['msg'] = 'No job runs on %s: nothing to abort' % p['name']
            return result
        raise MigrationError('No migration runs on %s: cannot %s' % (p['name'], action.replace('_', ' ')),
                             remedy='Run this on the source host while the migration is in progress.')
    if action == 'set_bandwidth':
        with translated('Reading the migration bandwidth of %s' % p['name']):
            result['previous'] = dom.migrateGetMaxSpeed(0)
        if result['previous'] == p['bandwidth']:
            result['msg'] = 'Bandwidth already %s MiB/s' % p['bandwidth']
            return result
    result['changed'] = True
    result['msg'] = 'Would %s' % action.replace('_', ' ') if kvm.check_mode else 'Done: %s' % action.replace('_', ' ')
    if kvm.check_mode:
        return result
    with translated('%s on %s' % (action, p['name'])):
        if action == 'abort':
            dom.abortJob()
        elif action == 'set_bandwidth':
            dom.migrateSetMaxSpeed(p['bandwidth'], 0)
        elif action == 'set_max_downtime':
            dom.migrateSetMaxDowntime(p['max_downtime'], 0)
        else:
            dom.migrateStartPostCopy(0)
    return result


def main():
    KvmopsModule(argument_spec=dict(
        name=dict(type='str', required=True),
        action=dict(type='str', required=True, choices=['abort', 'set_bandwidth', 'set_max_downtime', 'start_postcopy']),
        bandwidth=dict(type='int'),
        max_downtime=dict(type='int'),
    ), supports_check_mode=True).run(run_module)


if __name__ == '__main__':
    main()
