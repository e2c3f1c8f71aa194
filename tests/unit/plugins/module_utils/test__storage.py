# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""refresh_pool: a pool busy with another job (e.g. another migration's storage probe) is waited for."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._storage import refresh_pool

BUSY = RuntimeError("internal error: pool 'images' has asynchronous jobs running.")


class Pool:
    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    def refresh(self, flags):
        assert flags == 0
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_a_busy_pool_is_refreshed_once_the_other_job_is_done():
    pool, clock = Pool(BUSY, BUSY), Clock()
    refresh_pool(pool, timeout_s=10, interval_s=0.1, clock=clock, sleep=clock.sleep)
    assert pool.calls == 3 and clock.now == pytest.approx(0.2)


def test_other_errors_are_raised_at_once():
    pool, clock = Pool(RuntimeError('cannot open directory /x: No such file or directory')), Clock()
    with pytest.raises(RuntimeError, match='No such file'):
        refresh_pool(pool, clock=clock, sleep=clock.sleep)
    assert pool.calls == 1 and clock.now == 0


def test_a_pool_busy_for_longer_than_the_timeout_raises_the_busy_error():
    pool, clock = Pool(*[BUSY] * 100), Clock()
    with pytest.raises(RuntimeError, match='asynchronous jobs running'):
        refresh_pool(pool, timeout_s=1, interval_s=0.25, clock=clock, sleep=clock.sleep)
    assert pool.calls == 5
