# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Argument handling of virt_blockcopy (the copy logic itself: test__blockjob.py)."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils import _client
from ansible_collections.kvmops.migration.plugins.module_utils import _copytarget as ct
from ansible_collections.kvmops.migration.plugins.modules import virt_blockcopy as mod


class FakeCopier:
    seen = None

    def __init__(self, dom, params, check_mode=False, local=True, warn=None, target=None):
        FakeCopier.seen = {'dom': dom, 'params': dict(params), 'check_mode': check_mode, 'local': local,
                           'target': target}

    def run(self):
        return {'changed': True, 'pivoted': True, 'disk': 'vda'}


class NamedDom(str):
    """A domain double that is its own name ('DOM:vm1') and has a UUID (the guest lock is keyed by it)."""

    def UUIDString(self):  # noqa: N802 - libvirt's spelling
        return '00000000-0000-0000-0000-00000000b10c'


@pytest.fixture
def run(run_main, monkeypatch, tmp_path):
    """run(args, check=False) -> (result, failed), with the copier faked (tests/unit/plugins/modules/conftest.py)."""
    monkeypatch.setattr(_client.LibvirtClient, 'lookup_domain',
                        lambda self, name=None, uuid=None, conn=None: NamedDom('DOM:' + name))
    monkeypatch.setitem(mod.ARGUMENT_SPEC['state_dir'], 'default', str(tmp_path))
    monkeypatch.setattr(mod, 'BlockCopier', FakeCopier)
    FakeCopier.seen = None
    return lambda args, check=False: run_main(mod, args, check_mode=check)


BASE = {'name': 'vm1', 'disk': 'vda', 'dest': '/var/lib/libvirt/local/vm1.qcow2'}


@pytest.mark.parametrize('args, message', [
    ({'disk': 'vda', 'dest': '/x'}, 'missing required arguments: name'),
    ({'name': 'vm1', 'dest': '/x'}, 'missing required arguments: disk'),
    ({'name': 'vm1', 'disk': 'vda'}, 'one of the following is required: dest, dest_volume'),
    (dict(BASE, dest_pool='local', dest_volume='v.qcow2'), 'mutually exclusive: dest|dest_pool'),
    (dict(BASE, dest_volume='v.qcow2'), 'mutually exclusive: dest|dest_volume'),
    ({'name': 'vm1', 'disk': 'vda', 'dest_pool': 'local'}, 'parameters are required together: dest_pool, dest_volume'),
    ({'name': 'vm1', 'disk': 'vda', 'dest_volume': 'v.qcow2'}, 'parameters are required together: dest_pool, dest_volume'),
    ({'name': 'vm1', 'disk': 'vda', 'dest_pool': 'local', 'dest_volume': '/x/v.qcow2'}, 'not a path'),
    (dict(BASE, dest='rbd://mon/pool/img'), "protocol 'rbd' is not supported"),
    (dict(BASE, dest='nbd://host:10809'), 'names no NBD export'),
    (dict(BASE, format='vmdk'), 'value of format must be one of: raw, qcow2, got: vmdk'),
    (dict(BASE, abort=True, remove_source=True), 'mutually exclusive'),
    (dict(BASE, remove_source=True, pivot=False), 'remove_source needs pivot'),
    (dict(BASE, timeout=0), 'timeout must be > 0'),
    (dict(BASE, bandwidth=0), 'bandwidth must be a positive'),
    (dict(BASE, poll_interval=0), 'poll_interval'),
    (dict(BASE, shallow='perhaps'), 'shallow'),
])
def test_invalid_arguments(run, args, message):
    result, failed = run(args)
    assert failed and message in result['msg']
    assert FakeCopier.seen is None  # refused before the domain was touched


def test_defaults_and_check_mode(run):
    result, failed = run(BASE, check=True)
    assert not failed
    seen = FakeCopier.seen
    assert seen['dom'] == 'DOM:vm1' and seen['check_mode'] and seen['local']
    p = seen['params']
    assert (p['pivot'], p['wait'], p['timeout'], p['shallow'], p['reuse_external'], p['remove_source'], p['abort']) == (
        True, True, 600, False, False, False, False)
    assert p['format'] is None and p['bandwidth'] is None
    assert result['changed'] is True


def test_remote_uri_disables_local_checks(run):
    assert run(dict(BASE, uri='qemu+ssh://host-b/system'))[1] is False
    assert FakeCopier.seen['local'] is False


def test_dest_path_is_expanded(run, monkeypatch):
    monkeypatch.setenv('BC_IMAGES', '/var/lib/libvirt/local')
    assert run(dict(BASE, dest='$BC_IMAGES/../local/vm1.qcow2'))[1] is False
    assert FakeCopier.seen['target'] == ct.CopyTarget(ct.PATH, path='/var/lib/libvirt/local/vm1.qcow2')


def test_pool_volume_target(run):
    assert run({'name': 'vm1', 'disk': 'vda', 'dest_pool': 'local', 'dest_volume': 'vm1.qcow2'})[1] is False
    assert FakeCopier.seen['target'] == ct.CopyTarget(ct.VOLUME, pool='local', volume='vm1.qcow2')


def test_network_target_is_not_expanded(run, monkeypatch):
    monkeypatch.setenv('HOME', '/root')
    assert run(dict(BASE, dest='nbd://storage-1:10851/~vm1', reuse_external=True))[1] is False
    target = FakeCopier.seen['target']
    assert (target.kind, target.host, target.port, target.name) == (ct.NETWORK, 'storage-1', 10851, '~vm1')
