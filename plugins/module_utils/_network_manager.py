# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_bridge_network: a libvirt network of ``<forward mode='bridge'/>`` on an existing host bridge.

The network is present/absent like any libvirt object defined from XML (``_libvirt_object``); what
is particular to it is its XML and when an existing network must be redefined (another bridge or
forward mode).

Private to kvmops.migration: the API may change without notice.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ansible_collections.kvmops.migration.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_object import (
    WantedState,
    converge,
    lookup_or_none,
)
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_ERR_NO_NETWORK,
    VIR_NETWORK_XML_INACTIVE,
)

ARGUMENT_SPEC = dict(
    name=dict(type='str', required=True),
    bridge=dict(type='str'),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    active=dict(type='bool', default=True),
    autostart=dict(type='bool', default=True),
    restart_on_change=dict(type='bool', default=True),
)
REQUIRED_IF = [('state', 'present', ['bridge'])]


def network_xml(name, bridge, uuid=None):
    """The definition of a network that forwards to the host bridge ``bridge``."""
    root = ET.Element('network')
    ET.SubElement(root, 'name').text = name
    if uuid:
        ET.SubElement(root, 'uuid').text = uuid
    ET.SubElement(root, 'forward', {'mode': 'bridge'})
    ET.SubElement(root, 'bridge', {'name': bridge})
    ET.indent(root, space='  ')
    return ET.tostring(root, encoding='unicode') + '\n'


def forward_and_bridge(xml):
    """(forward mode, bridge name) of a network definition (None for what it lacks)."""
    root = ET.fromstring(xml)
    forward = root.find('forward')
    bridge = root.find('bridge')
    return (forward.get('mode') if forward is not None else None,
            bridge.get('name') if bridge is not None else None)


class BridgeNetworkKind:
    """A bridge-forwarding libvirt network, as ``_libvirt_object.converge`` manages it."""

    noun = 'network'
    still_running_old_definition = ('Network %s was redefined but keeps running with its old definition '
                                    '(restart_on_change=false)')

    def __init__(self, conn, name, bridge):
        self.conn = conn
        self.name = name
        self.bridge = bridge

    def lookup(self, name):
        return lookup_or_none(self.conn.networkLookupByName, name, VIR_ERR_NO_NETWORK, self.noun)

    def define(self, xml):
        return self.conn.networkDefineXML(xml)

    @staticmethod
    def definition(handle):
        return handle.XMLDesc(VIR_NETWORK_XML_INACTIVE)

    @staticmethod
    def start(handle):
        handle.create()

    def wanted_xml(self, uuid=None):
        return network_xml(self.name, self.bridge, uuid)

    def needs_redefinition(self, current_xml, active):
        return forward_and_bridge(current_xml) != ('bridge', self.bridge)


def manage_network(kvm):
    """virt_bridge_network's run: the result dict (``diff`` only in diff mode)."""
    params = kvm.params
    name = params['name']
    present = params['state'] == 'present'
    wanted = WantedState(present=present, active=params['active'], autostart=params['autostart'],
                         restart_on_change=params['restart_on_change'])
    kind = BridgeNetworkKind(kvm.client.conn, name, params['bridge'])
    done = converge(kind, name, wanted, check_mode=kvm.check_mode, warn=kvm.warn)
    if present:
        network = dict(name=name, bridge=params['bridge'], defined=True, active=params['active'],
                       autostart=params['autostart'], uuid=done.uuid)
    else:
        network = dict(name=name, bridge=None, defined=False, active=False, autostart=False, uuid=None)
    diff = DifferenceTracker()
    diff.add('network', done.before, done.after)
    return diff.add_to(dict(changed=done.changed, actions=done.actions, network=network),
                       kvm.diff_mode, name='network')
