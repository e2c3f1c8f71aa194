# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_migrate_preflight's verdict model: one verdict, the summary, fail_on."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._preflight_spec import (
    check,
    failure_message,
    format_version,
    should_fail,
    summarize,
)


class TestVerdicts:
    def test_check_shape(self):
        c = check('firewall.migration_ports', 'fail', 'closed', remedy='open it')
        assert c == {'name': 'firewall.migration_ports', 'category': 'firewall', 'status': 'fail',
                     'detail': 'closed', 'remedy': 'open it'}
        g = check('cpu.model', 'ok', 'fine', remedy='ignored', guest='vm1')
        assert g['guest'] == 'vm1' and g['remedy'] is None

    def test_bad_status(self):
        with pytest.raises(ValueError):
            check('x.y', 'bad', 'd')

    def test_summary(self):
        checks = [check('a.b', 'ok', ''), check('c.d', 'warn', '', 'r', guest='g'), check('e.f', 'fail', '', 'r')]
        s = summarize(checks, ['cpu: no connection'])
        assert s['verdict'] == 'fail' and (s['ok'], s['warn'], s['fail'], s['total']) == (1, 1, 1, 3)
        assert s['failed_checks'] == ['e.f'] and s['warned_checks'] == ['c.d(g)']
        assert s['skipped'] == ['cpu: no connection']
        assert summarize([])['verdict'] == 'ok'
        assert summarize(checks[:2])['verdict'] == 'warn'

    @pytest.mark.parametrize('statuses, fail_on, expected', [
        (['ok', 'warn'], 'fail', False),
        (['ok', 'fail'], 'fail', True),
        (['ok', 'warn'], 'warn', True),
        (['ok'], 'warn', False),
        (['fail'], 'never', False),
    ])
    def test_should_fail(self, statuses, fail_on, expected):
        checks = [check('a.b', s, 'd', 'r') for s in statuses]
        assert should_fail(checks, fail_on) is expected

    def test_should_fail_rejects_unknown(self):
        with pytest.raises(ValueError):
            should_fail([], 'sometimes')

    def test_failure_message_lists_problems(self):
        checks = [check('firewall.migration_ports', 'fail', 'blocked', 'r'),
                  check('storage.disk', 'warn', 'local', 'r', guest='vm1')]
        assert 'firewall.migration_ports: blocked' in failure_message(checks, 'fail')
        assert 'storage.disk (vm1): local' in failure_message(checks, 'warn')

    def test_format_version(self):
        assert format_version(9000000) == '9.0.0'
        assert format_version(7002022) == '7.2.22'
        assert format_version(None) == 'unknown'
