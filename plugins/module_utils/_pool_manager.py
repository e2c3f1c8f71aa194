# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_storage_pool: the libvirt storage pools (dir, netfs, iscsi, iscsi-direct) shared storage is used through.

The pool is present/absent like any libvirt object defined from XML (``_libvirt_object``); what is
particular to it: which options define a pool of each type, its XML, when an existing pool must be
redefined (a field we manage differs; another type only while it is stopped) and its volumes.

Private to kvmops.migration: the API may change without notice.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    InvalidInputError,
    translated,
)
from ansible_collections.kvmops.migration.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_object import (
    WantedState,
    converge,
    lookup_or_none,
)
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_ERR_NO_STORAGE_POOL,
    VIR_STORAGE_POOL_CREATE_WITH_BUILD,
    VIR_STORAGE_XML_INACTIVE,
)

# Where the kernel initiator's LUN device links appear: an iscsi pool's target path by default.
ISCSI_DEFAULT_TARGET_PATH = '/dev/disk/by-path'

ARGUMENT_SPEC = dict(
    name=dict(type='str', required=True),
    type=dict(type='str', choices=['dir', 'netfs', 'iscsi', 'iscsi-direct'], default='dir'),
    target_path=dict(type='path'),
    source_host=dict(type='str'),
    source_port=dict(type='int'),
    source_dir=dict(type='str'),
    source_format=dict(type='str', choices=['auto', 'nfs', 'glusterfs', 'cifs']),
    source_device=dict(type='str'),
    initiator_iqn=dict(type='str'),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    active=dict(type='bool', default=True),
    autostart=dict(type='bool', default=True),
    build=dict(type='bool', default=True),
    restart_on_change=dict(type='bool', default=False),
)


def validate(params):
    """Refuse a pool definition that lacks what its type needs (before libvirt is touched);
    returns the parameters with an iscsi pool's default target path filled in."""
    params = dict(params)
    pool_type = params['type']
    if params['state'] != 'present':
        return params
    if pool_type in ('dir', 'netfs') and not params['target_path']:
        raise InvalidInputError('target_path is required for a %s pool' % pool_type)
    if pool_type == 'iscsi' and not params['target_path']:
        params['target_path'] = ISCSI_DEFAULT_TARGET_PATH
    if pool_type != 'dir' and not params['source_host']:
        raise InvalidInputError('source_host is required for a %s pool' % pool_type)
    if pool_type == 'netfs' and not params['source_dir']:
        raise InvalidInputError('source_dir is required for a netfs pool')
    if pool_type in ('iscsi', 'iscsi-direct') and not params['source_device']:
        raise InvalidInputError('source_device (the target IQN) is required for a %s pool' % pool_type)
    if pool_type == 'iscsi-direct' and not params['initiator_iqn']:
        raise InvalidInputError('initiator_iqn is required for an iscsi-direct pool')
    return params


def desired_fields(params):
    """The fields that define the pool, in a comparable form (None: not used by this type)."""
    pool_type = params['type']
    iscsi = pool_type in ('iscsi', 'iscsi-direct')
    return dict(
        type=pool_type,
        target_path=params['target_path'] if pool_type in ('dir', 'netfs', 'iscsi') else None,
        source_host=params['source_host'] if pool_type != 'dir' else None,
        source_port=params['source_port'] if iscsi else None,
        source_dir=params['source_dir'] if pool_type == 'netfs' else None,
        source_format=params['source_format'] if pool_type == 'netfs' else None,
        source_device=params['source_device'] if iscsi else None,
        initiator_iqn=params['initiator_iqn'] if iscsi else None,
    )


def _attribute(source, path, attribute):
    element = source.find(path) if source is not None else None
    return element.get(attribute) if element is not None else None


def current_fields(root, want):
    """Fields of an existing pool's XML; fields we do not manage (None in want) are left out."""
    source = root.find('source')
    port = _attribute(source, 'host', 'port')
    found = dict(
        type=root.get('type'),
        target_path=root.findtext('target/path'),
        source_host=_attribute(source, 'host', 'name'),
        source_port=int(port) if port else None,
        source_dir=_attribute(source, 'dir', 'path'),
        source_format=_attribute(source, 'format', 'type'),
        source_device=_attribute(source, 'device', 'path'),
        initiator_iqn=_attribute(source, 'initiator/iqn', 'name'),
    )
    return dict((key, value) for key, value in found.items() if want.get(key) is not None or key == 'type')


