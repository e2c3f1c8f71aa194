# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_migrate rejects bad input before it connects anywhere (the harness fails the test
if it tries), and ships without the preflight's ssh code. Decisions needing the domain are
tested on the lab (tests/integration)."""

from __future__ import annotations

import ast
import os

import pytest

from ansible_collections.kvmops.migration.plugins.modules import virt_migrate, virt_migrate_preflight


@pytest.mark.parametrize('args,words', [
    ({'dest': 'host-b'}, 'one of the following is required: name, uuid'),
    ({'name': 'a', 'uuid': 'b', 'dest': 'host-b'}, 'mutually exclusive'),
    ({'name': 'a'}, 'missing required arguments: dest'),
    ({'name': 'a', 'dest': 'host-b', 'mode': 'warm'}, 'mode'),
    ({'name': 'a', 'dest': 'host-b', 'transport': 'udp'}, 'transport'),
    ({'name': 'a', 'dest': 'host-b', 'copy_storage': 'some'}, 'copy_storage'),
    ({'name': 'a', 'dest': 'qemu+ssh://'}, 'names no host'),
    ({'name': 'a', 'dest': 'host b'}, 'neither a host name nor a URI'),
    ({'name': 'a', 'dest': 'qemu+ext://host-b/system?command=/tmp/x'}, 'scheme qemu+ext:// is not accepted'),
    ({'name': 'a', 'dest': 'qemu+ssh://host-b/system?no_verify=1'}, 'URI parameter no_verify is not accepted'),
    ({'name': 'a', 'dest': '-oProxyCommand=x'}, 'not a host name'),
    ({'name': 'a', 'dest': 'host-b', 'migrate_uri': 'exec://x'}, 'migrate_uri='),
    ({'name': 'a', 'dest': 'host-b', 'listen_address': '10.0.0.2;id'}, 'listen_address='),
    ({'name': 'a', 'dest': 'host-b', 'timeout': 0}, 'timeout=0'),
    ({'name': 'a', 'dest': 'host-b', 'poll_interval': 0}, 'poll_interval'),
    ({'name': 'a', 'dest': 'host-b', 'shutdown_timeout': -1}, 'shutdown_timeout'),
    ({'name': 'a', 'dest': 'host-b', 'compression': {'methods': ['lz4']}}, 'methods'),
    ({'name': 'a', 'dest': 'host-b', 'bandwidth': -1}, 'bandwidth=-1 is out of range'),
    ({'name': 'a', 'dest': 'host-b', 'tunnelled': True, 'allow_postcopy': True},
     'allow_postcopy=true cannot be combined with tunnelled=true'),
    ({'name': 'a', 'dest': 'host-b', 'postcopy_bandwidth': 5}, 'set allow_postcopy=true'),
    ({'name': 'a', 'dest': 'host-b', 'mode': 'offline', 'copy_storage': 'all'}, 'cannot copy storage'),
    ({'name': 'a', 'dest': 'host-b', 'strategy': 'fastest'}, 'strategy'),
    ({'name': 'a', 'dest': 'host-b', 'strategy': 'postcopy'}, 'strategy=postcopy needs allow_postcopy: true'),
    ({'name': 'a', 'dest': 'host-b', 'strategy': 'precopy', 'mode': 'paused'}, 'strategy=precopy chooses how a live'),
    ({'name': 'a', 'dest': 'host-b', 'dirty_rate_seconds': 0}, 'dirty_rate_seconds=0 must be between 1 and 10'),
])
def test_bad_input_fails_before_connecting(run_main, args, words):
    result, failed = run_main(virt_migrate, args)
    assert failed
    assert words in result['msg']
    assert result.get('changed') is False or 'changed' not in result


MODULE_UTILS = 'ansible_collections.kvmops.migration.plugins.module_utils'


def shipped_module_utils(path):
    """The module_utils files Ansiballz puts into a module's payload: those its code imports,
    recursively, wherever the import statement is (Ansiballz reads the source the same way)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    seen, todo = set(), [os.path.abspath(path)]
    while todo:
        with open(todo.pop(), encoding='utf-8') as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module == MODULE_UTILS:
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith(MODULE_UTILS + '.'):
                names = [node.module.rsplit('.', 1)[1]]
            for name in names:
                if name not in seen:
                    seen.add(name)
                    todo.append(os.path.join(root, 'module_utils', name + '.py'))
    return seen


def test_virt_migrate_ships_without_the_preflight_ssh_code():
    shipped = shipped_module_utils(virt_migrate.__file__)
    assert {'_preflight_checks', '_preflight_storage_checks', '_host_facts', '_destination', '_domain_xml'} <= shipped
    assert not shipped & {'_remote_probe', '_remote_helper', '_preflight_runner'}, shipped


def test_the_preflight_ships_its_remote_helper():
    assert {'_remote_probe', '_remote_helper', '_preflight_runner'} <= shipped_module_utils(virt_migrate_preflight.__file__)
