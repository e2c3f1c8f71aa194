# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one reader of domain and capabilities XML, on XML shaped as libvirt 9.0 writes it."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils import _domain_xml as dx
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation import metadata_of
from ansible_collections.kvmops.migration.tests.unit.plugins.module_utils.preflight_data import CAPS_XML, DOMCAPS_XML, dom_xml

# The live XML of a running guest with every kind of disk the collection meets.
LIVE_XML = """<domain type='kvm' id='7'>
  <name>web1</name>
  <uuid>2d9c7c0e-8a5e-4a36-9c0b-6c1c1e0a4d01</uuid>
  <metadata>
    <kvmops:migration xmlns:kvmops="https://kvmops.io/migration"><kvmops:anti_affinity>web</kvmops:anti_affinity></kvmops:migration>
    <other:thing xmlns:other="https://example.org/other"><x/></other:thing>
  </metadata>
  <memory unit='KiB'>2097152</memory>
  <currentMemory unit='KiB'>1048576</currentMemory>
  <vcpu placement='static' current='2'>4</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type><boot dev='hd'/></os>
  <cpu mode='custom' match='exact' check='full'>
    <model fallback='forbid'>Skylake-Client-IBRS</model>
    <vendor>Intel</vendor>
    <feature policy='require' name='ssbd'/>
    <feature policy='disable' name='hle'/>
    <feature name='vmx'/>
  </cpu>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none' discard='unmap'/>
      <source file='/var/lib/libvirt/images/web1.qcow2' index='3'/>
      <backingStore type='file' index='4'>
        <format type='qcow2'/>
        <source file='/var/lib/libvirt/images/base.qcow2'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
      <alias name='virtio-disk0'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='directsync' io='native'/>
      <source dev='/dev/disk/by-id/wwn-0x5000c500a1b2c3d4' index='2'/>
      <backingStore/>
      <target dev='vdb' bus='virtio'/>
      <shareable/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='writeback'/>
      <source protocol='gluster' name='vmstore/web1-data.raw' index='1'>
        <host name='Storage-1' port='24007'/>
      </source>
      <target dev='vdc' bus='virtio'/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='nbd' name='web1-scratch' tls='no'><host name='storage-1'/></source>
      <target dev='vdd' bus='virtio'/>
    </disk>
    <disk type='network' device='lun'>
      <driver name='qemu' type='raw'/>
      <source protocol='iscsi' name='iqn.2026-01.io.kvmops:storage-1.lun/1'>
        <host name='10.20.0.5' port='3260'/>
      </source>
      <target dev='sda' bus='scsi'/>
    </disk>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='images' volume='web1-logs.qcow2'/>
      <target dev='vde' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <source file='/var/lib/libvirt/images/web1-swap.img'/>
      <target dev='vdf' bus='virtio'/>
      <mirror type='file' file='/srv/fast/web1-swap.img' format='raw' job='copy' ready='yes'>
        <format type='raw'/><source file='/srv/fast/web1-swap.img'/>
      </mirror>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/libvirt/iso/install.iso'/>
      <target dev='sdb' bus='sata'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sdc' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='bridge'>
      <mac address='52:54:00:aa:bb:01'/>
      <source network='default' portid='0c5f' bridge='virbr0'/>
      <target dev='vnet3'/>
      <model type='virtio'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:aa:bb:02'/>
      <source bridge='br-guests'/>
      <model type='e1000e'/>
    </interface>
    <interface type='direct'>
      <mac address='52:54:00:aa:bb:03'/>
      <source dev='eno2' mode='bridge'/>
    </interface>
    <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x3b' slot='0x02' function='0x1'/></source></hostdev>
  </devices>
</domain>"""

CAPABILITIES_XML = """<capabilities>
  <host>
    <uuid>a3c5e1d2-0000-4000-8000-00000000000a</uuid>
    <cpu>
      <arch>x86_64</arch><model>Skylake-Client-IBRS</model><vendor>Intel</vendor>
      <feature name='ds'/><feature name='vmx'/>
    </cpu>
  </host>
  <guest>
    <os_type>hvm</os_type>
    <arch name='x86_64'>
      <wordsize>64</wordsize>
      <emulator>/usr/bin/qemu-system-x86_64</emulator>
      <machine maxCpus='255'>pc-i440fx-7.2</machine>
      <machine canonical='pc-i440fx-7.2' maxCpus='255'>pc</machine>
      <machine maxCpus='288'>pc-q35-7.2</machine>
      <domain type='qemu'/>
      <domain type='kvm'><emulator>/usr/libexec/qemu-kvm</emulator><machine>pc-q35-rhel9</machine></domain>
    </arch>
  </guest>
  <guest>
    <os_type>xen</os_type>
    <arch name='x86_64'><machine>xenpv</machine><domain type='xen'/></arch>
  </guest>
</capabilities>"""


