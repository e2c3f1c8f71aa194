# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight's storage checks: shared proven, copyable, cache mode, other disk kinds."""

from __future__ import annotations

from ansible_collections.kvmops.migration.plugins.module_utils._preflight_storage_checks import check_disk
from ansible_collections.kvmops.migration.tests.unit.plugins.module_utils.preflight_data import MIB


def _disk(**kw):
    d = {'target': 'vda', 'device': 'disk', 'type': 'file', 'path': '/var/lib/libvirt/images/vm1.qcow2',
         'format': 'qcow2', 'cache': 'none', 'readonly': False, 'shareable': False, 'protocol': None,
         'pool': None, 'volume': None}
    d.update(kw)
    return d


GLUSTER = ('/var/lib/libvirt/images', 'fuse.glusterfs')
LOCAL = ('/', 'ext4')


class TestStorageCheck:
    def test_shared_proven(self):
        c = check_disk('vm1', _disk(), {'fs': GLUSTER, 'probe': {'method': 'ssh', 'seen': True},
                                        'src_qemu_version': 7002000})
        assert c['status'] == 'ok' and 'shared storage' in c['detail'] and c['guest'] == 'vm1'

    def test_same_files_but_not_a_shared_fs_for_libvirt(self):
        c = check_disk('vm1', _disk(), {'fs': ('/srv', 'xfs'), 'probe': {'method': 'ssh', 'seen': True}})
        assert c['status'] == 'fail' and 'unsafe' in c['detail']

    def test_cache_mode_unsafe_only_with_old_qemu(self):
        facts = {'fs': GLUSTER, 'probe': {'method': 'ssh', 'seen': True}}
        disk = _disk(cache='writeback')
        assert check_disk('vm1', disk, dict(facts, src_qemu_version=7002000))['status'] == 'ok'
        c = check_disk('vm1', disk, dict(facts, src_qemu_version=3001000))
        assert c['status'] == 'fail' and "cache='writeback'" in c['detail']
        assert check_disk('vm1', disk, dict(facts, fs=('/c', 'gfs2'), src_qemu_version=3001000))['status'] == 'ok'

    def test_local_copyable_warns_naming_disk(self):
        c = check_disk('vm1', _disk(path='/var/lib/libvirt/local/vm1.qcow2'), {
            'fs': LOCAL, 'probe': {'method': 'ssh', 'seen': False}, 'dest_file': {'exists': False},
            'dest_pool': {'name': 'local', 'active': True, 'available': 10 * MIB}, 'need_bytes': MIB})
        assert c['status'] == 'warn' and 'copy_storage' in c['detail'] and 'vda' in c['detail']
        assert 'copy_storage' in c['remedy']

    def test_local_without_pool_or_space_fails(self):
        base = {'fs': LOCAL, 'probe': {'method': 'ssh', 'seen': False}, 'dest_file': {'exists': False}, 'need_bytes': 5 * MIB}
        disk = _disk(path='/var/lib/libvirt/local/vm1.qcow2')
        c = check_disk('vm1', disk, dict(base, dest_pool={'error': 'Storage pool not found'}))
        assert c['status'] == 'fail' and 'pool-define-as' in c['remedy']
        c = check_disk('vm1', disk, dict(base, dest_pool={'name': 'local', 'active': True, 'available': MIB}))
        assert c['status'] == 'fail' and 'free' in c['detail']
        c = check_disk('vm1', disk, dict(base, dest_pool={'name': 'local', 'active': False}))
        assert c['status'] == 'fail' and 'pool-start' in c['remedy']

    def test_local_with_foreign_file_at_same_path(self):
        c = check_disk('vm1', _disk(), {'fs': LOCAL, 'probe': {'seen': False},
                                        'dest_file': {'exists': True, 'size': 3 * MIB}})
        assert c['status'] == 'fail' and 'write over it' in c['detail']

    def test_unprovable(self):
        c = check_disk('vm1', _disk(), {'fs': GLUSTER, 'probe': {'seen': None, 'write_error': 'read-only fs'}})
        assert c['status'] == 'warn' and 'read-only fs' in c['detail']

    def test_other_disk_kinds(self):
        assert check_disk('vm1', _disk(path=None, device='cdrom'), {})['status'] == 'ok'
        assert check_disk('vm1', _disk(type='network', protocol='rbd', path='pool/img'), {})['status'] == 'ok'
        assert check_disk('vm1', _disk(type='nvme', path='nvme:pci'), {})['status'] == 'fail'
        blk = _disk(type='block', path='/dev/sdb')
        assert check_disk('vm1', blk, {'dest_file': {'exists': False}})['status'] == 'fail'
        assert check_disk('vm1', blk, {'dest_file': {'exists': True, 'block': True, 'size': MIB}})['status'] == 'warn'
        ro = _disk(readonly=True, path='/isos/x.iso')
        assert check_disk('vm1', ro, {'probe': {'seen': False}, 'dest_file': {'exists': True}})['status'] == 'ok'
        assert check_disk('vm1', ro, {'probe': {'seen': False}, 'dest_file': {'exists': False}})['status'] == 'fail'
