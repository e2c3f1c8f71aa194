# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Copy destinations: parsing dest into a typed target, source keys, destination XML, pool/volume verdicts."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils import _copytarget as ct
from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError
from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import network_source_key

MIB = 1024 * 1024


class TestParseDest:
    def test_path(self, monkeypatch):
        monkeypatch.setenv('BC_DIR', '/srv/fast')
        t = ct.parse_dest('$BC_DIR/../fast/vm1.qcow2')
        assert (t.kind, t.path, t.key, t.is_network) == (ct.PATH, '/srv/fast/vm1.qcow2', '/srv/fast/vm1.qcow2', False)
        assert t.label == 'dest /srv/fast/vm1.qcow2'
        # Not absolute: accepted here, refused by plan_copy with the same message as before.
        assert ct.parse_dest('vm1.qcow2').key == 'vm1.qcow2'

    def test_volume(self):
        t = ct.parse_dest(dest_pool='local', dest_volume='vm1.qcow2')
        assert (t.kind, t.pool, t.volume, t.path, t.key) == (ct.VOLUME, 'local', 'vm1.qcow2', None, None)
        resolved = t.replace(path='/var/lib/libvirt/local/vm1.qcow2')
        assert resolved.key == '/var/lib/libvirt/local/vm1.qcow2' and t.path is None
        assert resolved.label == 'volume vm1.qcow2 in pool local (/var/lib/libvirt/local/vm1.qcow2)'

    @pytest.mark.parametrize('url, protocol, host, port, name, key', [
        ('nbd://storage-1:10851/exp1', 'nbd', 'storage-1', 10851, 'exp1', 'nbd://storage-1:10851/exp1'),
        ('NBD://Storage-1/exp1', 'nbd', 'storage-1', 10809, 'exp1', 'nbd://storage-1:10809/exp1'),
        ('nbd://[fd00::10]:10809/my%20disk', 'nbd', 'fd00::10', 10809, 'my disk', 'nbd://[fd00::10]:10809/my disk'),
        ('gluster://10.213.7.10/vmstore/dir/vm1.raw', 'gluster', '10.213.7.10', 24007, 'vmstore/dir/vm1.raw',
         'gluster://10.213.7.10:24007/vmstore/dir/vm1.raw'),
    ])
    def test_network(self, url, protocol, host, port, name, key):
        t = ct.parse_dest(url)
        assert (t.kind, t.protocol, t.host, t.port, t.name, t.key) == (ct.NETWORK, protocol, host, port, name, key)
        assert t.is_network and t.path is None and ct.source_key(url) == key

    @pytest.mark.parametrize('kwargs, message', [
        ({}, 'is required'),
        ({'dest': '/x', 'dest_pool': 'p', 'dest_volume': 'v'}, 'mutually exclusive'),
        ({'dest_pool': 'p'}, 'go together'),
        ({'dest_volume': 'v'}, 'go together'),
        ({'dest_pool': 'p', 'dest_volume': 'a/b.qcow2'}, 'not a path'),
        ({'dest_pool': 'p', 'dest_volume': '..'}, 'not a path'),
        ({'dest': 'rbd://mon/pool/img'}, "protocol 'rbd' is not supported; supported: gluster://, nbd://"),
        ({'dest': 'nbd+unix:///exp?socket=/run/nbd.sock'}, 'not supported'),
        ({'dest': 'nbd://user:secret@host/exp'}, 'credentials'),
        ({'dest': 'nbd://host/exp?tls=on'}, 'URL options'),
        ({'dest': 'nbd://host:99999/exp'}, 'port'),
        ({'dest': 'nbd:///exp'}, 'names no host'),
        ({'dest': 'nbd://host:10809'}, 'names no NBD export'),
        ({'dest': 'gluster://host/vmstore'}, 'gluster://HOST[:PORT]/VOLUME/IMAGE'),
    ])
    def test_refusals(self, kwargs, message):
        with pytest.raises(InvalidInputError) as exc:
            ct.parse_dest(**kwargs)
        assert message in str(exc.value)
        assert 'secret' not in str(exc.value)


