# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one reader of libvirt's domain XML and host capabilities XML.

Private module_utils file (leading underscore): its API may change without notice.

Pure (xml.etree.ElementTree only), unit-tested with real-looking XML. Every module that needs
to know a guest's disks, interfaces, CPU, memory, machine type, name, UUID or metadata, or a
host's UUID and CPU, reads it here, so that they all apply the same rules:

* ``read_domain(xml)`` -> ``DomainXml``: ``disks`` (``Disk``), ``interfaces`` (``Interface``),
  ``cpu`` (``Cpu`` or None), memory, vCPUs, machine type, name, UUID, ``metadata(ns, tag)``;
  ``parse_domain(xml)`` is the same as plain data (what the preflight checks take).
* ``read_capabilities(xml)`` -> ``Capabilities``: host UUID, host CPU, and per architecture
  the domain types, machine types and emulators offered; ``host_uuid(xml)``.

Rules taken from libvirt (where the callers used to disagree):

* A cdrom is read-only whether or not the XML says ``<readonly/>``: libvirt marks every cdrom
  source read-only when it parses the definition, skips read-only disks when it decides whether
  a migration is safe and when it copies storage, and QEMU's cd devices cannot write.
* A file or block disk without a driver type is raw (libvirt's QEMU driver fills in raw).
* A network disk's ``path`` is its canonical URL ``protocol://host:port/name`` (the protocol's
  default port filled in), so a source is one comparable string whatever its kind.
* In the live XML an interface on a libvirt network shows the network's actual type (bridge,
  direct); what migrates is the network name, so it is read as type ``network``.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET

# Default ports of network disk protocols (QEMU's and libvirt's), to compare sources that leave them out.
DEFAULT_PORTS = {'nbd': 10809, 'gluster': 24007, 'iscsi': 3260, 'rbd': 6789, 'sheepdog': 7000}
# Unit of <memory>/<currentMemory> -> KiB. libvirt's default unit is KiB; k/M/G are powers of 1024 too.
_KIB_PER_UNIT = {'b': 1.0 / 1024, 'bytes': 1.0 / 1024, 'k': 1, 'kib': 1, 'kb': 1000.0 / 1024,
                 'm': 1024, 'mib': 1024, 'mb': 1000000.0 / 1024, 'g': 1024 ** 2, 'gib': 1024 ** 2,
                 'gb': 1e9 / 1024, 't': 1024 ** 3, 'tib': 1024 ** 3, 'tb': 1e12 / 1024}


def network_url(protocol, host, port, name):
    """The canonical ``protocol://host:port/name`` of a network source (host lowercased)."""
    host = (host or '').lower()
    if ':' in host:
        host = '[%s]' % host
    authority = '%s:%d' % (host, port) if host and port else host
    return '%s://%s/%s' % (protocol, authority, name or '')


def network_source_key(src):
    """The canonical URL of a ``<source protocol=... name=...><host .../></source>`` element."""
    if src is None or not src.get('protocol'):
        return None
    protocol = src.get('protocol')
    host = src.find('host')
    name, hostname, port = src.get('name') or '', None, None
    if host is not None:
        if host.get('socket'):
            return '%s+unix:///%s?socket=%s' % (protocol, name, host.get('socket'))
        hostname = host.get('name')
        port = host.get('port')
    port = int(port) if port and port.isdigit() else DEFAULT_PORTS.get(protocol)
    return network_url(protocol, hostname, port, name)


def _text(elem, path, default=None):
    found = elem.find(path) if elem is not None else None
    if found is None or found.text is None:
        return default
    return found.text.strip()


