#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: virt_bridge_network
short_description: Manage a libvirt network that forwards to an existing host bridge
version_added: 0.1.0
description:
  - Defines, starts and autostarts a libvirt network of C(<forward mode='bridge'/>) that puts
    guests' NICs on an existing host bridge, so that a guest's C(<interface type='network'>)
    resolves to the same segment on every hypervisor it migrates to.
  - Detects drift (a network of that name with another bridge or forward mode) and redefines
    it, keeping its UUID; an active network is restarted so the new definition takes effect
    (O(restart_on_change)).
  - The bridge itself is not created here (see the C(kvmops.migration.migration_network) role).
author:
  - kvmops contributors (@kvmops)
extends_documentation_fragment:
  - kvmops.migration.connection
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the network's persistent XML before and after.
      - The result has a C(diff) key only in diff mode (C(--diff)).
  platform:
    platforms: posix
options:
  name:
    description: Name of the libvirt network.
    type: str
    required: true
  bridge:
    description:
      - Name of the host bridge the network forwards to. Required with O(state=present).
    type: str
  state:
    description: Whether the network is defined.
    type: str
    choices: [present, absent]
    default: present
  active:
    description: Whether the network is started. Ignored with O(state=absent).
    type: bool
    default: true
  autostart:
    description: Whether libvirt starts the network when the daemon starts. Ignored with O(state=absent).
    type: bool
    default: true
  restart_on_change:
    description:
      - Restart (destroy and start) an active network whose definition changed, so the running
        network uses it. Guests already attached keep their interfaces.
    type: bool
    default: true
notes:
  - Removing a network (O(state=absent)) does not detach guests that use it; they lose the
    network only when they are restarted or migrated.
'''

EXAMPLES = r'''
- name: Libvirt network on bridge br-mig, the same name on every hypervisor
  kvmops.migration.virt_bridge_network:
    name: mig-net
    bridge: br-mig

- name: Remove it
  kvmops.migration.virt_bridge_network:
    name: mig-net
    state: absent
'''

RETURN = r'''
network:
  description: The network's state after the module ran (in check mode, as it would be).
  returned: always
  type: dict
  contains:
    name:
      description: Network name.
      type: str
    bridge:
      description: Bridge the network forwards to (null when absent).
      type: str
    defined:
      description: Whether the network is defined.
      type: bool
    active:
      description: Whether the network is running.
      type: bool
    autostart:
      description: Whether the network starts with the daemon.
      type: bool
    uuid:
      description: The network's UUID (null when absent or not yet defined in check mode).
      type: str
actions:
  description: What the module did (or would do in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [define, start, autostart]
'''

from ansible_collections.kvmops.migration.plugins.module_utils._module_wrapper import KvmopsModule
from ansible_collections.kvmops.migration.plugins.module_utils._network_manager import (
    ARGUMENT_SPEC,
    REQUIRED_IF,
    manage_network,
)


def main():
    KvmopsModule(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True).run(manage_network)


if __name__ == '__main__':
    main()