def by_target(disks):
    return dict((disk.target, disk) for disk in disks)


def test_file_disk_with_a_backing_chain():
    vda = by_target(dx.read_domain(LIVE_XML).disks)['vda']
    assert (vda.type, vda.device, vda.path, vda.format, vda.cache, vda.bus) == (
        'file', 'disk', '/var/lib/libvirt/images/web1.qcow2', 'qcow2', 'none', 'virtio')
    assert vda.has_backing and not vda.readonly and not vda.shareable and vda.mirror is None
    assert vda.is_local and vda.directory == '/var/lib/libvirt/images'


def test_block_device_shareable():
    vdb = by_target(dx.read_domain(LIVE_XML).disks)['vdb']
    assert (vdb.type, vdb.path, vdb.cache, vdb.shareable) == (
        'block', '/dev/disk/by-id/wwn-0x5000c500a1b2c3d4', 'directsync', True)
    assert not vdb.has_backing  # an empty <backingStore/> ends the chain


@pytest.mark.parametrize('target, protocol, path', [
    ('vdc', 'gluster', 'gluster://storage-1:24007/vmstore/web1-data.raw'),
    ('vdd', 'nbd', 'nbd://storage-1:10809/web1-scratch'),  # the default port filled in
    ('sda', 'iscsi', 'iscsi://10.20.0.5:3260/iqn.2026-01.io.kvmops:storage-1.lun/1'),
])
def test_network_disks_have_their_canonical_url_as_path(target, protocol, path):
    disk = by_target(dx.read_domain(LIVE_XML).disks)[target]
    assert (disk.type, disk.protocol, disk.path) == ('network', protocol, path)
    assert not disk.is_local and disk.directory is None


def test_lun_device_and_network_cache_default():
    disks = by_target(dx.read_domain(LIVE_XML).disks)
    assert disks['sda'].device == 'lun' and disks['sda'].bus == 'scsi' and disks['sda'].cache == 'default'
    assert disks['vdc'].cache == 'writeback'


def test_pool_volume():
    vde = by_target(dx.read_domain(LIVE_XML).disks)['vde']
    assert (vde.type, vde.pool, vde.volume, vde.path, vde.format) == ('volume', 'images', 'web1-logs.qcow2', None, 'qcow2')
    assert not vde.is_local


def test_file_disk_without_driver_is_raw_and_its_mirror_is_read():
    vdf = by_target(dx.read_domain(LIVE_XML).disks)['vdf']
    assert vdf.format == 'raw'
    assert vdf.mirror == {'path': '/srv/fast/web1-swap.img', 'format': 'raw', 'job': 'copy', 'ready': 'yes'}


def test_a_cdrom_is_read_only_with_or_without_the_readonly_element():
    disks = by_target(dx.read_domain(LIVE_XML).disks)
    assert disks['sdb'].readonly and disks['sdb'].path == '/var/lib/libvirt/iso/install.iso'
    assert disks['sdc'].readonly and disks['sdc'].path is None


def test_local_disks_are_the_file_and_block_disks_with_a_source():
    local = dx.read_domain(LIVE_XML).local_disks()
    assert [(d.target, d.readonly) for d in local] == [
        ('vda', False), ('vdb', False), ('vdf', False), ('sdb', True)]
    assert [d.target for d in dx.local_disks(LIVE_XML)] == [d.target for d in local]


def test_a_disk_without_a_driver_type_of_a_network_kind_has_no_format():
    xml = ("<domain><devices><disk type='network' device='disk'><source protocol='rbd' name='pool/img'/>"
           "<target dev='vda'/></disk></devices></domain>")
    disk = dx.read_domain(xml).disks[0]
    assert disk.format is None and disk.path == 'rbd:///pool/img'


def test_interfaces():
    first, bridge, direct = dx.read_domain(LIVE_XML).interfaces
    # The live XML shows a libvirt network's actual type (bridge); what migrates is the network.
    assert (first.type, first.network, first.bridge, first.target, first.mac, first.model) == (
        'network', 'default', 'virbr0', 'vnet3', '52:54:00:aa:bb:01', 'virtio')
    assert (bridge.type, bridge.network, bridge.bridge, bridge.model) == ('bridge', None, 'br-guests', 'e1000e')
    assert (direct.type, direct.dev) == ('direct', 'eno2')


