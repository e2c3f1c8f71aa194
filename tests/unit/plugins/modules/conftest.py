# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One harness for running a module's main() in unit tests: exit_json/fail_json become
exceptions carrying the result, libvirt is never imported or connected to."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils import basic

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    import contextlib
    from unittest import mock

    @contextlib.contextmanager
    def patch_module_args(args=None):
        payload = json.dumps(dict(ANSIBLE_MODULE_ARGS=args or {})).encode()
        with mock.patch.object(basic, '_ANSIBLE_ARGS', payload):
            yield


class ModuleExit(Exception):
    """The module ended; `result` is what it returned, `failed` whether through fail_json."""

    def __init__(self, result, failed):
        super().__init__(result)
        self.result = result
        self.failed = failed


class NoConnection:
    """A libvirt opener that fails the test if a module connects before validating."""

    def __call__(self, uri):
        raise AssertionError('the module connected to %s before rejecting its input' % uri)


@pytest.fixture
def run_main(monkeypatch):
    """run_main(module, args, check_mode=False, diff_mode=False, conn=None) -> (result dict, failed bool),
    with libvirt unreachable unless `conn` is given."""
    # Imported here: conftests load before pytest-ansible makes the collection importable.
    from ansible_collections.kvmops.migration.plugins.module_utils import _client, _module_wrapper

    def exit_json(self, **kwargs):
        raise ModuleExit(kwargs, False)

    def fail_json(self, msg, **kwargs):
        kwargs['msg'] = msg
        raise ModuleExit(kwargs, True)

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    monkeypatch.setattr(_module_wrapper, 'ensure_libvirt', lambda module: None)
    original = _client.LibvirtClient.__init__
    connection = []

    def client_without_connection(self, *args, **kwargs):
        kwargs['opener'] = (lambda uri: connection[0]) if connection else NoConnection()
        original(self, *args, **kwargs)
    monkeypatch.setattr(_client.LibvirtClient, '__init__', client_without_connection)

    def run(module, args, check_mode=False, diff_mode=False, conn=None):
        """`conn`: a stand-in the module's libvirt client connects to (default: none may be opened)."""
        if conn is not None:
            connection.append(conn)
        if check_mode:
            args = dict(args, _ansible_check_mode=True)
        if diff_mode:
            args = dict(args, _ansible_diff=True)
        with patch_module_args(args):
            with pytest.raises(ModuleExit) as ended:
                module.main()
        return ended.value.result, ended.value.failed
    return run
