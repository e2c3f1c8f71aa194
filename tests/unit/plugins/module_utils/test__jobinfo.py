# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.kvmops.migration.plugins.module_utils._jobinfo import describe_job, progress_percent


def test_progress_never_goes_backwards_when_remaining_grows():
    first = progress_percent({'type': 2, 'data_processed': 60, 'data_remaining': 40})
    assert first == 60.0
    # The guest dirtied more than was sent: the raw ratio falls to 50%, the report does not.
    assert progress_percent({'type': 2, 'data_processed': 80, 'data_remaining': 80}, previous=first) == 60.0


def test_completed_job_is_100_percent_and_figures_are_in_bytes_and_ms():
    job = describe_job({'type': 3, 'operation': 5, 'data_processed': 10, 'data_remaining': 0,
                        'memory_dirty_rate': 100, 'memory_page_size': 4096, 'downtime': 42})
    assert job['progress_percent'] == 100.0
    assert job['type'] == 'completed' and job['operation'] == 'migration_out'
    assert job['dirty_rate_bps'] == 409600 and job['expected_downtime_ms'] == 42


def test_no_job_reports_zero():
    assert describe_job({'type': 0})['progress_percent'] == 0.0