def test_cpu_memory_machine_name():
    domain = dx.read_domain(LIVE_XML)
    assert (domain.name, domain.uuid, domain.virt_type) == ('web1', '2d9c7c0e-8a5e-4a36-9c0b-6c1c1e0a4d01', 'kvm')
    assert (domain.arch, domain.machine, domain.emulator) == ('x86_64', 'pc-q35-7.2', '/usr/bin/qemu-system-x86_64')
    assert (domain.memory_kib, domain.current_memory_kib, domain.vcpus, domain.max_vcpus) == (2097152, 1048576, 2, 4)
    cpu = domain.cpu
    assert (cpu.mode, cpu.match, cpu.check, cpu.model) == ('custom', 'exact', 'full', 'Skylake-Client-IBRS')
    assert cpu.features == [('require', 'ssbd'), ('disable', 'hle'), ('require', 'vmx')]
    assert ET.fromstring(cpu.xml).find('model').text == 'Skylake-Client-IBRS'
    assert domain.hostdevs == 1


@pytest.mark.parametrize('cpu, mode', [
    ("<cpu mode='host-passthrough' check='none' migratable='on'/>", 'host-passthrough'),
    ("<cpu mode='host-model'/>", 'host-model'),
    ("<cpu><model>qemu64</model></cpu>", 'custom'),
    ("<cpu><topology sockets='1' cores='2' threads='1'/></cpu>", None),  # says nothing to compare
    ('', None),
])
def test_cpu_modes(cpu, mode):
    domain = dx.read_domain("<domain><vcpu>1</vcpu>%s<devices/></domain>" % cpu)
    assert (domain.cpu.mode if domain.cpu else None) == mode


@pytest.mark.parametrize('memory, kib', [
    ("<memory unit='KiB'>131072</memory>", 131072), ("<memory unit='MiB'>128</memory>", 131072),
    ("<memory unit='G'>1</memory>", 1048576), ("<memory>2048</memory>", 2048),
    ("<memory unit='bytes'>134217728</memory>", 131072),
])
def test_memory_units(memory, kib):
    assert dx.read_domain('<domain>%s</domain>' % memory).memory_kib == kib


def test_minimal_domain_defaults():
    domain = dx.read_domain('<domain/>')
    assert (domain.vcpus, domain.max_vcpus, domain.memory_kib, domain.cpu, domain.disks) == (1, 1, None, None, [])


def test_metadata_element_access_and_our_anti_affinity():
    domain = dx.read_domain(LIVE_XML)
    (ours,) = domain.metadata('https://kvmops.io/migration', 'migration')
    assert ours.find('{https://kvmops.io/migration}anti_affinity').text == 'web'
    assert domain.metadata('https://example.org/none', 'migration') == []
    assert metadata_of(domain) == metadata_of(LIVE_XML) == {'anti_affinity': ['web']}


def test_disk_element_is_the_live_element_to_edit():
    domain = dx.read_domain(LIVE_XML)
    element = domain.disk_element('vdc')
    assert element.find('source').get('protocol') == 'gluster'
    element.find('target').set('bus', 'scsi')
    assert by_target(dx.read_domain(domain.root).disks)['vdc'].bus == 'scsi'
    assert domain.disk_element('vdz') is None


def test_source_paths_include_backing_chain_and_mirror():
    paths = dx.read_domain(LIVE_XML).source_paths()
    for path in ('/var/lib/libvirt/images/web1.qcow2', '/var/lib/libvirt/images/base.qcow2',
                 '/dev/disk/by-id/wwn-0x5000c500a1b2c3d4', '/srv/fast/web1-swap.img', '/var/lib/libvirt/iso/install.iso'):
        assert path in paths


def test_parse_domain_is_the_same_as_plain_data():
    data = dx.parse_domain(LIVE_XML)
    assert data['name'] == 'web1' and data['cpu']['model'] == 'Skylake-Client-IBRS'
    assert data['disks'][0]['path'] == '/var/lib/libvirt/images/web1.qcow2' and data['disks'][0]['cache'] == 'none'
    assert data['interfaces'][0]['type'] == 'network' and data['hostdevs'] == 1


def test_network_source_key():
    src = ET.fromstring("<source protocol='nbd' name='exp1' tls='no' index='2'><host name='Storage-1' port='10851'/></source>")
    assert dx.network_source_key(src) == 'nbd://storage-1:10851/exp1'
    src = ET.fromstring("<source protocol='nbd' name='e'><host transport='unix' socket='/run/n.sock'/></source>")
    assert dx.network_source_key(src) == 'nbd+unix:///e?socket=/run/n.sock'
    src = ET.fromstring("<source protocol='gluster' name='v/i'><host name='fd00::5'/></source>")
    assert dx.network_source_key(src) == 'gluster://[fd00::5]:24007/v/i'
    assert dx.network_source_key(None) is None


