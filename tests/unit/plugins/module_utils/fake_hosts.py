# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Two small fake hypervisors for the pure logic that applies repairs and rollbacks.

They keep just what the outcome check reads (state, reason, persistence, jobs, definitions) and
record every call, so a test asserts both the order of the changes and the state they leave.
Errors are real ``libvirt.libvirtError`` instances with the codes libvirt uses.
"""

from __future__ import annotations

import libvirt

from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_DOMAIN_RUNNING as RUNNING,
    VIR_DOMAIN_SHUTOFF as SHUTOFF,
    VIR_ERR_NO_DOMAIN,
)


class FakeLibvirtError(libvirt.libvirtError):
    def __init__(self, message, code):
        super(FakeLibvirtError, self).__init__(message)
        self._code = code

    def get_error_code(self):
        return self._code

    def get_error_domain(self):
        return 10

    def get_error_message(self):
        return str(self)


class FakeDom:
    def __init__(self, host, uuid, name, state=RUNNING, reason=1, persistent=True, xml=None, inactive_xml=None):
        self.host = host
        self._uuid = uuid
        self._name = name
        self.st = [state, reason]
        self.persistent = persistent
        self.xml = xml or "<domain><name>%s</name><uuid>%s</uuid><devices/></domain>" % (name, uuid)
        self.inactive_xml = inactive_xml or self.xml
        self.job = None
        self.fail = {}  # method name -> exception to raise

    def _call(self, what):
        self.host.calls.append((self.host.name, what, self._name))
        if what in self.fail:
            raise self.fail[what]

    def UUIDString(self):  # noqa: N802 - libvirt's spelling
        return self._uuid

    def name(self):
        return self._name

    def state(self, flags=0):
        return list(self.st)

    def isActive(self):  # noqa: N802
        return self.st[0] != SHUTOFF

    def isPersistent(self):  # noqa: N802
        return self.persistent

    def info(self):
        return [self.st[0], 262144, 262144, 1, 0]

    def XMLDesc(self, flags=0):  # noqa: N802
        self.host.calls.append((self.host.name, 'XMLDesc(%d)' % flags, self._name))
        return self.inactive_xml if flags & 2 else self.xml

    def jobStats(self, flags=0):  # noqa: N802
        if self.job == 'incoming':
            raise FakeLibvirtError('migration statistics are available only on the source host', 84)
        return {'type': 2, 'operation': 5} if self.job == 'outgoing' else {'type': 0}

    def jobInfo(self):  # noqa: N802
        return [2 if self.job else 0] + [0] * 11

    def blockJobInfo(self, target, flags=0):  # noqa: N802
        return {}

    def destroy(self):
        self._call('destroy')
        self.st = [SHUTOFF, 2]
        if not self.persistent:
            self.host.forget(self)

    def resume(self):
        self._call('resume')
        self.st = [RUNNING, 3]

    def create(self):
        self._call('create')
        self.st = [RUNNING, 1]

    def shutdown(self):
        self._call('shutdown')
        self.st = [SHUTOFF, 1]

    def undefineFlags(self, flags=0):  # noqa: N802
        self._call('undefine')
        if self.isActive():
            self.persistent = False
        else:
            self.host.forget(self)

    def migrateToURI3(self, uri, params, flags):  # noqa: N802
        self._call('migrateToURI3')
        peer = self.host.peers[uri]
        peer.define(self._uuid, self._name, persistent=True, state=SHUTOFF)


class FakeHost:
    """One hypervisor's libvirt connection."""

    def __init__(self, name, calls=None):
        self.name = name
        self.domains = {}
        self.calls = calls if calls is not None else []
        self.peers = {}
        self.fail = {}

    def define(self, uuid, name, persistent=True, state=RUNNING, reason=1):
        dom = self.domains.get(uuid)
        if dom is None:
            dom = self.domains[uuid] = FakeDom(self, uuid, name, state, reason, persistent)
        dom.persistent = dom.persistent or persistent
        return dom

    def forget(self, dom):
        self.domains.pop(dom.UUIDString(), None)

    def lookupByUUIDString(self, uuid):  # noqa: N802
        if uuid not in self.domains:
            raise FakeLibvirtError('Domain not found', VIR_ERR_NO_DOMAIN)
        return self.domains[uuid]

    def defineXML(self, xml):  # noqa: N802
        self.calls.append((self.name, 'defineXML', xml))
        if 'defineXML' in self.fail:
            raise self.fail['defineXML']
        for dom in self.domains.values():
            if dom.UUIDString() in xml:
                dom.persistent = True
                return dom
        raise AssertionError('defineXML of an unknown domain in a test')

    def storageVolLookupByPath(self, path):  # noqa: N802
        raise FakeLibvirtError('Storage volume not found', 50)
