# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_evacuate refuses bad input for backup and rejoin before connecting to libvirt (the harness
fails the test if it tries), with changed=false and a remedy where there is one."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.modules import virt_evacuate


@pytest.mark.parametrize('args,words', [
    ({'action': 'backup', 'definitions_dir': ''}, 'definitions_dir is empty'),
    ({'action': 'backup', 'guests': ['web1']}, 'guests does not apply to action=backup'),
    ({'action': 'rejoin'}, 'hosts is required for action=rejoin'),
    ({'action': 'recover', 'hosts': ['host-b']}, 'dead_host is required'),
    ({'action': 'evacuate', 'hosts': ['host-b', '-oProxyCommand=x']}, "hosts='-oProxyCommand=x' is refused"),
    ({'action': 'recover', 'hosts': ['host-b'], 'dead_host': 'host-a;id', 'fenced': True}, 'not a host name'),
    ({'action': 'evacuate', 'hosts': ['host-b'], 'migrate_options': {'migrate_uri': 'exec://x'}}, 'migrate_uri='),
    ({'action': 'evacuate', 'hosts': ['host-b'], 'uri': 'qemu+ext:///system?command=/tmp/x'}, 'local URI'),
])
def test_bad_input_fails_before_connecting(run_main, args, words):
    result, failed = run_main(virt_evacuate, args)
    assert failed and words in result['msg'] and result.get('changed') is False, result


def test_unknown_action_lists_the_choices(run_main):
    result, failed = run_main(virt_evacuate, {'action': 'snapshot'})
    assert failed and 'backup, rejoin' in result['msg']


def test_empty_definitions_dir_names_the_fix(run_main):
    result, dummy = run_main(virt_evacuate, {'action': 'backup', 'definitions_dir': ''}, check_mode=True)
    assert 'shared by every hypervisor' in result['remedy']