class TestSourceKeys:
    def test_network_source_key(self):
        src = ET.fromstring("<source protocol='nbd' name='exp1' tls='no' index='2'>"
                            "<host name='Storage-1' port='10851'/></source>")
        assert network_source_key(src) == 'nbd://storage-1:10851/exp1'
        # libvirt may leave the port out: the protocol's default fills it in, as in parse_dest.
        src = ET.fromstring("<source protocol='gluster' name='vmstore/a.raw'><host name='st1'/></source>")
        assert network_source_key(src) == ct.parse_dest('gluster://st1/vmstore/a.raw').key
        src = ET.fromstring("<source protocol='rbd' name='pool/img'/>")
        assert network_source_key(src) == 'rbd:///pool/img'
        src = ET.fromstring("<source protocol='nbd' name='e'><host transport='unix' socket='/run/n.sock'/></source>")
        assert network_source_key(src) == 'nbd+unix:///e?socket=/run/n.sock'
        assert network_source_key(None) is None

    def test_source_key(self):
        assert ct.source_key('/a/./b/../c.qcow2') == '/a/c.qcow2'
        assert ct.source_key('iscsi://10.0.0.1/iqn.x/1') == 'iscsi://10.0.0.1:3260/iqn.x/1'
        assert ct.source_key(None) is None and ct.source_key('') == ''


class TestXml:
    def test_destination_disk_xml(self):
        net = ET.fromstring(ct.destination_disk_xml(ct.parse_dest('nbd://st1:10851/e1'), 'raw'))
        assert net.get('type') == 'network' and net.find('driver').get('type') == 'raw'
        src = net.find('source')
        assert (src.get('protocol'), src.get('name')) == ('nbd', 'e1')
        assert (src.find('host').get('name'), src.find('host').get('port')) == ('st1', '10851')
        f = ET.fromstring(ct.destination_disk_xml(ct.parse_dest("/a/it's.qcow2"), 'qcow2'))
        assert f.get('type') == 'file' and f.find('source').get('file') == "/a/it's.qcow2"
        b = ET.fromstring(ct.destination_disk_xml(ct.CopyTarget(ct.PATH, path='/dev/sdb', is_block=True), 'raw'))
        assert b.get('type') == 'block' and b.find('source').get('dev') == '/dev/sdb'

    def test_set_disk_source_network_and_back(self):
        disk = ET.fromstring("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                             "<source file='/a.qcow2' index='1'/><backingStore/><target dev='vda'/>"
                             "<mirror type='file' file='/b'/></disk>")
        ct.set_disk_source(disk, ct.parse_dest('gluster://st1/vmstore/a.raw'), 'raw')
        assert disk.get('type') == 'network' and disk.find('driver').get('type') == 'raw'
        assert network_source_key(disk.find('source')) == 'gluster://st1:24007/vmstore/a.raw'
        assert disk.find('backingStore') is None and disk.find('mirror') is None
        assert [c.tag for c in disk] == ['driver', 'source', 'target']
        ct.set_disk_source(disk, ct.parse_dest('/b.qcow2'), 'qcow2')
        assert disk.get('type') == 'file' and disk.find('source').attrib == {'file': '/b.qcow2'}

    def test_default_format(self):
        assert ct.default_format(ct.parse_dest('nbd://h/e'), 'qcow2') == 'raw'
        assert ct.default_format(ct.parse_dest('/x'), 'qcow2') == 'qcow2'


