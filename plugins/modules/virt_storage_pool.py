#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: virt_storage_pool
short_description: Manage the libvirt storage pools shared storage is used through
version_added: 0.1.0
description:
  - Defines, starts and autostarts a libvirt storage pool of type C(dir) (a directory, for
    example a mount point of NFS or GlusterFS storage the host mounts itself), C(netfs)
    (libvirt mounts NFS or GlusterFS), C(iscsi) (kernel initiator through C(iscsiadm)) or
    C(iscsi-direct) (libvirt's own initiator, libiscsi; no kernel support needed).
  - Detects drift of the pool's type, target path or source and redefines the pool, keeping
    its UUID. A running pool keeps its old definition until it is restarted, which this module
    only does with O(restart_on_change=true) (restarting an iSCSI pool logs out its session).
  - Returns the pool's volumes, so that the same volumes can be checked on every host.
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
    details: The diff shows the pool's persistent XML before and after.
  platform:
    platforms: posix
options:
  name:
    description: Name of the storage pool.
    type: str
    required: true
  type:
    description: Pool type.
    type: str
    choices: [dir, netfs, iscsi, iscsi-direct]
    default: dir
  target_path:
    description:
      - Directory of the pool (C(dir), C(netfs) mount point) or where C(iscsi) LUN device
        links appear (for example V(/dev/disk/by-path)). Required for C(dir) and C(netfs).
    type: path
  source_host:
    description: NFS/GlusterFS server or iSCSI portal address (C(netfs), C(iscsi), C(iscsi-direct)).
    type: str
  source_port:
    description: iSCSI portal port.
    type: int
  source_dir:
    description: Exported directory (NFS) or volume name (GlusterFS) for C(netfs).
    type: str
  source_format:
    description: File system of a C(netfs) pool.
    type: str
    choices: [auto, nfs, glusterfs, cifs]
  source_device:
    description: iSCSI target IQN (C(iscsi), C(iscsi-direct)).
    type: str
  initiator_iqn:
    description:
      - Initiator IQN. Required for C(iscsi-direct); optional for C(iscsi).
    type: str
  state:
    description: Whether the pool is defined.
    type: str
    choices: [present, absent]
    default: present
  active:
    description: Whether the pool is started. Ignored with O(state=absent).
    type: bool
    default: true
  autostart:
    description: Whether libvirt starts the pool with the daemon. Ignored with O(state=absent).
    type: bool
    default: true
  build:
    description:
      - Create the pool's directory when starting a C(dir) or C(netfs) pool whose target
        path does not exist (C(VIR_STORAGE_POOL_CREATE_WITH_BUILD)).
    type: bool
    default: true
  restart_on_change:
    description: Restart an active pool whose definition changed.
    type: bool
    default: false
notes:
  - Removing a pool (O(state=absent)) does not delete its volumes or unmount anything the
    host mounted itself.
  - C(iscsi-direct) needs libvirt's iscsi-direct storage backend (Debian package
    C(libvirt-daemon-driver-storage-iscsi-direct)); C(iscsi) needs C(iscsiadm) and the
    kernel's iSCSI initiator.
'''

EXAMPLES = r'''
- name: Directory pool on a GlusterFS mount, the same on every hypervisor
  kvmops.migration.virt_storage_pool:
    name: shared
    type: dir
    target_path: /var/lib/libvirt/shared

- name: iSCSI LUNs through libvirt's own initiator
  kvmops.migration.virt_storage_pool:
    name: san
    type: iscsi-direct
    source_host: 192.0.2.10
    source_device: iqn.2026-01.example:storage.luns
    initiator_iqn: "iqn.2026-01.example:{{ inventory_hostname }}"
'''

RETURN = r'''
pool:
  description: The pool's state after the module ran (in check mode, as it would be).
  returned: always
  type: dict
  contains:
    name:
      description: Pool name.
      type: str
    type:
      description: Pool type.
      type: str
    defined:
      description: Whether the pool is defined.
      type: bool
    active:
      description: Whether the pool is running.
      type: bool
    autostart:
      description: Whether the pool starts with the daemon.
      type: bool
    uuid:
      description: The pool's UUID.
      type: str
    volumes:
      description: Names of the pool's volumes (empty when the pool is not running).
      type: list
      elements: str