def test_capabilities():
    caps = dx.read_capabilities(CAPABILITIES_XML)
    assert caps.uuid == dx.host_uuid(CAPABILITIES_XML) == 'a3c5e1d2-0000-4000-8000-00000000000a'
    assert (caps.cpu_arch, caps.cpu_vendor, caps.cpu_model, caps.cpu_features) == (
        'x86_64', 'Intel', 'Skylake-Client-IBRS', ['ds', 'vmx'])
    x86 = caps.archs['x86_64']  # the xen guest (not hvm) is left out
    assert x86['domain_types'] == {'qemu', 'kvm'}
    assert x86['machines'] == {'pc-i440fx-7.2', 'pc', 'pc-q35-7.2', 'pc-q35-rhel9'}
    assert x86['emulators'] == {'/usr/bin/qemu-system-x86_64', '/usr/libexec/qemu-kvm'}
    assert dx.parse_capabilities(CAPABILITIES_XML)['uuid'] == caps.uuid
    assert dx.host_uuid('<capabilities><host/></capabilities>') is None


def test_domain_capabilities_host_model_and_cpu_model():
    domcaps = ("<domainCapabilities><cpu><mode name='host-passthrough' supported='yes'/>"
               "<mode name='host-model' supported='yes'><model fallback='forbid'>Skylake-Client-IBRS</model>"
               "<vendor>Intel</vendor><feature policy='require' name='ss'/></mode></cpu></domainCapabilities>")
    cpu = ET.fromstring(dx.host_model_cpu_xml(domcaps))
    assert (cpu.get('mode'), cpu.get('match'), cpu.find('model').text) == ('custom', 'exact', 'Skylake-Client-IBRS')
    assert dx.host_model_cpu_xml("<domainCapabilities><cpu><mode name='host-model' supported='no'/></cpu>"
                                 "</domainCapabilities>") is None
    assert dx.cpu_model_of(ET.tostring(cpu, encoding='unicode')) == 'Skylake-Client-IBRS'
    assert dx.cpu_model_of('not xml') is None


@pytest.mark.parametrize('machine, family', [('pc-q35-7.2', 'pc-q35'), ('pc-i440fx-rhel7.6.0', 'pc-i440fx-rhel'),
                                             ('virt', 'virt')])
def test_machine_family(machine, family):
    assert dx.machine_family(machine) == family


class TestOnThePreflightGuest:
    """The preflight's own guest XML, as its checks read it."""

    def test_parse_domain(self):
        iface = ("<interface type='network'><mac address='52:54:00:aa:bb:cc'/><source network='pf-net'/></interface>"
                 "<interface type='bridge'><source bridge='br0'/></interface>")
        d = dx.parse_domain(dom_xml(interfaces=iface, cache='writeback'))
        assert (d['name'], d['virt_type'], d['arch'], d['machine']) == ('vm1', 'qemu', 'x86_64', 'pc-i440fx-7.2')
        assert d['memory_kib'] == 131072 and d['vcpus'] == 1
        assert d['cpu']['mode'] == 'custom' and d['cpu']['model'] == 'qemu64'
        assert ('require', 'hypervisor') in d['cpu']['features']
        vda, cdrom = d['disks']
        assert vda['path'] == '/var/lib/libvirt/images/vm1.qcow2' and vda['cache'] == 'writeback'
        assert cdrom['path'] is None and cdrom['readonly']
        assert [i['type'] for i in d['interfaces']] == ['network', 'bridge']
        assert d['interfaces'][0]['network'] == 'pf-net' and d['interfaces'][1]['bridge'] == 'br0'

    def test_live_xml_of_a_network_interface_is_a_network(self):
        # libvirt shows a network's actual type (bridge) in the live XML; the migration carries the network.
        iface = "<interface type='bridge'><source network='pf-net' portid='x' bridge='pfbr0'/></interface>"
        d = dx.parse_domain(dom_xml(interfaces=iface))
        assert d['interfaces'][0]['type'] == 'network' and d['interfaces'][0]['network'] == 'pf-net'

    def test_parse_domain_without_cpu_and_memory_units(self):
        xml = dom_xml(cpu='').replace("<memory unit='KiB'>131072</memory>", "<memory unit='GiB'>2</memory>")
        d = dx.parse_domain(xml)
        assert d['cpu'] is None and d['memory_kib'] == 2 * 1024 * 1024

    def test_parse_capabilities(self):
        caps = dx.parse_capabilities(CAPS_XML.format(uuid='u-1'))
        assert caps['uuid'] == 'u-1'
        arch = caps['archs']['x86_64']
        assert {'pc', 'pc-i440fx-7.2', 'pc-q35-7.2'} <= arch['machines']
        assert arch['domain_types'] == {'qemu', 'kvm'}

    def test_host_model_cpu(self):
        xml = dx.host_model_cpu_xml(DOMCAPS_XML)
        assert "mode=\"custom\"" in xml and dx.cpu_model_of(xml) == 'EPYC'