def pool_xml(name, fields, uuid=None):
    """The definition of a pool with ``fields`` (as ``desired_fields`` returns them)."""
    root = ET.Element('pool', {'type': fields['type']})
    ET.SubElement(root, 'name').text = name
    if uuid:
        ET.SubElement(root, 'uuid').text = uuid
    if fields['type'] != 'dir':
        source = ET.SubElement(root, 'source')
        host = ET.SubElement(source, 'host', {'name': fields['source_host']})
        if fields['source_port']:
            host.set('port', str(fields['source_port']))
        if fields['source_dir']:
            ET.SubElement(source, 'dir', {'path': fields['source_dir']})
        if fields['source_device']:
            ET.SubElement(source, 'device', {'path': fields['source_device']})
        if fields['source_format']:
            ET.SubElement(source, 'format', {'type': fields['source_format']})
        if fields['initiator_iqn']:
            ET.SubElement(ET.SubElement(source, 'initiator'), 'iqn', {'name': fields['initiator_iqn']})
    if fields['target_path']:
        ET.SubElement(ET.SubElement(root, 'target'), 'path').text = fields['target_path']
    ET.indent(root, space='  ')
    return ET.tostring(root, encoding='unicode') + '\n'


class StoragePoolKind:
    """A libvirt storage pool, as ``_libvirt_object.converge`` manages it."""

    noun = 'storage pool'
    still_running_old_definition = ('Storage pool %s was redefined but keeps running with its old definition '
                                    'until it is restarted (restart_on_change=false)')

    def __init__(self, conn, name, fields, build):
        self.conn = conn
        self.name = name
        self.fields = fields
        # Only dir and netfs pools have a directory libvirt can create when starting them.
        self.build = build and fields['type'] in ('dir', 'netfs')

    def lookup(self, name):
        return lookup_or_none(self.conn.storagePoolLookupByName, name, VIR_ERR_NO_STORAGE_POOL, self.noun)

    def define(self, xml):
        return self.conn.storagePoolDefineXML(xml, 0)

    @staticmethod
    def definition(handle):
        return handle.XMLDesc(VIR_STORAGE_XML_INACTIVE)

    def start(self, handle):
        handle.create(VIR_STORAGE_POOL_CREATE_WITH_BUILD if self.build else 0)

    def wanted_xml(self, uuid=None):
        return pool_xml(self.name, self.fields, uuid)

    def needs_redefinition(self, current_xml, active):
        have = current_fields(ET.fromstring(current_xml), self.fields)
        want = dict((key, value) for key, value in self.fields.items() if value is not None or key == 'type')
        if have == want:
            return False
        if have['type'] != want['type'] and active:
            raise InvalidInputError(
                'Storage pool %s is an active pool of type %s, not %s' % (self.name, have['type'], want['type']),
                remedy='Stop and undefine it first (state=absent), or choose another pool name.')
        return True


def manage_pool(kvm):
    """virt_storage_pool's run: the result dict (``diff`` only in diff mode)."""
    params = validate(kvm.params)
    name = params['name']
    present = params['state'] == 'present'
    wanted = WantedState(present=present, active=params['active'], autostart=params['autostart'],
                         restart_on_change=params['restart_on_change'])
    kind = StoragePoolKind(kvm.client.conn, name, desired_fields(params), params['build'])
    done = converge(kind, name, wanted, check_mode=kvm.check_mode, warn=kvm.warn)
    volumes = []
    if present and done.handle is not None and not kvm.check_mode:
        with translated('Managing %s %s' % (kind.noun, name)):
            if done.handle.isActive():
                volumes = sorted(done.handle.listVolumes())
    if present:
        pool = dict(name=name, type=params['type'], defined=True, active=params['active'],
                    autostart=params['autostart'], uuid=done.uuid, volumes=volumes)
    else:
        pool = dict(name=name, type=params['type'], defined=False, active=False, autostart=False,
                    uuid=None, volumes=[])
    diff = DifferenceTracker()
    diff.add('pool', done.before, done.after)
    return diff.add_to(dict(changed=done.changed, actions=done.actions, pool=pool), kvm.diff_mode, name='pool')
