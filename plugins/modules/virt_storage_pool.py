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
    details:
      - The diff shows the pool's persistent XML before and after.
      - The result has a C(diff) key only in diff mode (C(--diff)).
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

from ansible_collections.kvmops.migration.plugins.module_utils._module_wrapper import KvmopsModule
from ansible_collections.kvmops.migration.plugins.module_utils._pool_manager import ARGUMENT_SPEC, manage_pool


def main():
    KvmopsModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True).run(manage_pool)


if __name__ == '__main__':
    main()