class TestPoolVolume:
    VOL = ct.CopyTarget(ct.VOLUME, pool='local', volume='vm1.qcow2', path='/var/lib/libvirt/local/vm1.qcow2')
    NEW = {'exists': False, 'pool_type': 'dir'}

    def opts(self, **kw):
        o = {'shallow': False, 'reuse_external': False}
        o.update(kw)
        return o

    def test_check_pool(self):
        ct.check_pool('local', {'local': True, 'images': True})
        with pytest.raises(InvalidInputError) as exc:
            ct.check_pool('nope', {'local': True, 'images': False})
        assert "storage pool 'nope' does not exist on this host (its pools: images, local)" in str(exc.value)
        assert 'dest_pool' in exc.value.remedy and exc.value.details == {'pools': ['images', 'local']}
        with pytest.raises(InvalidInputError) as exc:
            ct.check_pool('images', {'local': True, 'images': False})
        assert "storage pool 'images' is not active" in str(exc.value) and 'pool-start images' in exc.value.remedy

    def test_expected_volume_path(self):
        assert ct.expected_volume_path('dir', '/p/', 'v.qcow2') == '/p/v.qcow2'
        assert ct.expected_volume_path('logical', '/dev/vg', 'v') is None

    def test_plan_volume_creates_when_missing(self):
        assert ct.plan_volume(self.VOL, self.NEW, 'qcow2', 64 * MIB, MIB, 10 * MIB, self.opts()) is True

    def test_plan_volume_reuses_existing(self):
        vol = {'exists': True, 'type': ct.VIR_STORAGE_VOL_FILE, 'capacity': 64 * MIB, 'format': 'qcow2'}
        assert ct.plan_volume(self.VOL, vol, 'qcow2', 64 * MIB, MIB, 0, self.opts(reuse_external=True)) is False

    @pytest.mark.parametrize('vol, fmt, free, kwargs, message', [
        ({'exists': True, 'type': 0, 'capacity': 64 * MIB}, 'qcow2', None, {},
         'volume vm1.qcow2 in pool local (/var/lib/libvirt/local/vm1.qcow2) already exists; refusing to overwrite it'),
        ({'exists': True, 'type': 0, 'capacity': 32 * MIB}, 'qcow2', None, {'reuse_external': True}, 'same size'),
        ({'exists': True, 'type': 0, 'capacity': 64 * MIB, 'format': 'raw'}, 'qcow2', None,
         {'reuse_external': True}, 'is a raw image, the copy is qcow2'),
        ({'exists': True, 'type': 3, 'capacity': 64 * MIB}, 'raw', None, {'reuse_external': True}, 'network volume'),
        ({'exists': False, 'pool_type': 'dir'}, 'qcow2', None, {'reuse_external': True}, 'does not exist'),
        ({'exists': False, 'pool_type': 'logical'}, 'raw', None, {}, 'pool local is logical'),
        ({'exists': False, 'pool_type': 'dir'}, 'qcow2', None, {'shallow': True}, 'backing chain'),
        ({'exists': False, 'pool_type': 'dir'}, 'qcow2', MIB // 2, {},
         'not enough space in pool local for vm1.qcow2: need 1.0 MiB, 0.5 MiB available'),
    ])
    def test_plan_volume_refusals(self, vol, fmt, free, kwargs, message):
        with pytest.raises(InvalidInputError) as exc:
            ct.plan_volume(self.VOL, vol, fmt, 64 * MIB, MIB, free, self.opts(**kwargs))
        assert message in str(exc.value)
        assert exc.value.remedy

    def test_check_network(self):
        nbd = ct.parse_dest('nbd://h:1/e')
        ct.check_network(nbd, 'raw', self.opts(reuse_external=True))
        with pytest.raises(InvalidInputError) as exc:
            ct.check_network(nbd, 'raw', self.opts())
        assert 'pass reuse_external: true' in str(exc.value) and 'never creates' in exc.value.remedy
        with pytest.raises(InvalidInputError) as exc:
            ct.check_network(nbd, 'qcow2', self.opts(reuse_external=True, shallow=True))
        assert 'shallow' in str(exc.value)
