# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""virt_bridge_network's logic: the network XML, drift, and the result over a fake connection."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._network_manager import (
    ARGUMENT_SPEC,
    BridgeNetworkKind,
    forward_and_bridge,
    manage_network,
    network_xml,
)
from ansible_collections.kvmops.migration.plugins.module_utils._module_wrapper import spec_defaults
from libvirt_doubles import FakeConn, FakeKvm

NET = "<network><name>mig</name><forward mode='{mode}'/><bridge name='{bridge}'/></network>"


def params(**given):
    return spec_defaults(ARGUMENT_SPEC, **given)


def test_network_xml_forwards_to_the_bridge_and_keeps_a_given_uuid():
    xml = network_xml('mig', 'br-mig', uuid='u-1')
    assert forward_and_bridge(xml) == ('bridge', 'br-mig')
    assert '<uuid>u-1</uuid>' in xml and '<name>mig</name>' in xml and xml.endswith('\n')
    assert '<uuid>' not in network_xml('mig', 'br-mig')


@pytest.mark.parametrize('xml,drift', [
    (NET.format(mode='bridge', bridge='br0'), False),
    (NET.format(mode='bridge', bridge='br1'), True),
    (NET.format(mode='nat', bridge='br0'), True),
    ('<network><name>mig</name></network>', True),
])
def test_drift_is_another_bridge_or_forward_mode(xml, drift):
    assert BridgeNetworkKind(None, 'mig', 'br0').needs_redefinition(xml, active=True) is drift


def test_a_new_network_is_reported_with_its_uuid_and_no_diff_outside_diff_mode():
    conn = FakeConn()
    result = manage_network(FakeKvm(conn, params(name='mig', bridge='br0')))
    assert result['changed'] and result['actions'] == ['define', 'start', 'autostart']
    assert result['network'] == dict(name='mig', bridge='br0', defined=True, active=True, autostart=True,
                                     uuid=conn.networks['mig'].uuid)
    assert 'diff' not in result


def test_diff_mode_shows_the_definition_before_and_after():
    conn = FakeConn()
    conn.add_network(NET.format(mode='bridge', bridge='br0'), active=True, autostart=True)
    kvm = FakeKvm(conn, params(name='mig', bridge='br1'), diff_mode=True)
    result = manage_network(kvm)
    assert result['actions'] == ['redefine', 'restart', 'start']
    assert forward_and_bridge(result['diff']['before']) == ('bridge', 'br0')
    assert forward_and_bridge(result['diff']['after']) == ('bridge', 'br1')


def test_redefined_without_restart_warns():
    conn = FakeConn()
    conn.add_network(NET.format(mode='bridge', bridge='br0'), active=True, autostart=True)
    kvm = FakeKvm(conn, params(name='mig', bridge='br1', restart_on_change=False))
    assert manage_network(kvm)['actions'] == ['redefine']
    assert kvm.warnings == ['Network mig was redefined but keeps running with its old definition '
                            '(restart_on_change=false)']


def test_check_mode_reports_the_wanted_state_and_changes_nothing():
    conn = FakeConn()
    result = manage_network(FakeKvm(conn, params(name='mig', bridge='br0'), check_mode=True, diff_mode=True))
    assert result['changed'] and conn.calls == [] and conn.networks == {}
    assert result['network']['uuid'] is None and result['network']['active']
    assert result['diff']['before'] == '' and forward_and_bridge(result['diff']['after']) == ('bridge', 'br0')


def test_absent_reports_an_undefined_network():
    conn = FakeConn()
    conn.add_network(NET.format(mode='bridge', bridge='br0'), active=True)
    result = manage_network(FakeKvm(conn, params(name='mig', state='absent'), diff_mode=True))
    assert result['actions'] == ['stop', 'undefine'] and conn.networks == {}
    assert result['network'] == dict(name='mig', bridge=None, defined=False, active=False, autostart=False, uuid=None)
    assert result['diff']['after'] == '' and 'br0' in result['diff']['before']
