# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Small stand-ins for libvirt's network, storage pool and domain objects and a connection that
holds them, for the unit tests of the role modules' managers. They keep a definition as libvirt
would (a UUID added on first define and kept on redefinition) and log every call that changes
something, so a test sees what a run did, and that check mode did nothing."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import libvirt

from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_ERR_NO_DOMAIN,
    VIR_ERR_NO_NETWORK,
    VIR_ERR_NO_STORAGE_POOL,
)


class FakeLibvirtError(libvirt.libvirtError):
    """A libvirtError with a given code (libvirt's own constructor reads the thread's last error)."""

    def __init__(self, msg, code):
        super().__init__(msg)
        self.err = (code, 0, msg, 2, None, None, None, 0, 0)

    def get_error_code(self):
        return self.err[0]

    def get_error_domain(self):
        return self.err[1]

    def get_error_message(self):
        return self.err[2]


def with_uuid(xml, uuid):
    """The definition as libvirt keeps it: with its UUID."""
    root = ET.fromstring(xml)
    if root.find('uuid') is None:
        element = ET.Element('uuid')
        element.text = uuid
        root.insert(1, element)
    return ET.tostring(root, encoding='unicode')


class FakeObject:
    """What networks and storage pools have in common: a definition, running or not, autostart."""

    def __init__(self, conn, xml, uuid, active=False, autostart=False):
        self.conn = conn
        self.xml = with_uuid(xml, uuid)
        self.uuid = uuid
        self.active = active
        self.auto = autostart

    def name(self):
        return ET.fromstring(self.xml).findtext('name')

    def XMLDesc(self, flags=0):  # noqa: N802
        return self.xml

    def UUIDString(self):  # noqa: N802
        return self.uuid

    def isActive(self):  # noqa: N802
        return 1 if self.active else 0

    def autostart(self):
        return 1 if self.auto else 0

    def setAutostart(self, value):  # noqa: N802
        self.conn.log('setAutostart', self.name(), value)
        self.auto = bool(value)

    def create(self, flags=0):
        self.conn.log('create', self.name(), flags)
        self.active = True

    def destroy(self):
        self.conn.log('destroy', self.name())
        self.active = False

    def undefine(self):
        self.conn.log('undefine', self.name())
        self.conn.forget(self)


class FakePool(FakeObject):
    def __init__(self, conn, xml, uuid, active=False, autostart=False, volumes=()):
        super().__init__(conn, xml, uuid, active=active, autostart=autostart)
        self.volumes = list(volumes)

    def listVolumes(self):  # noqa: N802
        return list(self.volumes)


class FakeDomain:
    def __init__(self, conn, xml, active=True, persistent=True):
        self.conn, self.xml, self.active, self.persistent = conn, xml, active, persistent

    def isActive(self):  # noqa: N802
        return 1 if self.active else 0

    def isPersistent(self):  # noqa: N802
        return 1 if self.persistent else 0

    def XMLDesc(self, flags=0):  # noqa: N802
        return self.xml


