# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""virt_storage_pool's logic: input per pool type, the pool XML and its reading, drift, and the
result over a fake connection."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError
from ansible_collections.kvmops.migration.plugins.module_utils._module_wrapper import spec_defaults
from ansible_collections.kvmops.migration.plugins.module_utils._pool_manager import (
    ARGUMENT_SPEC,
    VIR_STORAGE_POOL_CREATE_WITH_BUILD,
    StoragePoolKind,
    current_fields,
    desired_fields,
    manage_pool,
    pool_xml,
    validate,
)
from libvirt_doubles import FakeConn, FakeKvm

DIR_POOL = "<pool type='dir'><name>p</name><target><path>{path}</path></target></pool>"


def params(**given):
    return spec_defaults(ARGUMENT_SPEC, **given)


ISCSI = dict(type='iscsi', source_host='san', source_port=3260, source_device='iqn.2026-01.x:t',
             initiator_iqn='iqn.2026-01.y:i')


@pytest.mark.parametrize('given,words', [
    (dict(), 'target_path is required for a dir pool'),
    (dict(type='netfs', target_path='/mnt'), 'source_host is required for a netfs pool'),
    (dict(type='netfs', target_path='/mnt', source_host='nfs'), 'source_dir is required'),
    (dict(type='iscsi', source_host='san'), 'source_device (the target IQN) is required for a iscsi pool'),
    (dict(type='iscsi-direct', source_host='san', source_device='iqn.x'), 'initiator_iqn is required'),
])
def test_what_each_type_needs_is_refused_when_missing(given, words):
    with pytest.raises(InvalidInputError) as refused:
        validate(params(name='p', **given))
    assert words in refused.value.msg


def test_an_iscsi_pool_gets_the_kernel_device_directory_and_the_input_is_not_changed():
    given = params(name='p', **ISCSI)
    checked = validate(given)
    assert checked['target_path'] == '/dev/disk/by-path' and given['target_path'] is None


def test_absent_needs_nothing_else():
    assert validate(params(name='p', type='netfs', state='absent'))['state'] == 'absent'


@pytest.mark.parametrize('given', [
    dict(target_path='/srv/p'),
    dict(type='netfs', target_path='/mnt/p', source_host='nfs1', source_dir='/export', source_format='nfs'),
    dict(ISCSI, target_path='/dev/disk/by-path'),
    dict(type='iscsi-direct', source_host='san', source_device='iqn.x:t', initiator_iqn='iqn.y:i'),
])
def test_the_xml_reads_back_as_the_fields_it_was_built_from(given):
    want = desired_fields(params(name='p', **given))
    xml = pool_xml('p', want, uuid='u-1')
    root = ET.fromstring(xml)
    assert root.findtext('name') == 'p' and root.findtext('uuid') == 'u-1'
    assert current_fields(root, want) == dict((k, v) for k, v in want.items() if v is not None)
    assert not StoragePoolKind(None, 'p', want, build=True).needs_redefinition(xml, active=True)


def test_fields_a_type_does_not_use_are_not_compared():
    want = desired_fields(params(name='p', target_path='/srv/p', source_host='ignored', source_port=1))
    assert want['source_host'] is None and want['source_port'] is None
    xml = "<pool type='dir'><name>p</name><source><host name='other'/></source><target><path>/srv/p</path></target></pool>"
    assert current_fields(ET.fromstring(xml), want) == {'type': 'dir', 'target_path': '/srv/p'}


def test_another_type_is_refused_while_the_pool_runs_and_redefined_once_stopped():
    kind = StoragePoolKind(None, 'p', desired_fields(params(
        name='p', type='netfs', target_path='/srv/p', source_host='nfs1', source_dir='/export')), build=True)
    current = DIR_POOL.format(path='/srv/p')
    with pytest.raises(InvalidInputError) as refused:
        kind.needs_redefinition(current, active=True)
    assert refused.value.msg == 'Storage pool p is an active pool of type dir, not netfs'
    assert 'state=absent' in refused.value.remedy
    assert kind.needs_redefinition(current, active=False)


@pytest.mark.parametrize('given,build,flags', [
    (dict(target_path='/srv/p'), True, VIR_STORAGE_POOL_CREATE_WITH_BUILD),
    (dict(target_path='/srv/p'), False, 0),
    (ISCSI, True, 0),  # an iscsi pool has no directory to build
])
def test_start_builds_the_directory_of_dir_and_netfs_pools_only(given, build, flags):
    conn = FakeConn()
    manage_pool(FakeKvm(conn, params(name='p', build=build, **given)))
    assert ('create', 'p', flags) in conn.calls


def test_a_running_pool_reports_its_volumes_sorted_and_no_diff_outside_diff_mode():
    conn = FakeConn()
    conn.add_pool(DIR_POOL.format(path='/srv/p'), active=True, autostart=True, volumes=['b.qcow2', 'a.qcow2'])
    result = manage_pool(FakeKvm(conn, params(name='p', target_path='/srv/p')))
    assert not result['changed'] and result['actions'] == []
    assert result['pool'] == dict(name='p', type='dir', defined=True, active=True, autostart=True,
                                  uuid=conn.pools['p'].uuid, volumes=['a.qcow2', 'b.qcow2'])
    assert 'diff' not in result


def test_another_target_path_redefines_and_warns_and_diff_mode_shows_it():
    conn = FakeConn()
    conn.add_pool(DIR_POOL.format(path='/srv/p'), active=True, autostart=True)
    kvm = FakeKvm(conn, params(name='p', target_path='/srv/q'), diff_mode=True)
    result = manage_pool(kvm)
    assert result['actions'] == ['redefine'] and len(kvm.warnings) == 1
    assert 'until it is restarted (restart_on_change=false)' in kvm.warnings[0]
    assert '/srv/p' in result['diff']['before'] and '/srv/q' in result['diff']['after']


def test_check_mode_changes_nothing_and_lists_no_volumes():
    conn = FakeConn()
    result = manage_pool(FakeKvm(conn, params(name='p', target_path='/srv/p'), check_mode=True))
    assert result['actions'] == ['define', 'start', 'autostart'] and conn.calls == []
    assert result['pool']['uuid'] is None and result['pool']['volumes'] == []


def test_absent_reports_an_undefined_pool_and_leaves_its_volumes():
    conn = FakeConn()
    conn.add_pool(DIR_POOL.format(path='/srv/p'), active=True, volumes=['a'])
    result = manage_pool(FakeKvm(conn, params(name='p', state='absent')))
    assert result['actions'] == ['stop', 'undefine']
    assert result['pool'] == dict(name='p', type='dir', defined=False, active=False, autostart=False,
                                  uuid=None, volumes=[])
