#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: virt_blockcopy
short_description: Copy one disk of a running libvirt guest online and switch the guest to the copy
version_added: 0.1.0
description:
  - Copies one disk of a running guest while the guest keeps running (libvirt C(blockCopy), a QEMU
    mirror job), waits until the mirror is ready, pivots the guest onto the copy (C(blockJobAbort) with
    PIVOT), and verifies that the live definition and, for a persistent guest, the persistent definition
    both name the new source, so the guest keeps it after a restart.
  - "The copy goes to one of three kinds of destination: a path on the hypervisor (O(dest)); a volume of a
    libvirt storage pool on the hypervisor (O(dest_pool) and O(dest_volume)), which the module creates when
    it does not exist; or a network target, an NBD export or a GlusterFS image (O(dest) as a URL), which must
    exist already (O(reuse_external=true)) and is never created, formatted or deleted by the module."
  - On failure or timeout before the pivot, the job is aborted and the guest stays on its original disk,
    running; a partial copy the module created (a file at a path, or a volume) is removed.
  - The source image is never deleted, unless O(remove_source) is set, and then only after a verified pivot
    and only if it is a local file that no other domain on this host uses.
  - Idempotent. If the disk already uses the destination, nothing is done (C(changed=false)); if only the
    persistent definition still names the old image, that definition is fixed. A copy job to the same
    destination left by an earlier run (O(wait=false) or O(pivot=false)) is adopted.
  - For persistent guests libvirt 9.0 refuses a copy job unless it is marked transient
    (C(VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB)); the module sets it, so a job does not survive a guest restart.
author:
  - kvmops contributors (@kvmops)
