# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Guest, capabilities and domain capabilities XML shared by the preflight's unit tests."""

from __future__ import annotations

MIB = 1024 * 1024

DOMAIN_XML = """<domain type='qemu' id='4'>
  <name>{name}</name>
  <uuid>cfbc8daf-0083-437b-9dfa-76ebfb61eb49</uuid>
  <memory unit='KiB'>131072</memory>
  <currentMemory unit='KiB'>131072</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>
  {cpu}
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='{cache}'/>
      <source file='{disk}' index='1'/>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    {interfaces}
  </devices>
</domain>"""

CPU_QEMU64 = ("<cpu mode='custom' match='exact' check='full'><model fallback='forbid'>qemu64</model>"
              "<feature policy='require' name='hypervisor'/></cpu>")

CAPS_XML = """<capabilities>
  <host><uuid>{uuid}</uuid><cpu><arch>x86_64</arch></cpu></host>
  <guest>
    <os_type>hvm</os_type>
    <arch name='x86_64'>
      <wordsize>64</wordsize>
      <emulator>/usr/bin/qemu-system-x86_64</emulator>
      <machine maxCpus='255'>pc-i440fx-7.2</machine>
      <machine canonical='pc-i440fx-7.2' maxCpus='255'>pc</machine>
      <machine maxCpus='288'>pc-q35-7.2</machine>
      <domain type='qemu'/>
      <domain type='kvm'/>
    </arch>
  </guest>
</capabilities>"""

DOMCAPS_XML = """<domainCapabilities><cpu>
  <mode name='host-passthrough' supported='no'/>
  <mode name='host-model' supported='yes'><model fallback='forbid'>EPYC</model><vendor>AMD</vendor>
    <feature policy='require' name='acpi'/></mode>
</cpu></domainCapabilities>"""


def dom_xml(name='vm1', disk='/var/lib/libvirt/images/vm1.qcow2', cpu=CPU_QEMU64, cache='none', interfaces=''):
    return DOMAIN_XML.format(name=name, disk=disk, cpu=cpu, cache=cache, interfaces=interfaces)
