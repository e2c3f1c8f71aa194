# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._client import InvalidInputError
from ansible_collections.kvmops.migration.plugins.module_utils._migration_manager import default_timeout_s, dest_uri
from ansible_collections.kvmops.migration.plugins.module_utils._storage import disks_of


@pytest.mark.parametrize('dest,transport,uri', [
    ('host-b', 'ssh', 'qemu+ssh://host-b/system'),
    ('host-b.example.org', 'tls', 'qemu+tls://host-b.example.org/system'),
    ('10.0.0.2', 'tcp', 'qemu+tcp://10.0.0.2/system'),
    ('qemu+ssh://root@host-b/system?keyfile=/k', 'ssh', 'qemu+ssh://root@host-b/system?keyfile=/k'),
])
def test_dest_uri(dest, transport, uri):
    assert dest_uri(dest, transport) == uri


@pytest.mark.parametrize('dest', ['qemu+ssh://', 'qemu:///system', 'host b', 'hôst', '-host', ''])
def test_dest_uri_rejects_what_names_no_remote_host(dest):
    with pytest.raises(InvalidInputError) as err:
        dest_uri(dest, 'ssh')
    assert err.value.remedy


def test_default_timeout_scales_per_gib():
    assert default_timeout_s(0) == 120
    assert default_timeout_s(4 * 1024 ** 3) == 360
    assert default_timeout_s(1024 ** 3, 2 * 1024 ** 3) == 300


def test_disks_of_lists_file_and_block_disks_and_skips_empty_cdroms():
    xml = """<domain><devices>
      <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/v/a.qcow2'/><target dev='vda'/></disk>
      <disk type='block' device='disk'><source dev='/dev/sdb'/><target dev='vdb'/></disk>
      <disk type='file' device='cdrom'><target dev='hdc'/><readonly/></disk>
      <disk type='file' device='cdrom'><source file='/iso/x.iso'/><target dev='hdd'/><readonly/></disk>
    </devices></domain>"""
    disks = disks_of(xml)
    assert [(d.target, d.path, d.format, d.readonly) for d in disks] == [
        ('vda', '/v/a.qcow2', 'qcow2', False), ('vdb', '/dev/sdb', 'raw', False), ('hdd', '/iso/x.iso', 'raw', True)]
    assert disks[0].directory == '/v'