extends_documentation_fragment:
  - kvmops.migration.connection
  - kvmops.migration.state_dir
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Validates everything (disk, format, destination, free space) and returns the plan in RV(plan).
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  name:
    description:
      - Name of the running guest.
    type: str
    required: true
  disk:
    description:
      - The disk to copy, by target device (C(vda)) or current source path.
    type: str
    required: true
  dest:
    description:
      - Where the copy goes, either an absolute path or a network URL.
      - "An absolute path: a file or a block device on the hypervisor this module runs on. Without
        O(reuse_external) it must not exist; libvirt creates it. C(~) and C($VARS) are expanded, as for a
        C(type: path) option."
      - "C(nbd://HOST[:PORT]/EXPORT) (port 10809 by default): an export of an NBD server, for example
        C(qemu-nbd -f raw -x EXPORT --persistent --shared=4 IMAGE). The image behind the export must have
        exactly the disk's virtual size."
      - "C(gluster://HOST[:PORT]/VOLUME/IMAGE) (port 24007 by default): an image file on a GlusterFS volume,
        reached by QEMU through libgfapi. It must exist and have exactly the disk's virtual size."
      - A network target needs O(reuse_external=true); the module never creates, formats or deletes anything on
        it. Its free space and existence are not checked; QEMU's errors are reported. User names, passwords and
        URL options are refused; O(shallow) is not supported for network targets.
      - Mutually exclusive with O(dest_pool) and O(dest_volume). One of O(dest) and O(dest_volume) is required.
    type: str
  dest_pool:
    description:
      - Name of a libvirt storage pool on the hypervisor; the copy goes to its volume O(dest_volume). The pool
        must be active.
      - When the volume does not exist, the module creates it (storageVolCreateXML) with the disk's virtual size,
        format O(format), sparse, after checking the pool's available space, and copies into it. The module
        creates volumes only in pools of type C(dir), C(fs) and C(netfs); in other pools, create the volume
        yourself and pass O(reuse_external=true).
      - An existing volume is refused unless O(reuse_external=true); then it must be a file or block volume with
        exactly the disk's virtual size (and, for a file volume, format O(format)).
      - Works with a remote O(uri) too (the pool is looked up through libvirt).
    type: str
  dest_volume:
    description:
      - Name of the volume in O(dest_pool) (a name such as C(web1.qcow2), not a path). Needs O(dest_pool).
    type: str
  format:
    description:
      - Format of the copy. Default is the format of the source image, which must then be raw or qcow2; for a
        network target the default is C(raw) (the export or image holds the disk's bytes).
    type: str
    choices: [raw, qcow2]
  shallow:
    description:
      - Copy only the top image; the copy gets the source's backing chain. Needs O(format=qcow2).
    type: bool
    default: false
  reuse_external:
    description:
      - Copy into an existing image at O(dest) or an existing volume O(dest_volume) (it must exist, with a
        suitable size and format; for O(shallow) with the right backing file). Required for a network O(dest).
    type: bool
    default: false
  bandwidth:
    description:
      - Limit of the copy in MiB/s. Also changes the limit of a running copy job to the same destination that is
        adopted.
    type: int
  synchronous_writes:
    description:
      - Guest writes go to both images synchronously while copying, so a busy guest cannot outrun the copy
        (C(VIR_DOMAIN_BLOCK_COPY_SYNCHRONOUS_WRITES)).
    type: bool
    default: false
  pivot:
    description:
      - Switch the guest to the copy once it is ready. With C(false), the job is left mirroring (every guest
        write goes to both images) until a later run with C(pivot=true) pivots it, or O(abort) cancels it.
    type: bool
    default: true
  abort:
    description:
      - Cancel the copy job of this disk (left by an earlier O(pivot=false) or O(wait=false) run) and keep the
        guest on its original disk. The partial copy (file, volume, or what the network target received) is left
        in place.
    type: bool
    default: false
  wait:
    description:
      - Wait for the copy to become ready (and pivot). With C(false), the job is started and the module
        returns; a later run with the same destination adopts it.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for the mirror to become ready before aborting the copy.
    type: int
    default: 600
  poll_interval:
    description:
      - Longest pause between two progress samples, in seconds (the first samples come faster).
    type: float
    default: 0.5
  remove_source:
    description:
      - Delete the old image after a verified pivot, if it is a regular file here and no domain on this host
        (running or defined) uses it. Other hosts sharing the storage are not checked. A network source is never
        deleted.
    type: bool
    default: false
  lock_timeout:
    description:
      - The copy holds the guest's lock (C(<state_dir>/guests/<uuid>.lock)), as a migration does, so a migration
        or another copy of the same guest waits for it or is refused. How long to wait for another operation on the
        guest to release it before refusing; V(0) refuses at once.
    type: int
    default: 60
notes:
  - The disk must be a file, block or network disk of a running guest. A network disk can be copied to any
    destination kind (tested with NBD and GlusterFS sources).
  - "libvirt 9.0 (the lab's) also accepts a network target without C(VIR_DOMAIN_BLOCK_COPY_REUSE_EXT); the
    module always sets it there, so libvirt treats the target as an existing image and creates nothing on it."
  - For a path O(dest), existence and free space are checked on the host the module runs on; with a remote
    O(uri) these checks are skipped (a warning says so).
  - QEMU copies only into an image of the same virtual size as the disk; a job into a target of another size
    stops at once (the run fails, the guest stays on its disk).
seealso:
  - module: kvmops.migration.virt_migrate_preflight
'''

EXAMPLES = r'''
- name: Move vda of web1 from shared storage to local storage, online
  kvmops.migration.virt_blockcopy:
    name: web1
    disk: vda
    dest: /var/lib/libvirt/local/web1.qcow2

- name: Move it back, limited to 50 MiB/s, and delete the local copy after the pivot
  kvmops.migration.virt_blockcopy:
    name: web1
    disk: /var/lib/libvirt/local/web1.qcow2
    dest: /var/lib/libvirt/images/web1.qcow2
    bandwidth: 50
    remove_source: true

- name: Start mirroring now, pivot later
  kvmops.migration.virt_blockcopy:
    name: db1
    disk: vdb
    dest: /srv/fast/db1-data.raw
    format: raw
    pivot: false

- name: Pivot the mirror started above
  kvmops.migration.virt_blockcopy:
    name: db1
    disk: vdb
    dest: /srv/fast/db1-data.raw

- name: Move vda of web1 to a new volume of the storage pool "local" (created with the disk's size)
  kvmops.migration.virt_blockcopy:
    name: web1
    disk: vda
    dest_pool: local
    dest_volume: web1.qcow2

- name: Move vda of web1 to an NBD export on storage-1 (qemu-nbd -f raw -x web1 --persistent --shared=4 IMAGE)
  kvmops.migration.virt_blockcopy:
    name: web1
    disk: vda
    dest: nbd://storage-1:10809/web1
    reuse_external: true

- name: Move it from the NBD export back to a file
  kvmops.migration.virt_blockcopy:
    name: web1
    disk: vda
    dest: /var/lib/libvirt/local/web1.raw
'''

RETURN = r'''
disk:
  description: Target device of the copied disk.
  returned: always
  type: str
  sample: vda
old_source:
  description: >-
    Source of the disk before the copy (null when it was already at the destination): a path, or for a network
    disk C(protocol://host:port/name).
  returned: always
  type: str
  sample: /var/lib/libvirt/images/web1.qcow2
new_source:
  description: >-
    The destination: O(dest) as a normalised path, the path of the volume O(dest_volume), or a network target
    as C(protocol://host:port/name) with the default port filled in. After O(abort), the source the guest uses.
  returned: always
  type: str
  sample: /var/lib/libvirt/local/web1.qcow2
dest_kind:
  description: Kind of destination, C(path), C(volume) or C(network).
  returned: always
  type: str
  sample: volume
volume_created:
  description: >-
    Whether this run created O(dest_volume) and kept it (false again when it was deleted after a failed copy,
    see RV(partial_dest_removed)).
  returned: when O(dest_pool) is given
  type: bool
format:
  description: Format of the copy.
  returned: when a copy was planned or started
  type: str
  sample: qcow2
pivoted:
  description: Whether the guest was switched to the copy in this run.
  returned: always
  type: bool
mirroring:
  description: Whether a copy job is left running (O(pivot=false) or O(wait=false)).
  returned: always
  type: bool
aborted:
  description: Whether a copy job was aborted (O(abort), or after a failure/timeout).
  returned: always
  type: bool
state:
  description: >-
    Final state: C(pivoted), C(ready) (left mirroring), C(waiting)/C(mirroring) (O(wait=false)),
    C(done) (already at the destination), C(planned) (check mode), C(aborted), C(no job).
  returned: always
  type: str
bytes_copied:
  description: Bytes the job reported copied when it became ready (its C(end)).
  returned: always
  type: int
duration_s:
  description: Seconds from the start of the job (or its adoption) to ready.
  returned: always
  type: float
throughput_mib_s:
  description: bytes_copied / duration_s in MiB/s.
  returned: always
  type: float
samples:
  description: Progress samples (at most 60, thinned evenly), each C(t) seconds from the start, C(cur), C(end), C(state).
  returned: always
  type: list
  elements: dict
  sample: [{t: 0.0, cur: 0, end: 67108864, state: waiting}, {t: 0.11, cur: 67108864, end: 67108864, state: ready}]
persistent_updated_by:
  description: >-
    Who made the persistent definition name the new source: C(libvirt) (it does so on pivot since 9.0),
    C(module (updateDeviceFlags)) or C(module (defineXML)); null for transient guests.
  returned: always
  type: str
persistent_source:
  description: Source of the disk in the persistent definition after the run.
  returned: for persistent guests after a pivot or when already at the destination
  type: str
source_removed:
  description: Whether the old image was deleted (O(remove_source)).
  returned: always
  type: bool
partial_dest_removed:
  description: Whether a partial copy (a file, or a volume) created by this run was deleted after a failure.
  returned: after a failure
  type: bool
plan:
  description: What the module does (or would do in check mode) and with which flags.
  returned: when a copy is planned, started or adopted
  type: dict
  sample: {disk: vda, old_source: /var/lib/libvirt/images/web1.qcow2, new_source: /var/lib/libvirt/local/web1.qcow2,
           dest_kind: volume, pool: local, volume: web1.qcow2, create_volume: true,
           format: qcow2, flags: 6, transient_job: true, needed_bytes: 1245184, free_bytes: 245325467648,
           bandwidth_bytes: 0, steps: [create volume ..., blockCopy ..., wait until the mirror is ready ..., pivot ...]}
'''

from ansible_collections.kvmops.migration.plugins.module_utils._blockcopier import BlockCopier, uri_is_local
from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError
from ansible_collections.kvmops.migration.plugins.module_utils._module_wrapper import KvmopsModule
from ansible_collections.kvmops.migration.plugins.module_utils._copytarget import parse_dest
from ansible_collections.kvmops.migration.plugins.module_utils._oplock import GuestLock
from ansible_collections.kvmops.migration.plugins.module_utils._statefile import DEFAULT_STATE_DIR

ARGUMENT_SPEC = dict(
    name=dict(type='str', required=True),
    disk=dict(type='str', required=True),
    dest=dict(type='str'),
    dest_pool=dict(type='str'),
    dest_volume=dict(type='str'),
    format=dict(type='str', choices=['raw', 'qcow2']),
    shallow=dict(type='bool', default=False),
    reuse_external=dict(type='bool', default=False),
    bandwidth=dict(type='int'),
    synchronous_writes=dict(type='bool', default=False),
    pivot=dict(type='bool', default=True),
    abort=dict(type='bool', default=False),
    wait=dict(type='bool', default=True),
    timeout=dict(type='int', default=600),
    poll_interval=dict(type='float', default=0.5),
    remove_source=dict(type='bool', default=False),
    lock_timeout=dict(type='int', default=60),
    state_dir=dict(type='path', default=DEFAULT_STATE_DIR),
)

MUTUALLY_EXCLUSIVE = [('abort', 'remove_source'), ('dest', 'dest_pool'), ('dest', 'dest_volume')]
REQUIRED_TOGETHER = [('dest_pool', 'dest_volume')]
REQUIRED_ONE_OF = [('dest', 'dest_volume')]


def validate(params):
    """Refuse bad input before the domain is touched; return the destination (a CopyTarget)."""
    if params['timeout'] <= 0:
        raise InvalidInputError('timeout must be > 0 seconds')
    if params['bandwidth'] is not None and params['bandwidth'] <= 0:
        raise InvalidInputError('bandwidth must be a positive number of MiB/s (leave it out for no limit)')
    if not 0.01 <= params['poll_interval'] <= 60:
        raise InvalidInputError('poll_interval must be between 0.01 and 60 seconds')
    if not 0 <= params['lock_timeout'] <= 86400:
        raise InvalidInputError('lock_timeout must be between 0 (refuse at once) and 86400 seconds')
    if params['remove_source'] and not params['pivot']:
        raise InvalidInputError('remove_source needs pivot: true (the source is only removed after a verified pivot)')
    return parse_dest(params['dest'], params['dest_pool'], params['dest_volume'])


def run_module(kvm):
    params = kvm.params
    target = validate(params)
    dom = kvm.client.lookup_domain(name=params['name'])
    copier = BlockCopier(dom, params, check_mode=kvm.check_mode, local=uri_is_local(kvm.client.uri), warn=kvm.warn,
                         target=target)
    if kvm.check_mode:
        return copier.run()
    # One operation per guest: a migration or another copy of this guest waits for this one, or is refused.
    with GuestLock(params['state_dir'], dom.UUIDString(), params['name'], 'copy disk %s of %s' % (
            params['disk'], params['name']), params['lock_timeout'], describe={'operation': 'blockcopy'}):
        return copier.run()


def main():
    KvmopsModule(argument_spec=ARGUMENT_SPEC, mutually_exclusive=MUTUALLY_EXCLUSIVE,
                 required_together=REQUIRED_TOGETHER, required_one_of=REQUIRED_ONE_OF,
                 supports_check_mode=True).run(run_module)


if __name__ == '__main__':
    main()
