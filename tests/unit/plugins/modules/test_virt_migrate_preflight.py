# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Argument handling of virt_migrate_preflight (the checks themselves: test__preflight.py)."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils import _preflight_spec as pf
from ansible_collections.kvmops.migration.plugins.modules import virt_migrate_preflight as mod


class FakeRunner:
    checks = []
    seen_params = None

    def __init__(self, client, params):
        FakeRunner.seen_params = dict(params)

    def run(self):
        return {'checks': list(FakeRunner.checks), 'summary': pf.summarize(FakeRunner.checks), 'guests': ['vm1'],
                'source': {}, 'destination': {}, 'bandwidth': None, 'estimates': [], 'timings': {}}


@pytest.fixture
def runner(monkeypatch):
    monkeypatch.setattr(mod, 'PreflightRunner', FakeRunner)
    FakeRunner.checks = [pf.check('connectivity.ssh', 'ok', 'fine')]
    FakeRunner.seen_params = None
    return FakeRunner


@pytest.fixture
def run(run_main):
    """run(args) -> (result, failed) (tests/unit/plugins/modules/conftest.py)."""
    return lambda args: run_main(mod, args)


@pytest.mark.parametrize('args, message', [
    ({}, 'missing required arguments: dest'),
    ({'dest': 'b', 'transport': 'rdma'}, 'transport'),
    ({'dest': 'b', 'fail_on': 'always'}, 'fail_on'),
    ({'dest': 'b', 'storage_probe': 'nfs'}, 'storage_probe'),
    ({'dest': 'b', 'guests': 'vm1', 'measure_bandwidth': 'maybe'}, 'measure_bandwidth'),
    ({'dest': 'b', 'bandwidth_seconds': 0.5}, 'bandwidth_seconds must be between 1 and 30'),
    ({'dest': 'b', 'bandwidth_seconds': 60}, 'bandwidth_seconds must be between 1 and 30'),
    ({'dest': 'b', 'memory_margin_mib': -1}, 'memory_margin_mib'),
    ({'dest': 'b', 'vcpu_overcommit_ratio': 0}, 'vcpu_overcommit_ratio'),
    ({'dest': 'b', 'connect_timeout': 0}, 'connect_timeout'),
])
def test_invalid_arguments(runner, run, args, message):
    result, failed = run(args)
    assert failed and message in result['msg']
    assert FakeRunner.seen_params is None  # refused before anything ran


def test_defaults_and_report(runner, run):
    result, failed = run({'dest': 'host-b', 'guests': 'vm1,vm2'})
    assert not failed
    p = FakeRunner.seen_params
    assert (p['transport'], p['fail_on'], p['storage_probe'], p['measure_bandwidth']) == ('ssh', 'fail', 'auto', False)
    assert p['guests'] == ['vm1', 'vm2'] and p['uri'] == 'qemu:///system'
    assert result['changed'] is False and result['summary']['verdict'] == 'ok'


def test_fail_on(runner, run):
    FakeRunner.checks = [pf.check('storage.disk', 'warn', 'local disk', 'copy_storage', guest='vm1'),
                         pf.check('firewall.migration_ports', 'fail', 'blocked', 'open them')]
    result, failed = run({'dest': 'host-b'})
    assert failed
    assert 'firewall.migration_ports: blocked' in result['msg'] and result['checks'] == FakeRunner.checks
    assert result['summary']['fail'] == 1 and result['changed'] is False
    assert run({'dest': 'host-b', 'fail_on': 'never'})[1] is False
    FakeRunner.checks = FakeRunner.checks[:1]
    assert run({'dest': 'host-b'})[1] is False
    assert run({'dest': 'host-b', 'fail_on': 'warn'})[1] is True


@pytest.mark.parametrize('dest, words', [
    ('qemu:///system', 'names no host'),
    ('qemu+ext://host-b/system?command=/tmp/x', 'scheme qemu+ext:// is not accepted'),
    ('qemu+ssh://host-b/system?no_verify=1', 'URI parameter no_verify is not accepted'),
    ('-oProxyCommand=x', 'not a host name'),
])
def test_invalid_dest_is_clear(run, dest, words):
    result, failed = run({'dest': dest})
    assert failed and words in result['msg'] and 'qemu+ssh://[user@]host[:port]/system' in result['remedy']
