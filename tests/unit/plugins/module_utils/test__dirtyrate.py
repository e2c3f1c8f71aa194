# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Dirty-rate measurement: the pure helpers, and the flow against libvirt doubles and a fake clock.
The measurement on real guests is a lab test."""

from __future__ import annotations


import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._dirtyrate import (
    SATURATION_Z,
    STATS,
    VIR_DOMAIN_DIRTYRATE_MODE_PAGE_SAMPLING,
    DirtyRateReport,
    DirtyRateResult,
    SampleEstimate,
    busy_share,
    calc_status_from_stats,
    combine_samples,
    dirty_rate_from_stats,
    is_fresh,
    measure_dirty_rates,
    probe_working_sets,
    vcpu_time_from_stats,
)

MIB = 1 << 20
RUNNING, PAUSED, SHUTOFF = 1, 3, 5


@pytest.fixture(autouse=True)
def use_libvirt_error(libvirt_error):
    return libvirt_error


class Clock:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def measured(mib_s, start_time, period=1, vcpu_ns=(0,)):
    stats = {'dirtyrate.calc_status': 2, 'dirtyrate.calc_start_time': start_time, 'dirtyrate.calc_period': period,
             'dirtyrate.megabytes_per_second': mib_s}
    stats.update(('vcpu.%d.time' % n, t) for n, t in enumerate(vcpu_ns))
    return stats


class FakeDomain:
    def __init__(self, name, state=RUNNING, start_error=None, can_measure=True):
        self._name, self._state, self.start_error, self.can_measure = name, state, start_error, can_measure
        self.started = []

    def name(self):
        return self._name

    def state(self):
        return [self._state, 1]

    def startDirtyRateCalc(self, seconds, flags):  # noqa: N802 - libvirt's spelling
        if not self.can_measure:  # what bindings older than the call give
            raise AttributeError("'virDomain' object has no attribute 'startDirtyRateCalc'")
        if self.start_error:
            raise self.start_error
        self.started.append((seconds, flags))
        return 0


class FakeConn:
    """Statistics as a function of the fake clock: ``timeline[name]`` is a list of (from_time,
    stats); the last entry whose time has come is returned."""

    def __init__(self, clock, timeline, version=9000000, stats_error=None):
        self.clock, self.timeline, self.version, self.stats_error = clock, timeline, version, stats_error
        self.stats_calls = []

    def getLibVersion(self):  # noqa: N802
        return self.version

    def domainListGetStats(self, doms, stats):  # noqa: N802
        self.stats_calls.append(([d.name() for d in doms], stats))
        if self.stats_error:
            raise self.stats_error
        result = []
        for dom in doms:
            current = {}
            for since, values in self.timeline.get(dom.name(), []):
                if self.clock() >= since:
                    current = values
            result.append((dom, dict(current)))
        return result


def run(doms, timeline, clock=None, **kwargs):
    clock = clock or Clock()
    conn = FakeConn(clock, timeline, **{k: kwargs.pop(k) for k in ('version', 'stats_error') if k in kwargs})
    report = measure_dirty_rates(doms, conn=conn, clock=clock, sleep=clock.sleep, wall_clock=lambda: 1.7e9, **kwargs)
    return report, conn, clock


class TestPureHelpers:
    def test_reads_a_finished_measurement(self):
        stats = dict(measured(30, 5000), **{'dirtyrate.calc_mode': 'page-sampling'})
        assert dirty_rate_from_stats(stats) == {'dirty_rate_bps': 30 * MIB, 'calc_period_s': 1,
                                                'mode': 'page-sampling', 'start_time': 5000}
        assert dirty_rate_from_stats({'dirtyrate.calc_status': 1}) is None
        assert dirty_rate_from_stats({}) is None
        assert calc_status_from_stats({'dirtyrate.calc_status': 'measured'}) == 2

    def test_vcpu_busy_share(self):
        before = vcpu_time_from_stats({'vcpu.current': 2, 'vcpu.0.time': 10, 'vcpu.1.time': 20, 'vcpu.0.wait': 7})
        after = vcpu_time_from_stats({'vcpu.0.time': 10 + int(0.1e9), 'vcpu.1.time': 20 + int(0.3e9)})
        assert before == (30, 2)
        # 0.4 s of CPU over 2 vCPUs x 2 s.
        assert busy_share(before, after, 2.0) == 0.1
        assert busy_share(None, after, 2.0) is None and busy_share(before, after, 0) is None

    def test_freshness(self):
        assert is_fresh({}, measured(2, 7))
        assert is_fresh({'dirtyrate.calc_status': 1, 'dirtyrate.calc_start_time': 7}, measured(2, 7))
        assert not is_fresh(measured(2, 7), measured(2, 7))
        assert is_fresh(measured(2, 7), measured(3, 9))
        assert not is_fresh({}, {'dirtyrate.calc_status': 1})


class TestMeasure:
    def test_all_guests_at_once_within_the_budget(self):
        doms = [FakeDomain('busy'), FakeDomain('idle')]
        timeline = {'busy': [(0, measured(20, 500, vcpu_ns=(0,))), (101.15, measured(30, 601, vcpu_ns=(int(0.12e9),)))],
                    'idle': [(0, {}), (100.95, measured(2, 601))]}  # ready at the 2nd and 1st poll
        report, conn, clock = run(doms, timeline)
        busy, idle = report.results
        assert (busy.name, busy.status, busy.dirty_rate_bps, busy.calc_period_s) == ('busy', 'measured', 30 * MIB, 1)
        assert (idle.status, idle.dirty_rate_bps, idle.measured_at) == ('measured', 2 * MIB, 1.7e9)
        # 0.12 s of vCPU time in the 1.2 s between the readings.
        assert busy.vcpu_busy_share == pytest.approx(0.1)
        assert [d.started for d in doms] == [[(1, VIR_DOMAIN_DIRTYRATE_MODE_PAGE_SAMPLING)]] * 2
        # One statistics call before, none while the period runs, then polls every 0.1 s.
        assert conn.stats_calls[0] == (['busy', 'idle'], STATS)
        assert clock.slept[0] == 1.0 and all(s == pytest.approx(0.1) for s in clock.slept[1:])
        assert report.elapsed_s == pytest.approx(1.2)
        assert report.as_dict()['budget_s'] == 2.5
        assert report.result('idle') is idle and report.result('nope') is None

    def test_a_stale_result_is_not_taken_and_the_wait_is_bounded(self):
        timeline = {'slow': [(0, measured(25, 500))]}  # the earlier calculation's, never replaced
        report, dummy_conn, dummy_clock = run([FakeDomain('slow')], timeline, seconds=2, grace_s=1.0)
        (result,) = report.results
        assert result.status == 'timeout' and result.dirty_rate_bps is None
        assert 'no result within 3.0 s (measuring 2 s)' in result.message
        assert report.elapsed_s == pytest.approx(3.0)

    def test_guests_that_do_not_run(self):
        doms = [FakeDomain('paused', PAUSED), FakeDomain('off', SHUTOFF)]
        report, conn, dummy_clock = run(doms, {})
        assert [r.status for r in report.results] == ['paused', 'not_running']
        assert 'a paused guest dirties nothing' in report.results[0].message
        assert conn.stats_calls == [] and all(d.started == [] for d in doms)

    def test_libvirt_older_than_7_2(self):
        report, conn, dummy_clock = run([FakeDomain('a')], {}, version=7001000)
        (result,) = report.results
        assert result.status == 'unsupported'
        assert 'libvirt 7.1.0 on the host has no dirty-rate measurement' in result.message
        assert conn.stats_calls == []

    def test_bindings_or_qemu_without_the_call(self, libvirt_error):
        doms = [FakeDomain('old-bindings', can_measure=False),
                FakeDomain('old-qemu', start_error=libvirt_error('this function is not supported', 3)),
                FakeDomain('stopped-meanwhile', start_error=libvirt_error('domain is not running', 55)),
                FakeDomain('broken', start_error=libvirt_error('internal error', 1))]
        report, dummy_conn, clock = run(doms, {})
        assert [r.status for r in report.results] == ['unsupported', 'unsupported', 'not_running', 'error']
        assert 'libvirt-python 7.2 or later' in report.results[0].message
        assert 'QEMU 5.2 or later' in report.results[1].message
        assert report.results[3].message == 'starting the dirty-rate calculation failed: internal error'
        assert clock.slept == []  # nothing to wait for

    def test_statistics_failure_is_reported_per_guest(self, libvirt_error):
        report, dummy_conn, dummy_clock = run([FakeDomain('a')], {}, stats_error=libvirt_error('no stats', 1))
        assert report.results[0].status == 'error'
        assert report.results[0].message == 'reading the domain statistics failed: no stats'

    def test_nothing_to_measure(self):
        assert measure_dirty_rates([], conn=object()).results == ()
        with pytest.raises(ValueError, match='seconds must be at least 1'):
            measure_dirty_rates([FakeDomain('a')], seconds=0)


class TestCombineSamples:
    """Rates in MiB/s as the lab measured them (a 64 MiB/s writer in a 96 MiB set, 256 MiB guest)."""

    @pytest.mark.parametrize('short, long_', [(54, 29), (62, 28), (68, 36), (64, 38), (52, 30), (64, 33)])
    def test_the_lab_writers_set_is_seen_saturated(self, short, long_):
        estimate = combine_samples(short * MIB, 1, long_ * MIB, 3)
        assert estimate.working_set_bytes == long_ * 3 * MIB and estimate.rate_bps == short * MIB
        assert estimate.z >= SATURATION_Z

    def test_a_writer_that_does_not_saturate_is_pooled(self):
        estimate = combine_samples(20 * MIB, 1, 22 * MIB, 3)
        assert estimate.working_set_bytes is None and estimate.rate_bps == (20 + 66) * MIB / 4.0

    def test_noise_of_a_few_sampled_pages_is_not_saturation(self):
        # 16 MiB then 36 MiB: 8 and 18 sampled pages where 24 were expected; within the noise
        estimate = combine_samples(16 * MIB, 1, 12 * MIB, 3)
        assert estimate.working_set_bytes is None and estimate.z < SATURATION_Z
        assert estimate.rate_bps == 13 * MIB

    def test_a_set_dirtied_whole_within_the_short_sample(self):
        # The set is full after a second: the longer sample dirtied no more than the short one.
        estimate = combine_samples(40 * MIB, 1, 13 * MIB, 3)
        assert estimate.working_set_bytes == 40 * MIB

    def test_nothing_dirtied(self):
        assert combine_samples(0.0, 1, 0.0, 3) == SampleEstimate(rate_bps=0.0, working_set_bytes=None, z=0.0)

    def test_the_long_sample_must_be_longer(self):
        with pytest.raises(ValueError, match='longer'):
            combine_samples(MIB, 3, MIB, 3)


class TestProbeWorkingSets:
    def report(self, results, seconds=1, elapsed_s=1.1):
        return DirtyRateReport(results=tuple(results), seconds=seconds, budget_s=seconds + 1.5, elapsed_s=elapsed_s)

    def test_only_measured_busy_guests_are_sampled_again_and_combined(self):
        doms = [FakeDomain(name) for name in ('busy', 'idle', 'paused', 'lost')]
        first = self.report([DirtyRateResult('busy', 'measured', dirty_rate_bps=64.0 * MIB, calc_period_s=1,
                                             vcpu_busy_share=0.4),
                             DirtyRateResult('idle', 'measured', dirty_rate_bps=0.0, calc_period_s=1),
                             DirtyRateResult('paused', 'paused'),
                             DirtyRateResult('lost', 'measured', dirty_rate_bps=8.0 * MIB, calc_period_s=1)])
        calls = []

        def measure(domains, seconds):
            calls.append(([d.name() for d in domains], seconds))
            return self.report([DirtyRateResult('busy', 'measured', dirty_rate_bps=32.0 * MIB, calc_period_s=3,
                                                vcpu_busy_share=0.5),
                                DirtyRateResult('lost', 'timeout')], seconds=seconds, elapsed_s=3.2)
        probed = probe_working_sets(doms, first, seconds=3, measure=measure)
        assert calls == [(['busy', 'lost'], 3)]
        busy = probed.result('busy')
        assert busy.working_set_bytes == 96 * MIB and busy.dirty_rate_bps == 64 * MIB
        assert busy.samples == ((1, 64 * MIB), (3, 32 * MIB)) and busy.vcpu_busy_share == 0.5
        assert probed.result('lost') == first.result('lost')  # its second sample failed: the first stays
        assert probed.result('idle') == first.result('idle') and probed.result('paused') == first.result('paused')
        assert probed.probe_seconds == 3 and probed.elapsed_s == pytest.approx(4.3)
        assert probed.as_dict()['probe_seconds'] == 3

    def test_nothing_to_probe_returns_the_first_report(self):
        first = self.report([DirtyRateResult('idle', 'measured', dirty_rate_bps=0.0)])
        assert probe_working_sets([FakeDomain('idle')], first, measure=pytest.fail) is first
