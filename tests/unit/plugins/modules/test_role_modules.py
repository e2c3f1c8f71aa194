# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The roles' helper modules reject bad input before connecting to libvirt (the harness
fails the test if they try). Their effects are proven by the molecule scenario."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.modules import (
    virt_bridge_network,
    virt_cpu_baseline,
    virt_storage_pool,
)


@pytest.mark.parametrize('module,args,words', [
    (virt_bridge_network, {'name': 'mig'}, 'missing: bridge'),
    (virt_bridge_network, {'name': 'mig', 'bridge': 'br0', 'state': 'gone'}, 'state'),
    (virt_cpu_baseline, {'cpus': ['<cpu'], 'include_host': False}, 'not valid XML'),
    (virt_cpu_baseline, {'cpus': ['<domain/>'], 'include_host': False}, 'not a <cpu> definition'),
    (virt_cpu_baseline, {'include_host': False}, 'No CPU to compute a baseline from'),
    (virt_storage_pool, {'name': 'p'}, 'target_path is required'),
    (virt_storage_pool, {'name': 'p', 'type': 'netfs', 'target_path': '/mnt'}, 'source_host is required'),
    (virt_storage_pool, {'name': 'p', 'type': 'netfs', 'target_path': '/mnt', 'source_host': 'nfs'},
     'source_dir is required'),
    (virt_storage_pool, {'name': 'p', 'type': 'iscsi-direct', 'source_host': 's', 'source_device': 'iqn.x'},
     'initiator_iqn is required'),
    (virt_storage_pool, {'name': 'p', 'type': 'lvm'}, 'type'),
])
def test_bad_input_fails_before_connecting(run_main, module, args, words):
    result, failed = run_main(module, args)
    assert failed and words in result['msg']


class NoObjects:
    """A libvirt connection without networks or storage pools."""

    def networkLookupByName(self, name):  # noqa: N802
        raise NotFound(43)

    def storagePoolLookupByName(self, name):  # noqa: N802
        raise NotFound(49)

    def close(self):
        return 0


class NotFound(Exception):
    def __init__(self, code):
        super().__init__('not found')
        self.code = code

    def get_error_code(self):
        return self.code


@pytest.mark.parametrize('module,args', [
    (virt_bridge_network, {'name': 'mig', 'bridge': 'br0'}),
    (virt_storage_pool, {'name': 'p', 'target_path': '/srv/p'}),
])
@pytest.mark.parametrize('diff_mode', [False, True])
def test_the_diff_is_returned_in_diff_mode_only(run_main, module, args, diff_mode):
    result, failed = run_main(module, args, check_mode=True, diff_mode=diff_mode, conn=NoObjects())
    assert not failed and result['changed'] and result['actions'] == ['define', 'start', 'autostart']
    assert ('diff' in result) is diff_mode
    if diff_mode:
        assert result['diff']['before'] == '' and '<name>' in result['diff']['after']
