# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.modules import virt_migrate_control


@pytest.mark.parametrize('args,words', [
    ({'name': 'a', 'action': 'pause'}, 'action'),
    ({'name': 'a', 'action': 'set_bandwidth'}, 'needs bandwidth'),
    ({'name': 'a', 'action': 'set_bandwidth', 'bandwidth': -1}, 'needs bandwidth'),
    ({'name': 'a', 'action': 'set_max_downtime', 'max_downtime': 0}, 'needs max_downtime'),
])
def test_bad_input_fails_before_connecting(run_main, args, words):
    result, failed = run_main(virt_migrate_control, args)
    assert failed and words in result['msg']
