# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""present/absent of libvirt objects defined from XML, with a minimal kind over a fake connection:
the sequence of actions, what libvirt is asked to do, and that check mode asks nothing."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError, LibvirtCallError
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_object import (
    WantedState,
    converge,
    lookup_or_none,
)
from ansible_collections.kvmops.migration.plugins.module_utils._network_manager import BridgeNetworkKind
from libvirt_doubles import VIR_ERR_NO_NETWORK, FakeConn, FakeLibvirtError

XML = "<network><name>{name}</name><flavour>{flavour}</flavour></network>"


class FlavourKind(BridgeNetworkKind):
    """A network-like object whose definition is one <flavour>; `refuse` makes a redefinition impossible."""

    noun = 'thing'
    still_running_old_definition = '%s keeps its old flavour'

    def __init__(self, conn, name, flavour, refuse=False):
        super().__init__(conn, name, bridge=None)
        self.flavour, self.refuse = flavour, refuse

    def wanted_xml(self, uuid=None):
        root = ET.fromstring(XML.format(name=self.name, flavour=self.flavour))
        if uuid:
            ET.SubElement(root, 'uuid').text = uuid
        return ET.tostring(root, encoding='unicode')

    def needs_redefinition(self, current_xml, active):
        if self.refuse:
            raise InvalidInputError('cannot')
        return ET.fromstring(current_xml).findtext('flavour') != self.flavour


def run(conn, flavour='plain', check_mode=False, **wanted):
    warnings = []
    done = converge(FlavourKind(conn, 'x', flavour), 'x', WantedState(**wanted), check_mode=check_mode,
                    warn=warnings.append)
    return done, warnings


def existing(active=False, autostart=False, flavour='plain'):
    conn = FakeConn()
    conn.add_network(XML.format(name='x', flavour=flavour), active=active, autostart=autostart)
    return conn


def test_a_missing_object_is_defined_started_and_autostarted():
    conn = FakeConn()
    done, warnings = run(conn)
    assert done.actions == ['define', 'start', 'autostart'] and done.changed
    assert [call[0] for call in conn.calls] == ['networkDefineXML', 'create', 'setAutostart']
    assert done.before == '' and '<flavour>plain</flavour>' in done.after
    assert done.uuid == conn.networks['x'].uuid and done.handle is conn.networks['x']
    assert conn.networks['x'].active and conn.networks['x'].auto and warnings == []


def test_check_mode_lists_the_same_actions_and_changes_nothing():
    conn = FakeConn()
    done, dummy = run(conn, check_mode=True)
    assert done.actions == ['define', 'start', 'autostart']
    assert conn.calls == [] and conn.networks == {}
    assert done.uuid is None and done.handle is None and '<flavour>plain</flavour>' in done.after


def test_an_object_as_wanted_is_left_alone():
    conn = existing(active=True, autostart=True)
    done, dummy = run(conn)
    assert done.actions == [] and not done.changed and conn.calls == []
    assert done.before == done.after


def test_a_drifted_running_object_is_redefined_keeping_its_uuid_and_restarted_when_asked():
    conn = existing(active=True, autostart=True, flavour='old')
    uuid = conn.networks['x'].uuid
    done, warnings = run(conn, restart_on_change=True)
    assert done.actions == ['redefine', 'restart', 'start']
    assert [call[0] for call in conn.calls] == ['networkDefineXML', 'destroy', 'create']
    assert '<flavour>old</flavour>' in done.before and '<flavour>plain</flavour>' in done.after
    assert done.uuid == uuid and uuid in done.after and warnings == []


def test_check_mode_restart_does_not_claim_a_start_it_could_not_see():
    conn = existing(active=True, autostart=True, flavour='old')
    done, dummy = run(conn, restart_on_change=True, check_mode=True)
    assert done.actions == ['redefine', 'restart'] and conn.calls == []


def test_a_drifted_running_object_not_restarted_keeps_running_with_a_warning():
    conn = existing(active=True, autostart=True, flavour='old')
    done, warnings = run(conn, restart_on_change=False)
    assert done.actions == ['redefine']
    assert [call[0] for call in conn.calls] == ['networkDefineXML']
    assert warnings == ['x keeps its old flavour']


def test_a_drifted_stopped_object_is_redefined_without_a_warning():
    conn = existing(flavour='old')
    done, warnings = run(conn, active=False, autostart=False)
    assert done.actions == ['redefine'] and warnings == []


def test_a_refused_redefinition_changes_nothing():
    conn = existing(active=True)
    with pytest.raises(InvalidInputError):
        converge(FlavourKind(conn, 'x', 'plain', refuse=True), 'x', WantedState(), check_mode=False, warn=print)
    assert conn.calls == []


def test_stop_and_no_autostart():
    conn = existing(active=True, autostart=True)
    done, dummy = run(conn, active=False, autostart=False)
    assert done.actions == ['stop', 'no-autostart']
    assert conn.calls == [('destroy', 'x'), ('setAutostart', 'x', 0)]


@pytest.mark.parametrize('active,actions', [(True, ['stop', 'undefine']), (False, ['undefine'])])
def test_absent_stops_and_undefines(active, actions):
    conn = existing(active=active)
    done, dummy = run(conn, present=False)
    assert done.actions == actions and conn.networks == {}
    assert '<flavour>plain</flavour>' in done.before and done.after == '' and done.uuid is None


def test_absent_in_check_mode_and_absent_when_missing_change_nothing():
    conn = existing(active=True)
    done, dummy = run(conn, present=False, check_mode=True)
    assert done.actions == ['stop', 'undefine'] and conn.calls == [] and 'x' in conn.networks
    done, dummy = run(FakeConn(), present=False)
    assert done.actions == [] and done.before == ''


def test_lookup_or_none_turns_only_not_found_into_none():
    def missing(name):
        raise FakeLibvirtError('no such thing', VIR_ERR_NO_NETWORK)

    def broken(name):
        raise FakeLibvirtError('connection reset', 1)

    assert lookup_or_none(missing, 'x', VIR_ERR_NO_NETWORK, 'network') is None
    with pytest.raises(LibvirtCallError) as failed:
        lookup_or_none(broken, 'x', VIR_ERR_NO_NETWORK, 'network')
    assert failed.value.msg == 'Looking up network x failed: connection reset'


def test_libvirt_errors_while_managing_name_the_object():
    conn = existing(active=False)

    def refuse(flags=0):
        raise FakeLibvirtError('bridge br0 does not exist', 1)
    conn.networks['x'].create = refuse
    with pytest.raises(LibvirtCallError) as failed:
        run(conn)
    assert failed.value.msg == 'Managing thing x failed: bridge br0 does not exist'
