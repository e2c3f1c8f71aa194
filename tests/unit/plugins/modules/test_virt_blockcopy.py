# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Argument handling of virt_blockcopy (the copy logic itself: test__blockjob.py)."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils import _client
from ansible_collections.kvmops.migration.plugins.modules import virt_blockcopy as mod


class FakeCopier:
    seen = None

    def __init__(self, dom, params, check_mode=False, local=True, warn=None):
        FakeCopier.seen = {'dom': dom, 'params': dict(params), 'check_mode': check_mode, 'local': local}

    def run(self):
        return {'changed': True, 'pivoted': True, 'disk': 'vda'}


@pytest.fixture
def run(run_main, monkeypatch):
    """run(args, check=False) -> (result, failed), with the copier faked (tests/unit/plugins/modules/conftest.py)."""
    monkeypatch.setattr(_client.LibvirtClient, 'lookup_domain', lambda self, name=None, uuid=None, conn=None: 'DOM:' + name)
    monkeypatch.setattr(mod, 'BlockCopier', FakeCopier)
    FakeCopier.seen = None
    return lambda args, check=False: run_main(mod, args, check_mode=check)


BASE = {'name': 'vm1', 'disk': 'vda', 'dest': '/var/lib/libvirt/local/vm1.qcow2'}


@pytest.mark.parametrize('args, message', [
    ({'disk': 'vda', 'dest': '/x'}, 'missing required arguments: name'),
    ({'name': 'vm1', 'dest': '/x'}, 'missing required arguments: disk'),
    ({'name': 'vm1', 'disk': 'vda'}, 'missing required arguments: dest'),
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


def test_dest_path_is_expanded(run):
    assert run(dict(BASE, dest='/var/lib/libvirt/local/../local/vm1.qcow2'))[1] is False
    assert FakeCopier.seen['params']['dest'].startswith('/var/lib/libvirt/local')
