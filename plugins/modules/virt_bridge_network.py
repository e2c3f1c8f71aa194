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
    details: The diff shows the network's persistent XML before and after.
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

import xml.etree.ElementTree as ET

from ansible_collections.kvmops.migration.plugins.module_utils._client import (
    KvmopsModule,
    libvirt,
    translated,
)

VIR_ERR_NO_NETWORK = 43
VIR_NETWORK_XML_INACTIVE = 1


def _flag(name, default):
    return getattr(libvirt, name, default) if libvirt is not None else default


def lookup(conn, name):
    try:
        return conn.networkLookupByName(name)
    except Exception as exc:  # pylint: disable=broad-except
        if getattr(exc, 'get_error_code', lambda: None)() == _flag('VIR_ERR_NO_NETWORK', VIR_ERR_NO_NETWORK):
            return None
        with translated('Looking up network %s' % name):
            raise


def network_xml(name, bridge, uuid=None):
    root = ET.Element('network')
    ET.SubElement(root, 'name').text = name
    if uuid:
        ET.SubElement(root, 'uuid').text = uuid
    ET.SubElement(root, 'forward', {'mode': 'bridge'})
    ET.SubElement(root, 'bridge', {'name': bridge})
    if hasattr(ET, 'indent'):
        ET.indent(root, space='  ')
    return ET.tostring(root, encoding='unicode') + '\n'


def current(net):
    """(forward mode, bridge name, persistent xml) of an existing network."""
    xml = net.XMLDesc(_flag('VIR_NETWORK_XML_INACTIVE', VIR_NETWORK_XML_INACTIVE))
    root = ET.fromstring(xml)
    forward = root.find('forward')
    bridge = root.find('bridge')
    return (forward.get('mode') if forward is not None else None,
            bridge.get('name') if bridge is not None else None, xml)


def run_module(kvm):
    p = kvm.params
    conn = kvm.client.conn
    name = p['name']
    actions = []
    before_xml = ''
    after_xml = ''
    with translated('Managing network %s' % name):
        net = lookup(conn, name)
        if p['state'] == 'absent':
            if net is not None:
                before_xml = current(net)[2]
                if net.isActive():
                    actions.append('stop')
                    if not kvm.check_mode:
                        net.destroy()
                actions.append('undefine')
                if not kvm.check_mode:
                    net.undefine()
            state = dict(name=name, bridge=None, defined=False, active=False, autostart=False, uuid=None)
            return dict(changed=bool(actions), actions=actions, network=state,
                        diff=dict(before=before_xml, after=''))

        uuid = None
        active = False
        autostart = False
        if net is None:
            actions.append('define')
            after_xml = network_xml(name, p['bridge'])
            if not kvm.check_mode:
                net = conn.networkDefineXML(after_xml)
        else:
            uuid = net.UUIDString()
            active = bool(net.isActive())
            autostart = bool(net.autostart())
            mode, bridge, before_xml = current(net)
            after_xml = before_xml
            if mode != 'bridge' or bridge != p['bridge']:
                actions.append('redefine')
                after_xml = network_xml(name, p['bridge'], uuid)
                if not kvm.check_mode:
                    net = conn.networkDefineXML(after_xml)
                if active and p['restart_on_change']:
                    actions.append('restart')
                    if not kvm.check_mode:
                        net.destroy()
                        active = False
                elif active:
                    kvm.warn('Network %s was redefined but keeps running with its old definition '
                             '(restart_on_change=false)' % name)
        if p['active'] and not active:
            actions.append('start')
            if not kvm.check_mode:
                net.create()
        elif not p['active'] and active:
            actions.append('stop')
            if not kvm.check_mode:
                net.destroy()
        if p['autostart'] != autostart:
            actions.append('autostart' if p['autostart'] else 'no-autostart')
            if not kvm.check_mode:
                net.setAutostart(1 if p['autostart'] else 0)
        if net is not None and not kvm.check_mode:
            uuid = net.UUIDString()
            after_xml = current(net)[2]
    state = dict(name=name, bridge=p['bridge'], defined=True, active=p['active'], autostart=p['autostart'],
                 uuid=uuid)
    return dict(changed=bool(actions), actions=actions, network=state,
                diff=dict(before=before_xml, after=after_xml))


def main():
    KvmopsModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            bridge=dict(type='str'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            active=dict(type='bool', default=True),
            autostart=dict(type='bool', default=True),
            restart_on_change=dict(type='bool', default=True),
        ),
        required_if=[('state', 'present', ['bridge'])],
        supports_check_mode=True,
    ).run(run_module)


if __name__ == '__main__':
    main()
