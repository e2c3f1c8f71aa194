#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: virt_guest_power
short_description: Shut guests down cleanly for a host's maintenance (never forced off), start them again
version_added: 0.1.0
description:
  - Brings the named guests of the hypervisor it runs on to O(state), and reports which guests run there.
  - C(shutdown) sends each running guest the shutdown request (ACPI) at once, then waits up to
    O(shutdown_timeout) for all of them to be shut off. A guest still running then fails the task, naming it;
    nothing is ever forced off.
  - A transient guest (it would be gone once shut down, with no definition to start it from) and a paused guest
    (it cannot react to the request) are refused before anything changes.
  - C(running) starts each named guest that is shut off.
  - With no O(names), changes nothing and only reports RV(running) - for example to make sure nothing runs on a
    host before it reboots.
  - The C(rolling_maintenance) role uses it for the guests that cannot move (C(rolling_unmovable=shutdown)).
author:
  - kvmops.migration contributors (@kvmops)
extends_documentation_fragment:
  - kvmops.migration.connection
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what it would do (and refuses what it would refuse); RV(running) is the state as it is.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  names:
    description: Guests defined on this host. An unknown name is refused before anything changes.
    type: list
    elements: str
    default: []
  state:
    description: C(shutdown) (shut off, cleanly) or C(running).
    type: str
    choices: [shutdown, running]
    default: shutdown
  shutdown_timeout:
    description: Seconds the guests have, together, to shut down, 1 to 86400.
    type: int
    default: 300
seealso:
  - module: kvmops.migration.virt_rolling_round
'''

EXAMPLES = r'''
- name: Shut down the guests that cannot leave the host, cleanly
  kvmops.migration.virt_guest_power:
    names: [license-server]
    state: shutdown
    shutdown_timeout: 600

- name: Nothing may run here when it reboots
  kvmops.migration.virt_guest_power:
  register: power
  failed_when: power.running | length > 0

- name: Start them again after the maintenance
  kvmops.migration.virt_guest_power:
    names: [license-server]
    state: running
'''

RETURN = r'''
guests:
  description: One entry per guest of O(names).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Guest name.
      type: str
    before:
      description: Its libvirt state before, e.g. C(running), C(shut off).
      type: str
    after:
      description: Its state after (in check mode, the state it would have).
      type: str
    changed:
      description: Whether it was (or would be) shut down or started.
      type: bool
running:
  description: Names of all the guests running on this host after the module ran.
  returned: always
  type: list
  elements: str
'''

from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError
from ansible_collections.kvmops.migration.plugins.module_utils._module_wrapper import KvmopsModule
from ansible_collections.kvmops.migration.plugins.module_utils._guest_power import GuestPower

ARGUMENT_SPEC = dict(
    names=dict(type='list', elements='str', default=[]),
    state=dict(type='str', default='shutdown', choices=['shutdown', 'running']),
    shutdown_timeout=dict(type='int', default=300),
)


def run_module(kvm):
    params = kvm.params
    if not 1 <= params['shutdown_timeout'] <= 86400:
        raise InvalidInputError('shutdown_timeout=%s must be between 1 and 86400 seconds' % params['shutdown_timeout'])
    names = list(dict.fromkeys(params['names']))
    power = GuestPower(kvm.client.conn, check_mode=kvm.check_mode)
    return power.apply(names, params['state'], params['shutdown_timeout'])


def main():
    KvmopsModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True).run(run_module)


if __name__ == '__main__':
    main()