def as_int(value, default=None):
    """``int(value)``, or ``default`` for None or text that is no integer."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def memory_kib(elem):
    """KiB of a ``<memory unit=...>``-like element, or None."""
    if elem is None or elem.text is None:
        return None
    return int(int(elem.text.strip()) * _KIB_PER_UNIT.get((elem.get('unit') or 'KiB').lower(), 1))


def _source_path(disk_type, src):
    """A local source's path, or a network source's canonical URL; None for none (an empty cdrom),
    a pool volume or an NVMe device."""
    if src is None:
        return None
    if disk_type == 'network':
        return network_source_key(src)
    if disk_type in ('volume', 'nvme'):
        return None
    return src.get({'block': 'dev', 'dir': 'dir'}.get(disk_type, 'file'))


class Disk:
    """One ``<disk>``. ``path``: file, device or directory path, or a network disk's canonical URL
    (None without a medium, for a pool volume until resolved, for NVMe); ``pool``/``volume`` for
    ``type='volume'``; ``mirror``: {path, format, job, ready} while a block job mirrors it."""

    FIELDS = ('target', 'path', 'format', 'readonly', 'device', 'type', 'bus', 'cache', 'shareable', 'protocol',
              'pool', 'volume', 'has_backing', 'mirror')

    def __init__(self, target, path, fmt=None, readonly=False, device='disk', *, disk_type='file', bus=None,
                 cache=None, shareable=False, protocol=None, pool=None, volume=None, has_backing=False, mirror=None):
        self.target = target
        self.path = path
        self.format = fmt
        self.readonly = bool(readonly)
        self.device = device or 'disk'
        self.type = disk_type or 'file'
        self.bus = bus
        self.cache = cache or 'default'  # libvirt's name for "not set": QEMU's own default
        self.shareable = bool(shareable)
        self.protocol = protocol
        self.pool = pool
        self.volume = volume
        self.has_backing = bool(has_backing)
        self.mirror = mirror

    @property
    def is_local(self):
        """A file or block device on the host (what storage probes and copies handle)."""
        return self.type in ('file', 'block') and bool(self.path)

    @property
    def directory(self):
        return os.path.dirname(self.path) if self.path and self.type != 'network' else None

    def as_dict(self):
        return dict((field, getattr(self, field)) for field in self.FIELDS)

    def __repr__(self):
        return 'Disk(%s, %s)' % (self.target, self.path)


def _mirror(mirror):
    if mirror is None:
        return None
    mirror_type = mirror.get('type') or 'file'
    fmt = mirror.find('format')
    return {'path': mirror.get('file') or _source_path(mirror_type, mirror.find('source')),
            'format': mirror.get('format') or (fmt.get('type') if fmt is not None else None),
            'job': mirror.get('job'), 'ready': mirror.get('ready')}


def _disk(elem):
    disk_type = elem.get('type') or 'file'
    device = elem.get('device') or 'disk'
    src, target, driver = elem.find('source'), elem.find('target'), elem.find('driver')
    fmt = driver.get('type') if driver is not None else None
    if not fmt and disk_type in ('file', 'block'):
        fmt = 'raw'
    backing = elem.find('backingStore')
    return Disk(
        target.get('dev') if target is not None else None, _source_path(disk_type, src), fmt,
        elem.find('readonly') is not None or device == 'cdrom', device,
        disk_type=disk_type, bus=target.get('bus') if target is not None else None,
        cache=driver.get('cache') if driver is not None else None, shareable=elem.find('shareable') is not None,
        protocol=src.get('protocol') if disk_type == 'network' and src is not None else None,
        pool=src.get('pool') if disk_type == 'volume' and src is not None else None,
        volume=src.get('volume') if disk_type == 'volume' and src is not None else None,
        has_backing=backing is not None and backing.find('source') is not None, mirror=_mirror(elem.find('mirror')))


class Interface:
    """One ``<interface>``: ``type`` (``network`` for any interface on a libvirt network), the
    network, bridge or host device it uses, its target device, MAC address and model."""

    FIELDS = ('type', 'network', 'bridge', 'dev', 'target', 'mac', 'model')

    def __init__(self, elem):
        src, target, mac, model = (elem.find(tag) for tag in ('source', 'target', 'mac', 'model'))
        self.network = src.get('network') if src is not None else None
        self.type = elem.get('type')
        if self.network and self.type in ('bridge', 'direct', 'hostdev'):
            self.type = 'network'
        self.bridge = src.get('bridge') if src is not None else None
        self.dev = src.get('dev') if src is not None else None
        self.target = target.get('dev') if target is not None else None
        self.mac = mac.get('address') if mac is not None else None
        self.model = model.get('type') if model is not None else None

    def as_dict(self):
        return dict((field, getattr(self, field)) for field in self.FIELDS)


class Cpu:
    """A ``<cpu>`` definition: mode, check, match, model, features [(policy, name)], and its XML
    (what compareHypervisorCPU and baselines take)."""

    FIELDS = ('mode', 'check', 'match', 'model', 'features', 'xml')

    def __init__(self, elem):
        model = elem.find('model')
        self.model = model.text.strip() if model is not None and model.text else None
        self.mode = elem.get('mode') or 'custom'  # libvirt's default mode
        self.check = elem.get('check')
        self.match = elem.get('match')
        self.features = [(f.get('policy') or 'require', f.get('name')) for f in elem.findall('feature')]
        self.xml = ET.tostring(elem, encoding='unicode')

    @property
    def says_something(self):
        """False for a custom ``<cpu>`` without a model (e.g. only a topology): QEMU's default CPU, nothing
        to compare."""
        return not (self.model is None and self.mode == 'custom')

    def as_dict(self):
        return dict((field, getattr(self, field)) for field in self.FIELDS)


class DomainXml:
    """A parsed domain definition (live or inactive XML)."""

    def __init__(self, xml):
        self.root = ET.fromstring(xml) if isinstance(xml, str) else xml
        os_type = self.root.find('./os/type')
        self.name = _text(self.root, 'name')
        self.uuid = _text(self.root, 'uuid')
        self.virt_type = self.root.get('type')
        self.arch = os_type.get('arch') if os_type is not None else None
        self.machine = os_type.get('machine') if os_type is not None else None
        self.emulator = _text(self.root, './devices/emulator')
        self.memory_kib = memory_kib(self.root.find('memory'))  # the maximum the guest may balloon up to
        self.current_memory_kib = memory_kib(self.root.find('currentMemory'))
        vcpu = self.root.find('vcpu')
        self.max_vcpus = as_int(vcpu.text, 1) if vcpu is not None else 1
        self.vcpus = as_int(vcpu.get('current'), self.max_vcpus) if vcpu is not None else 1
        cpu = Cpu(self.root.find('cpu')) if self.root.find('cpu') is not None else None
        self.cpu = cpu if cpu is not None and cpu.says_something else None
        self.disks = [_disk(elem) for elem in self.root.findall('./devices/disk')]
        self.interfaces = [Interface(elem) for elem in self.root.findall('./devices/interface')]
        self.hostdevs = len(self.root.findall('./devices/hostdev'))

    def local_disks(self):
        """Disks with a file or block source and a target: what storage probes, copies and backs up
        (cdroms without media, network disks, pool volumes not yet resolved are left out)."""
        return [disk for disk in self.disks if disk.is_local and disk.target]

    def disk_element(self, target):
        """The ``<disk>`` element whose target dev is ``target`` (to edit it in place), or None."""
        for elem in self.root.findall('./devices/disk'):
            found = elem.find('target')
            if found is not None and found.get('dev') == target:
                return elem
        return None

    def metadata(self, namespace, tag):
        """The ``<metadata>`` children ``{namespace}tag`` (an application's own metadata)."""
        return self.root.findall('./metadata/{%s}%s' % (namespace, tag))

    def source_paths(self):
        """Every local path the definition uses: disk sources, their backing chains, mirrors."""
        paths = [src.get(attr) for src in self.root.iter('source') for attr in ('file', 'dev') if src.get(attr)]
        return paths + [mirror.get('file') for mirror in self.root.iter('mirror') if mirror.get('file')]

    def as_dict(self):
        return {
            'name': self.name, 'uuid': self.uuid, 'virt_type': self.virt_type, 'arch': self.arch,
            'machine': self.machine, 'emulator': self.emulator, 'memory_kib': self.memory_kib,
            'current_memory_kib': self.current_memory_kib, 'vcpus': self.vcpus, 'max_vcpus': self.max_vcpus,
            'cpu': self.cpu.as_dict() if self.cpu else None, 'disks': [d.as_dict() for d in self.disks],
            'interfaces': [i.as_dict() for i in self.interfaces], 'hostdevs': self.hostdevs,
        }


def read_domain(xml):
    """``xml`` (a domain XML string, or a DomainXml already read) as a DomainXml."""
    return xml if isinstance(xml, DomainXml) else DomainXml(xml)


def parse_domain(xml):
    """A domain XML as plain data (``DomainXml.as_dict``): what the preflight's checks take."""
    return read_domain(xml).as_dict()


def local_disks(xml):
    """``DomainXml.local_disks`` of a domain XML: its file and block disks."""
    return read_domain(xml).local_disks()


# ---------------------------------------------------------------------------
# Capabilities
# ---------------------------------------------------------------------------

class Capabilities:
    """A host's ``getCapabilities()``: its UUID, CPU (arch, vendor, model, features) and, per
    architecture, the domain types, machine types and emulators offered to hvm guests."""

    def __init__(self, xml):
        root = ET.fromstring(xml)
        self.uuid = _text(root, './host/uuid')
        cpu = root.find('./host/cpu')
        self.cpu_arch = _text(cpu, 'arch')
        self.cpu_vendor = _text(cpu, 'vendor')
        self.cpu_model = _text(cpu, 'model')
        self.cpu_features = [f.get('name') for f in cpu.findall('feature')] if cpu is not None else []
        self.archs = {}
        for guest in root.findall('guest'):
            arch = guest.find('arch')
            if _text(guest, 'os_type') == 'hvm' and arch is not None:
                self._add_arch(arch)

    def _add_arch(self, arch):
        entry = self.archs.setdefault(arch.get('name'), {'domain_types': set(), 'machines': set(), 'emulators': set()})
        for holder in [arch] + arch.findall('domain'):
            if holder is not arch:
                entry['domain_types'].add(holder.get('type'))
            if _text(holder, 'emulator'):
                entry['emulators'].add(_text(holder, 'emulator'))
            entry['machines'].update(m.text.strip() for m in holder.findall('machine') if m.text)

    def as_dict(self):
        return {'uuid': self.uuid, 'archs': self.archs,
                'cpu': {'arch': self.cpu_arch, 'vendor': self.cpu_vendor, 'model': self.cpu_model,
                        'features': list(self.cpu_features)}}


def read_capabilities(xml):
    return Capabilities(xml)


def parse_capabilities(xml):
    """``Capabilities.as_dict``: {uuid, archs: {arch: {domain_types, machines, emulators}}, cpu}."""
    return Capabilities(xml).as_dict()


def host_uuid(capabilities_xml):
    """The host UUID of a capabilities XML (libvirt's host_uuid), or None."""
    return Capabilities(capabilities_xml).uuid


def host_model_cpu_xml(domcaps_xml):
    """The host-model CPU of a domain capabilities XML as a custom CPU definition (for baselines)."""
    root = ET.fromstring(domcaps_xml)
    for mode in root.findall('./cpu/mode'):
        if mode.get('name') == 'host-model' and mode.get('supported') == 'yes':
            cpu = ET.Element('cpu', {'mode': 'custom', 'match': 'exact'})
            for child in mode:
                cpu.append(child)
            return ET.tostring(cpu, encoding='unicode')
    return None


def cpu_model_of(cpu_xml):
    """The model of a ``<cpu>`` XML (e.g. a baseline), or None."""
    try:
        root = ET.fromstring(cpu_xml)
    except ET.ParseError:
        return None
    return _text(root, 'model')


def machine_family(machine):
    """``pc-q35`` of ``pc-q35-7.2``: machine types of one family differ only in their version."""
    found = re.match(r'^(.*?)-?(\d+(?:\.\d+)*)$', machine or '')
    return found.group(1) if found else machine
