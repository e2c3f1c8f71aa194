# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._fixed_cost import PhaseClock, at_once, process_age_s


class TestAtOnce:
    def test_results_in_call_order(self):
        assert at_once(lambda: 1, lambda: 'two', lambda: None) == [1, 'two', None]
        assert at_once() == []

    def test_the_calls_overlap(self):
        # Each call waits for the other: run one after the other, they would wait for ever.
        barrier = threading.Barrier(2, timeout=5)
        started = time.monotonic()
        assert at_once(barrier.wait, barrier.wait) is not None
        assert time.monotonic() - started < 5

    def test_every_call_ends_before_the_first_error_in_call_order_is_raised(self):
        ended = []

        def slow_then_fail():
            time.sleep(0.05)
            ended.append('second')
            raise ValueError('second')

        def fail():
            ended.append('first')
            raise KeyError('first')
        with pytest.raises(KeyError):
            at_once(fail, slow_then_fail)
        assert sorted(ended) == ['first', 'second']
        with pytest.raises(ValueError):
            at_once(lambda: 1, slow_then_fail)


class TestPhaseClock:
    def test_phases_add_up_to_the_total(self):
        ticks = iter([10.0, 10.5, 12.0, 12.25, 13.0])
        clock = PhaseClock(clock=lambda: next(ticks))
        clock.mark('connect')
        clock.mark('job')
        clock.mark('connect')  # a phase marked again adds up
        clock.mark('verify')
        clock.extra.update(module_start_s=0.4, unknown=None)
        assert clock.as_dict() == {'connect': 0.75, 'job': 1.5, 'verify': 0.75, 'total_s': 3.0,
                                   'module_start_s': 0.4}


class TestProcessAge:
    def test_reads_proc(self, tmp_path):
        (tmp_path / '42').mkdir()
        # The command name may hold spaces and parentheses: fields count after its last ')'.
        fields = ['S'] + ['0'] * 18 + ['500'] + ['0'] * 10
        (tmp_path / '42' / 'stat').write_text('42 (ansible (py) x) %s\n' % ' '.join(fields))
        (tmp_path / 'uptime').write_text('12.0 3.0\n')
        import os
        expected = 12.0 - 500 / float(os.sysconf('SC_CLK_TCK'))
        assert process_age_s(str(tmp_path), 42) == pytest.approx(max(0.0, expected))

    def test_none_without_proc(self, tmp_path):
        assert process_age_s(str(tmp_path), 42) is None

    def test_this_process(self):
        age = process_age_s()
        assert age is None or age >= 0
