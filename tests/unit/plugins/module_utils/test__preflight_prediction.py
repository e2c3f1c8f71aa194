# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight's per-guest predictions (pure part) and its dirty-rate probe (with a stand-in
measurement); the runner with measure_bandwidth against its fakes."""

from __future__ import annotations

import threading
import types

from ansible_collections.kvmops.migration.plugins.module_utils import _preflight_prediction, _preflight_runner
from ansible_collections.kvmops.migration.plugins.module_utils._dirtyrate import DirtyRateReport, DirtyRateResult
from ansible_collections.kvmops.migration.plugins.module_utils._migration_history import HistoryEntry
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_prediction import (
    DirtyRateProbe,
    guest_estimates,
    set_unknown,
)
from ansible_collections.kvmops.migration.plugins.module_utils._prediction_inputs import JOB_SETUP_S

from ansible_collections.kvmops.migration.tests.unit.plugins.module_utils.preflight_data import dom_xml
from ansible_collections.kvmops.migration.tests.unit.plugins.module_utils.test__preflight_runner import (  # noqa: F401 pylint: disable=unused-import
    fake_lv_errors,
    make_runner,
)

MIB = 1 << 20


def guest(name='web1', memory_mib=256, copy_mib=0, history=(), resident_mib=None):
    disks = [{'allocation': copy_mib * MIB, 'needs_copy': bool(copy_mib)}]
    return {'name': name, 'memory_kib': memory_mib * 1024, 'current_memory_kib': None, 'disks': disks,
            'history': history, 'resident_bytes': None if resident_mib is None else resident_mib * MIB}


def report(*results):
    return DirtyRateReport(results=results, seconds=1, budget_s=2.5, elapsed_s=1.1)


class TestEstimates:
    def test_an_idle_guest_moves_with_precopy_in_about_its_memory_time(self):
        estimate = guest_estimates([guest()], report(DirtyRateResult('web1', 'measured', dirty_rate_bps=0.1 * MIB)),
                                   100.0)[0]
        # 256 MiB at 100 MiB/s, plus the job's fixed part (JOB_SETUP_S)
        assert estimate['strategy'] == 'precopy_steps' and 2.56 + JOB_SETUP_S <= estimate['seconds'] <= 2.7 + JOB_SETUP_S
        assert estimate['sentence'].startswith('Plain pre-copy converges') and estimate['remedies'] == []
        assert estimate['prediction']['dirty_rate_source'] == 'measured'
        assert (estimate['memory_mib'], estimate['copy_storage_mib']) == (256.0, 0.0)

    def test_memory_the_guest_never_touched_is_not_counted_as_sent(self):
        """QEMU's resident memory is a floor of the zero pages, as in virt_migrate's own prediction: a
        1 GiB guest with 256 MiB resident sends about 256 MiB in its first pass, not 1 GiB."""
        idle = report(DirtyRateResult('web1', 'measured', dirty_rate_bps=0.0))
        whole = guest_estimates([guest(memory_mib=1024)], idle, 100.0)[0]
        touched = guest_estimates([guest(memory_mib=1024, resident_mib=256)], idle, 100.0)[0]
        assert touched['prediction']['zero_page_share'] == 0.75 and whole['prediction']['zero_page_share'] == 0.0
        assert touched['seconds'] < 0.4 * whole['seconds'], (touched['seconds'], whole['seconds'])

    def test_disks_to_copy_add_their_time(self):
        plain, copying = guest_estimates([guest(), guest('db1', copy_mib=512)], report(
            DirtyRateResult('web1', 'measured', dirty_rate_bps=0.0),
            DirtyRateResult('db1', 'measured', dirty_rate_bps=0.0)), 128.0)
        assert copying['seconds'] - plain['seconds'] == 4.0

    def test_a_guest_that_cannot_move_live_is_refused_with_remedies_and_the_lower_bound(self):
        busy = DirtyRateResult('web1', 'measured', dirty_rate_bps=30.0 * MIB, vcpu_busy_share=0.01)
        estimate = guest_estimates([guest()], report(busy), 10.0)[0]
        assert estimate['strategy'] == 'refused' and estimate['seconds'] == 25.6  # memory once over the link
        assert any(r.startswith('bandwidth: at least') for r in estimate['remedies'])

    def test_history_stands_in_for_a_guest_not_measured(self):
        history = (HistoryEntry(at='2026-12-05T10:00:00Z', strategy='precopy_steps', dirty_rate_bps=0.2 * MIB),)
        estimate = guest_estimates([guest(history=history)], None, 100.0)[0]
        assert estimate['prediction']['dirty_rate_source'] == 'history' and estimate['strategy'] == 'precopy_steps'

    def test_nothing_known_is_unknown_with_the_lower_bound(self):
        estimate = guest_estimates([guest()], report(DirtyRateResult('web1', 'timeout')), 100.0)[0]
        assert (estimate['strategy'], estimate['seconds']) == ('unknown', 2.6)
        assert estimate['sentence'].startswith('No prediction: the dirty rate is unknown')

    def test_a_paused_guest_moves_in_one_pass(self):
        estimate = guest_estimates([guest()], report(DirtyRateResult('web1', 'paused')), 100.0)[0]
        assert estimate['strategy'] == 'precopy_steps' and estimate['prediction']['dirty_rate_bps'] == 0.0


class TestProbe:
    def test_measures_in_a_thread_and_reports(self):
        seen = []

        def measure(doms, seconds):
            seen.append((doms, seconds, threading.current_thread().name))
            return report(DirtyRateResult('web1', 'measured', dirty_rate_bps=MIB))
        probe = DirtyRateProbe(['dom'], seconds=2, measure=measure).start()
        assert probe.report().result('web1').dirty_rate_bps == MIB and probe.error is None
        assert seen == [(['dom'], 2, 'kvmops-preflight-dirtyrate')]

    def test_guests_without_a_known_working_set_are_sampled_again(self):
        seen = []
        dom = types.SimpleNamespace(name=lambda: 'web1')

        def measure(doms, seconds):
            seen.append(seconds)
            return DirtyRateReport(results=(DirtyRateResult('web1', 'measured', dirty_rate_bps={1: 64, 3: 32}[seconds] * MIB,
                                                            calc_period_s=seconds),),
                                   seconds=seconds, budget_s=seconds + 1.5, elapsed_s=seconds + 0.1)
        probe = DirtyRateProbe([dom], seconds=1, measure=measure, probe=[dom]).start()
        assert probe.report().result('web1').working_set_bytes == 96 * MIB and seen == [1, 3]
        saturated = HistoryEntry(at='2026-12-05T10:00:00Z', strategy='auto_converge', dirty_rate_bps=64.0 * MIB,
                                 dirty_set_bytes=96 * MIB, duration_s=26.6, passes=4)
        assert set_unknown(guest()) and not set_unknown(guest(history=(saturated,)))

    def test_a_failure_is_reported_not_raised(self):
        def measure(doms, seconds):
            raise RuntimeError('connection reset')
        probe = DirtyRateProbe(['dom'], measure=measure).start()
        assert probe.report() is None and probe.error == 'measuring the dirty rates failed: connection reset'

    def test_nothing_to_measure(self):
        assert DirtyRateProbe([]).start().report() is None


def test_the_runner_predicts_each_guest_with_measure_bandwidth(tmp_path, monkeypatch, fake_lv_errors):  # noqa: F811
    measured = []

    def measure(doms, seconds):
        measured.append(([d.name() for d in doms], seconds))
        return report(DirtyRateResult('vm1', 'measured', dirty_rate_bps=0.5 * MIB, vcpu_busy_share=0.1))
    monkeypatch.setattr(_preflight_prediction, 'measure_dirty_rates', measure)
    monkeypatch.setattr(_preflight_runner, 'measure_bandwidth', lambda *args, **kw: {
        'mib_s': 64.0, 'bytes': 192 * MIB, 'seconds': 3.0, 'port': 49152})
    runner = make_runner(tmp_path, monkeypatch, [dom_xml()], params={'measure_bandwidth': True,
                                                                     'dirty_rate_seconds': 2})
    runner.ssh_factory = _listening(runner.ssh_factory)
    result = runner.run()
    assert measured == [(['vm1'], 2), (['vm1'], 6)]  # no history: sampled again, three times as long
    estimate = result['estimates'][0]
    assert estimate['guest'] == 'vm1' and estimate['strategy'] == 'precopy_steps'
    assert result['dirty_rate']['results'][0]['status'] == 'measured'
    assert result['timings']['dirty_rate_s'] == 2.2  # both samples


def _listening(factory):
    """The fake ssh session, with its listener bound on every port asked for."""
    def make(destination, **args):
        session = factory(destination, **args)
        session.listen = lambda ports: {'bound': list(ports)[:1], 'busy': []}
        return session
    return make