actions:
  description: What the module did (or would do in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [define, start, autostart]
'''

import xml.etree.ElementTree as ET

from ansible_collections.kvmops.migration.plugins.module_utils._client import (
    InvalidInputError,
    KvmopsModule,
    libvirt,
    translated,
)

VIR_ERR_NO_STORAGE_POOL = 49
VIR_STORAGE_XML_INACTIVE = 1
VIR_STORAGE_POOL_CREATE_WITH_BUILD = 1


def _flag(name, default):
    return getattr(libvirt, name, default) if libvirt is not None else default


def lookup(conn, name):
    try:
        return conn.storagePoolLookupByName(name)
    except Exception as exc:  # pylint: disable=broad-except
        if getattr(exc, 'get_error_code', lambda: None)() == _flag('VIR_ERR_NO_STORAGE_POOL', VIR_ERR_NO_STORAGE_POOL):
            return None
        with translated('Looking up storage pool %s' % name):
            raise


def desired_fields(p):
    """The fields that define the pool, in a comparable form."""
    return dict(
        type=p['type'],
        target_path=p['target_path'] if p['type'] in ('dir', 'netfs', 'iscsi') else None,
        source_host=p['source_host'] if p['type'] != 'dir' else None,
        source_port=p['source_port'] if p['type'] in ('iscsi', 'iscsi-direct') else None,
        source_dir=p['source_dir'] if p['type'] == 'netfs' else None,
        source_format=p['source_format'] if p['type'] == 'netfs' else None,
        source_device=p['source_device'] if p['type'] in ('iscsi', 'iscsi-direct') else None,
        initiator_iqn=p['initiator_iqn'] if p['type'] in ('iscsi', 'iscsi-direct') else None,
    )


def current_fields(root, want):
    """Fields of an existing pool's XML; fields we do not manage (None in want) are ignored."""
    src = root.find('source')
    host = src.find('host') if src is not None else None
    found = dict(
        type=root.get('type'),
        target_path=root.findtext('target/path'),
        source_host=host.get('name') if host is not None else None,
        source_port=int(host.get('port')) if host is not None and host.get('port') else None,
        source_dir=src.find('dir').get('path') if src is not None and src.find('dir') is not None else None,
        source_format=(src.find('format').get('type')
                       if src is not None and src.find('format') is not None else None),
        source_device=(src.find('device').get('path')
                       if src is not None and src.find('device') is not None else None),
        initiator_iqn=(src.find('initiator/iqn').get('name')
                       if src is not None and src.find('initiator/iqn') is not None else None),
    )
    return dict((k, v) for k, v in found.items() if want.get(k) is not None or k == 'type')


def pool_xml(name, f, uuid=None):
    root = ET.Element('pool', {'type': f['type']})
    ET.SubElement(root, 'name').text = name
    if uuid:
        ET.SubElement(root, 'uuid').text = uuid
    if f['type'] != 'dir':
        src = ET.SubElement(root, 'source')
        host = ET.SubElement(src, 'host', {'name': f['source_host']})
        if f['source_port']:
            host.set('port', str(f['source_port']))
        if f['source_dir']:
            ET.SubElement(src, 'dir', {'path': f['source_dir']})
        if f['source_device']:
            ET.SubElement(src, 'device', {'path': f['source_device']})
        if f['source_format']:
            ET.SubElement(src, 'format', {'type': f['source_format']})
        if f['initiator_iqn']:
            ET.SubElement(ET.SubElement(src, 'initiator'), 'iqn', {'name': f['initiator_iqn']})
    if f['target_path']:
        ET.SubElement(ET.SubElement(root, 'target'), 'path').text = f['target_path']
    if hasattr(ET, 'indent'):
        ET.indent(root, space='  ')
    return ET.tostring(root, encoding='unicode') + '\n'


def validate(p):
    t = p['type']
    if p['state'] != 'present':
        return
    if t in ('dir', 'netfs') and not p['target_path']:
        raise InvalidInputError('target_path is required for a %s pool' % t)
    if t == 'iscsi' and not p['target_path']:
        p['target_path'] = '/dev/disk/by-path'
    if t != 'dir' and not p['source_host']:
        raise InvalidInputError('source_host is required for a %s pool' % t)
    if t == 'netfs' and not p['source_dir']:
        raise InvalidInputError('source_dir is required for a netfs pool')
    if t in ('iscsi', 'iscsi-direct') and not p['source_device']:
        raise InvalidInputError('source_device (the target IQN) is required for a %s pool' % t)
    if t == 'iscsi-direct' and not p['initiator_iqn']:
        raise InvalidInputError('initiator_iqn is required for an iscsi-direct pool')


def run_module(kvm):
    p = kvm.params
    validate(p)
    conn = kvm.client.conn
    name = p['name']
    actions = []
    before_xml = after_xml = ''
    volumes = []
    with translated('Managing storage pool %s' % name):
        pool = lookup(conn, name)
        inactive_flag = _flag('VIR_STORAGE_XML_INACTIVE', VIR_STORAGE_XML_INACTIVE)
        if p['state'] == 'absent':
            if pool is not None:
                before_xml = pool.XMLDesc(inactive_flag)
                if pool.isActive():
                    actions.append('stop')
                    if not kvm.check_mode:
                        pool.destroy()
                actions.append('undefine')
                if not kvm.check_mode:
                    pool.undefine()
            return dict(changed=bool(actions), actions=actions, diff=dict(before=before_xml, after=''),
                        pool=dict(name=name, type=p['type'], defined=False, active=False, autostart=False,
                                  uuid=None, volumes=[]))

        want = desired_fields(p)
        uuid = None
        active = autostart = False
        if pool is None:
            actions.append('define')
            after_xml = pool_xml(name, want)
            if not kvm.check_mode:
                pool = conn.storagePoolDefineXML(after_xml, 0)
        else:
            uuid = pool.UUIDString()
            active = bool(pool.isActive())
            autostart = bool(pool.autostart())
            before_xml = after_xml = pool.XMLDesc(inactive_flag)
            have = current_fields(ET.fromstring(before_xml), want)
            if have != dict((k, v) for k, v in want.items() if v is not None or k == 'type'):
                if have['type'] != want['type'] and active:
                    raise InvalidInputError(
                        'Storage pool %s is an active pool of type %s, not %s' % (name, have['type'], want['type']),
                        remedy='Stop and undefine it first (state=absent), or choose another pool name.')
                actions.append('redefine')
                after_xml = pool_xml(name, want, uuid)
                if not kvm.check_mode:
                    pool = conn.storagePoolDefineXML(after_xml, 0)
                if active and p['restart_on_change']:
                    actions.append('restart')
                    if not kvm.check_mode:
                        pool.destroy()
                        active = False
                elif active:
                    kvm.warn('Storage pool %s was redefined but keeps running with its old definition '
                             'until it is restarted (restart_on_change=false)' % name)
        if p['active'] and not active:
            actions.append('start')
            if not kvm.check_mode:
                build = p['build'] and p['type'] in ('dir', 'netfs')
                pool.create(_flag('VIR_STORAGE_POOL_CREATE_WITH_BUILD', VIR_STORAGE_POOL_CREATE_WITH_BUILD)
                            if build else 0)
        elif not p['active'] and active:
            actions.append('stop')
            if not kvm.check_mode:
                pool.destroy()
        if p['autostart'] != autostart:
            actions.append('autostart' if p['autostart'] else 'no-autostart')
            if not kvm.check_mode:
                pool.setAutostart(1 if p['autostart'] else 0)
        if pool is not None and not kvm.check_mode:
            uuid = pool.UUIDString()
            after_xml = pool.XMLDesc(inactive_flag)
            if pool.isActive():
                volumes = sorted(pool.listVolumes())
    return dict(changed=bool(actions), actions=actions, diff=dict(before=before_xml, after=after_xml),
                pool=dict(name=name, type=p['type'], defined=True, active=p['active'], autostart=p['autostart'],
                          uuid=uuid, volumes=volumes))


def main():
    KvmopsModule(
        argument_spec=dict(
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
        ),
        supports_check_mode=True,
    ).run(run_module)


if __name__ == '__main__':
    main()
