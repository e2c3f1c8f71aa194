# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a hypervisor offers a migration: its libvirt configuration, mounts, available memory."""

from __future__ import annotations

from ansible_collections.kvmops.migration.plugins.module_utils._host_facts import (
    available_memory,
    filesystem_of,
    libvirt_port,
    migration_port_range,
    parse_conf,
    parse_mountinfo,
)


class TestHostFacts:
    def test_parse_conf_and_ports(self):
        conf = parse_conf(['migration_port_min = 50000', 'migration_port_max = 50010  # end',
                           'migration_host = "mig.example"', 'listen_tls = 0', 'garbage'])
        assert conf == {'migration_port_min': 50000, 'migration_port_max': 50010,
                        'migration_host': 'mig.example', 'listen_tls': 0}
        assert migration_port_range(conf) == (50000, 50010)
        assert migration_port_range({}) == (49152, 49215)
        assert libvirt_port({}, 'tcp') == 16509 and libvirt_port({'tls_port': '1234'}, 'tls') == 1234
        assert libvirt_port({}, 'ssh') == 22 and libvirt_port({}, 'tcp', uri_port=99) == 99

    def test_mountinfo(self):
        text = ("22 1 0:21 / / rw - ext4 /dev/sda1 rw\n"
                "40 22 0:40 / /var/lib/libvirt/images rw,relatime shared:1 - fuse.glusterfs storage-1:/vmstore rw\n"
                "41 22 0:41 / /mnt/with\\040space rw - nfs4 srv:/x rw\n")
        mounts = parse_mountinfo(text)
        assert filesystem_of('/var/lib/libvirt/images/a.qcow2', mounts) == ('/var/lib/libvirt/images', 'fuse.glusterfs')
        assert filesystem_of('/var/lib/libvirt/imagesX/a', mounts) == ('/', 'ext4')
        assert filesystem_of('/mnt/with space/disk', mounts) == ('/mnt/with space', 'nfs4')

    def test_available_memory(self):
        assert available_memory({'free': 100, 'buffers': 10, 'cached': 50, 'total': 1000}) == 160 * 1024
        assert available_memory(None, 12345) == 12345