class FakeConn:
    """A connection holding networks, storage pools and domains; `calls` lists every change made."""

    def __init__(self):
        self.networks = {}
        self.pools = {}
        self.domains = {}
        self.calls = []
        self._next_uuid = 0
        # virt_cpu_baseline
        self.domain_capabilities = None
        self.baseline = None
        self.comparison = 2
        self.baseline_args = None
        self.known_features = None  # baselineHypervisorCPU refuses other features (an older libvirt)
        self.known_models = None  # ... and other models
        self.lib_version = 9000000

    def log(self, *call):
        self.calls.append(call)

    def uuid(self):
        self._next_uuid += 1
        return '00000000-0000-4000-8000-%012d' % self._next_uuid

    def forget(self, obj):
        for table in (self.networks, self.pools):
            for name, known in list(table.items()):
                if known is obj:
                    del table[name]

    # -- networks ----------------------------------------------------------
    def add_network(self, xml, active=False, autostart=False):
        net = FakeObject(self, xml, self.uuid(), active=active, autostart=autostart)
        self.networks[net.name()] = net
        return net

    def networkLookupByName(self, name):  # noqa: N802
        if name not in self.networks:
            raise FakeLibvirtError('Network not found: no network with matching name %r' % name, VIR_ERR_NO_NETWORK)
        return self.networks[name]

    def networkDefineXML(self, xml):  # noqa: N802
        name = ET.fromstring(xml).findtext('name')
        self.log('networkDefineXML', name)
        return self._define(self.networks, xml, lambda uuid: FakeObject(self, xml, uuid))

    # -- storage pools -----------------------------------------------------
    def add_pool(self, xml, active=False, autostart=False, volumes=()):
        pool = FakePool(self, xml, self.uuid(), active=active, autostart=autostart, volumes=volumes)
        self.pools[pool.name()] = pool
        return pool

    def storagePoolLookupByName(self, name):  # noqa: N802
        if name not in self.pools:
            raise FakeLibvirtError('Storage pool not found: no storage pool with matching name %r' % name,
                                   VIR_ERR_NO_STORAGE_POOL)
        return self.pools[name]

    def storagePoolDefineXML(self, xml, flags=0):  # noqa: N802
        name = ET.fromstring(xml).findtext('name')
        self.log('storagePoolDefineXML', name)
        return self._define(self.pools, xml, lambda uuid: FakePool(self, xml, uuid))

    def _define(self, table, xml, make):
        name = ET.fromstring(xml).findtext('name')
        known = table.get(name)
        if known is not None:
            # A redefinition keeps the object (and its UUID); the running copy is not changed here.
            known.xml = with_uuid(xml, known.uuid)
            return known
        table[name] = make(ET.fromstring(xml).findtext('uuid') or self.uuid())
        return table[name]

    # -- domains and CPUs (virt_cpu_baseline) -------------------------------
    def add_domain(self, name, xml, active=True, persistent=True):
        self.domains[name] = FakeDomain(self, xml, active=active, persistent=persistent)
        return self.domains[name]

    def lookupByName(self, name):  # noqa: N802
        if name not in self.domains:
            raise FakeLibvirtError("Domain not found: no domain with matching name '%s'" % name, VIR_ERR_NO_DOMAIN)
        return self.domains[name]

    def defineXML(self, xml):  # noqa: N802
        name = ET.fromstring(xml).findtext('name')
        self.log('defineXML', name)
        self.domains[name].xml = xml
        return self.domains[name]

    def getDomainCapabilities(self, emulator, arch, machine, virt_type, flags):  # noqa: N802
        return self.domain_capabilities

    def baselineHypervisorCPU(self, emulator, arch, machine, virt_type, cpus, flags):  # noqa: N802
        self.baseline_args = dict(cpus=list(cpus), flags=flags, virt_type=virt_type)
        for cpu in cpus if self.known_models is not None else ():
            model = ET.fromstring(cpu).find('model')
            if model is not None and model.text not in self.known_models:
                raise FakeLibvirtError('internal error: Unknown CPU model %s' % model.text, 1)
        for cpu in cpus if self.known_features is not None else ():
            for feature in ET.fromstring(cpu).findall('feature'):
                if feature.get('name') not in self.known_features:
                    raise FakeLibvirtError('internal error: Unknown CPU feature %s' % feature.get('name'), 1)
        return self.baseline

    def getLibVersion(self):  # noqa: N802
        return self.lib_version

    def compareHypervisorCPU(self, emulator, arch, machine, virt_type, xml, flags):  # noqa: N802
        return self.comparison

    def close(self):
        return 0


class FakeKvm:
    """What a manager uses of KvmopsModule: params, check and diff mode, warn, a client on `conn`."""

    def __init__(self, conn, params, check_mode=False, diff_mode=False):
        # Imported here: the collection is importable only once pytest-ansible has set it up.
        from ansible_collections.kvmops.migration.plugins.module_utils._client import LibvirtClient
        self.params = params
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.warnings = []
        self.client = LibvirtClient(params=dict(uri='qemu:///system'), opener=lambda uri: conn)

    def warn(self, msg):
        self.warnings.append(msg)
