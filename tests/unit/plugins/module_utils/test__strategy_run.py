# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The strategy glue against libvirt doubles: what it reads and measures before the job, when it
refuses, the course check it hands the engine, and the history it writes after the job.  The
measurement and the migrations themselves are lab tests (tests/integration/test_prediction.py)."""

from __future__ import annotations

import types

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._errors import MigrationError
from ansible_collections.kvmops.migration.plugins.module_utils._course import CourseCheck
from ansible_collections.kvmops.migration.plugins.module_utils._dirtyrate import DirtyRateReport, DirtyRateResult
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import VIR_ERR_NO_DOMAIN_METADATA
from ansible_collections.kvmops.migration.plugins.module_utils._migration_history import (
    HistoryEntry,
    history_from_xml,
    history_to_xml,
)
from ansible_collections.kvmops.migration.plugins.module_utils._migration_spec import option_defaults
from ansible_collections.kvmops.migration.plugins.module_utils import _strategy_run
from ansible_collections.kvmops.migration.plugins.module_utils._strategy_run import StrategyRun

MIB = 1 << 20


class FakeDom:
    """A guest's metadata, memory and completed-job statistics."""

    def __init__(self, libvirt_error, history=(), metadata_error=None, write_error=None, rss_kib=None):
        self.error_class = libvirt_error
        self.rss_kib = rss_kib
        self.text = history_to_xml(history) if history else None
        self.metadata_error, self.write_error = metadata_error, write_error
        self.written = []

    def name(self):
        return 'web1'

    def UUIDString(self):  # noqa: N802 - libvirt's spelling
        return 'u-1'

    def info(self):
        return [1, 262144, 262144, 1, 0]  # 256 MiB

    def metadata(self, kind, uri, flags):
        if self.metadata_error:
            raise self.metadata_error
        if self.text is None:
            raise self.error_class('metadata not found', VIR_ERR_NO_DOMAIN_METADATA)
        return self.text

    def setMetadata(self, kind, xml, prefix, uri, flags):  # noqa: N802
        if self.write_error:
            raise self.write_error
        self.written.append(xml)
        self.text = xml

    def isActive(self):  # noqa: N802
        return True

    def isPersistent(self):  # noqa: N802
        return True

    def memoryStats(self):  # noqa: N802
        return {'rss': self.rss_kib} if self.rss_kib else {}

    def jobStats(self, flags=0):  # noqa: N802
        return {'memory_constant': 16384, 'memory_total': 256 * MIB, 'memory_page_size': 4096}


class Ctx:
    def __init__(self):
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)


@pytest.fixture
def measures(monkeypatch):
    """Make the measurement give ``result`` (set it in the returned list); records the calls."""
    calls, given = [], [DirtyRateResult('web1', 'measured', dirty_rate_bps=20.0 * MIB, vcpu_busy_share=0.05,
                                        measured_at=1.7e9)]

    def measure(doms, seconds):
        calls.append(([d.name() for d in doms], seconds))
        return DirtyRateReport(results=(given[0],), seconds=seconds, budget_s=seconds + 1.5, elapsed_s=1.2)
    monkeypatch.setattr(_strategy_run, 'measure_dirty_rates', measure)
    return types.SimpleNamespace(calls=calls, given=given)


def params(**given):
    return dict(option_defaults(), name='web1', dest='host-b', **given)


SHARED = ({'target': 'vda', 'path': '/var/lib/libvirt/images/web1.qcow2', 'action': 'keep (shared)'},)


def prepare(dom, ctx=None, storage=SHARED, **given):
    run = StrategyRun(ctx or Ctx())
    return run, run.prepare(dom, params(**given), 'host-b', storage, 135)


class TestEarlySample:
    def test_the_sample_started_early_is_the_one_prepare_uses(self, libvirt_error, measures):
        ctx, dom = Ctx(), FakeDom(libvirt_error)
        run = StrategyRun(ctx)
        run.start_measuring(dom, params(bandwidth=100))
        options = run.prepare(dom, params(bandwidth=100), 'host-b', SHARED, 135)
        assert measures.calls == [(['web1'], 1)] and run.report()['decision']['known'] is True
        assert options['name'] == 'web1' and ctx.warnings == []

    @pytest.mark.parametrize('given', [{'strategy': 'adaptive', 'bandwidth': 10}, {'mode': 'paused', 'bandwidth': 10},
                                       {'copy_storage': 'all', 'bandwidth': 10}, {}])
    def test_nothing_is_started_when_prepare_would_not_measure(self, libvirt_error, measures, given):
        # {}: no cap and no history, so no bandwidth: nothing to predict with
        run = StrategyRun(Ctx())
        run.start_measuring(FakeDom(libvirt_error), params(**given))
        assert run._early is None and measures.calls == []

    def test_the_history_is_read_once(self, libvirt_error, measures):
        ctx, dom = Ctx(), FakeDom(libvirt_error, metadata_error=libvirt_error('connection reset', 38))
        run = StrategyRun(ctx)
        run.start_measuring(dom, params(bandwidth=100))
        run.prepare(dom, params(bandwidth=100), 'host-b', SHARED, 135)
        assert len([w for w in ctx.warnings if 'history' in w]) == 1


class TestBeforeTheJob:
    def test_refuses_before_anything_moves_with_what_would_work(self, libvirt_error, measures):
        with pytest.raises(MigrationError) as err:
            prepare(FakeDom(libvirt_error), bandwidth=10, auto_converge=False)
        assert 'nothing was started' in err.value.msg and 'allow_postcopy: true' in err.value.remedy
        details = err.value.details
        assert details['decision']['refused'] is True and details['strategy']['started'] is None
        # the refusal was confirmed by a sample three times as long (the same rate: no working set seen)
        assert details['dirty_rate']['elapsed_s'] == 2.4 and measures.calls == [(['web1'], 1), (['web1'], 3)]
        assert details['prediction']['working_set_source'] == 'assumed'

    def test_a_longer_sample_that_shows_a_small_working_set_lifts_the_refusal(self, libvirt_error, monkeypatch):
        """12 MiB/s over 1 s, 3 MiB/s over 3 s: the writer fills a 12 MiB set, not the whole memory,
        and pre-copy converges within 2 s of downtime; on the first sample alone it was refused."""
        calls = []

        def measure(doms, seconds):
            calls.append(seconds)
            rate = {1: 12, 3: 3}[seconds] * MIB
            result = DirtyRateResult('web1', 'measured', dirty_rate_bps=rate, calc_period_s=seconds, vcpu_busy_share=0.05)
            return DirtyRateReport(results=(result,), seconds=seconds, budget_s=seconds + 1.5, elapsed_s=seconds + 0.2)
        monkeypatch.setattr(_strategy_run, 'measure_dirty_rates', measure)
        run, options = prepare(FakeDom(libvirt_error), bandwidth=10, auto_converge=False, max_downtime=2000)
        report = run.report()
        assert calls == [1, 3] and report['strategy']['started'] == 'precopy_steps'
        assert (report['prediction']['working_set_source'], report['prediction']['working_set_bytes']) == \
            ('measured', 12 * MIB)
        assert report['dirty_rate']['results'][0]['samples'] == [[1, 12 * MIB], [3, 3 * MIB]]
        assert run.course(135).load.working_set_bytes == 12 * MIB  # the course check keeps the measured set

    def test_a_guest_that_is_not_refused_is_sampled_once(self, libvirt_error, measures):
        prepare(FakeDom(libvirt_error), bandwidth=100)
        assert measures.calls == [(['web1'], 1)]

    def test_try_anyway_starts_the_adaptive_policy(self, libvirt_error, measures):
        run, options = prepare(FakeDom(libvirt_error), bandwidth=10, auto_converge=False, try_anyway=True)
        assert options['auto_converge'] is False and run.report()['strategy']['started'] == 'adaptive'
        assert run.course(135) is None

    def test_postcopy_chosen_and_started_with_the_operators_rule(self, libvirt_error, measures):
        run, options = prepare(FakeDom(libvirt_error), bandwidth=10, auto_converge=False, allow_postcopy=True,
                               dirty_rate_seconds=2)
        assert options['allow_postcopy'] is True and run.choice.strategy == 'postcopy'
        report = run.report()
        assert set(report) == {'strategy', 'prediction', 'decision', 'dirty_rate'}
        assert report['prediction']['dirty_rate_source'] == 'measured'
        assert report['prediction']['bandwidth_source'] == 'bandwidth cap'
        assert measures.calls == [(['web1'], 2)]
        assert run.course(135) is None  # the engine's own post-copy rule drives it

    def test_an_idle_guest_goes_with_precopy_under_a_course_check(self, libvirt_error, measures):
        measures.given[0] = DirtyRateResult('web1', 'measured', dirty_rate_bps=0.5 * MIB, vcpu_busy_share=0.01)
        run, options = prepare(FakeDom(libvirt_error), bandwidth=10, allow_postcopy=True)
        assert run.choice.strategy == 'precopy_steps' and options['policy'] == {'postcopy_start': 'when_stalled'}
        check = run.course(200)
        assert isinstance(check, CourseCheck) and check.limits.timeout_s == 200
        assert check.strategy == 'auto_converge'  # AUTO_CONVERGE stays set

    def test_history_gives_the_bandwidth_when_nothing_caps_it(self, libvirt_error, measures):
        history = (HistoryEntry(at='2026-12-05T10:00:00Z', strategy='precopy_steps', throughput_bps=40.0 * MIB),
                   HistoryEntry(at='2026-12-04T10:00:00Z', strategy='postcopy', throughput_bps=10.0 * MIB,
                                bandwidth_cap_bps=10.0 * MIB))
        run, dummy = prepare(FakeDom(libvirt_error, history=history))
        prediction = run.report()['prediction']
        assert (prediction['bandwidth_bps'], prediction['bandwidth_source']) == (40 * MIB, 'history')

    def test_without_bandwidth_there_is_no_prediction_and_nothing_is_measured(self, libvirt_error, measures):
        run, options = prepare(FakeDom(libvirt_error), allow_postcopy=True)
        assert run.choice.strategy == 'adaptive' and run.choice.note.startswith('no bandwidth known')
        assert options == params(allow_postcopy=True)  # as given: the adaptive policy
        assert measures.calls == [] and 'dirty_rate' not in run.report()
        assert run.report()['decision']['known'] is False and run.course(135) is None

    def test_an_unreadable_history_and_an_unmeasured_guest_are_warnings(self, libvirt_error, measures):
        ctx = Ctx()
        measures.given[0] = DirtyRateResult('web1', 'timeout', message='no result within 3 s')
        run, dummy = prepare(FakeDom(libvirt_error, metadata_error=libvirt_error('connection reset', 38)), ctx,
                             bandwidth=10)
        assert len(ctx.warnings) == 2
        assert ctx.warnings[0].startswith('The migration history of web1 could not be read')
        assert ctx.warnings[1] == 'The dirty rate of web1 was not measured (timeout): no result within 3 s'
        assert run.choice.strategy == 'adaptive' and run.report()['decision']['known'] is False

    def test_a_paused_guest_is_predicted_without_a_warning(self, libvirt_error, measures):
        ctx = Ctx()
        measures.given[0] = DirtyRateResult('web1', 'paused', message='paused: a paused guest dirties nothing')
        run, dummy = prepare(FakeDom(libvirt_error), ctx, bandwidth=10)
        assert ctx.warnings == []
        assert run.report()['decision']['known'] is True and run.choice.prediction.dirty_rate_bps == 0.0

    def test_a_storage_copy_is_not_predicted(self, libvirt_error, measures):
        copy = [{'target': 'vda', 'path': '/var/lib/libvirt/local/web1.qcow2', 'action': 'copy (all)'}]
        run, dummy = prepare(FakeDom(libvirt_error), storage=copy, bandwidth=10)
        assert measures.calls == [] and 'storage copy' in run.choice.note
        assert run.report() == {'strategy': {'requested': 'auto', 'started': 'adaptive', 'note': run.choice.note}}

    @pytest.mark.parametrize('given,note', [({'mode': 'paused'}, 'mode=paused: nothing to predict'),
                                            ({'strategy': 'adaptive'}, None)])
    def test_nothing_is_measured_outside_live_auto(self, libvirt_error, measures, given, note):
        run, dummy = prepare(FakeDom(libvirt_error), **given)
        assert measures.calls == [] and run.choice.note == note and run.course(135) is None


def job(samples, postcopy_started=False):
    return types.SimpleNamespace(samples=samples, postcopy_started=postcopy_started)


def sides(dom, running_on):
    conn = types.SimpleNamespace(lookupByUUIDString=lambda uuid: dom)
    outcome = types.SimpleNamespace(location=types.SimpleNamespace(running_on=running_on))
    return types.SimpleNamespace(src_host='host-a', dst_host='host-b', src_conn=conn, dst_conn=conn), outcome


STATS = {'total_time_ms': 30000, 'downtime_ms': 40, 'passes': 3, 'throughput_bps': 10 * MIB,
         'dirty_rate_bps': 20 * MIB}
SAMPLES = [{'pass': 1, 'remaining': 250 * MIB, 'throttle': 0}, {'pass': 2, 'remaining': 96 * MIB, 'throttle': 0}]


class TestAfterTheJob:
    def test_records_the_figures_where_the_guest_runs_now(self, libvirt_error, measures):
        dom = FakeDom(libvirt_error, rss_kib=100 * 1024)
        run, dummy = prepare(dom, bandwidth=10, auto_converge=False, allow_postcopy=True)
        where, outcome = sides(dom, ['host-b'])
        result = run.after_job(where, 'u-1', outcome, job(SAMPLES, postcopy_started=True), STATS,
                               params(bandwidth=10))
        assert result['history']['recorded_on'] == 'host-b' and result['history']['entries'] == 1
        entry = history_from_xml(dom.text)[0]
        assert (entry.strategy, entry.completed, entry.dirty_set_bytes) == ('postcopy', True, 96 * MIB)
        assert (entry.bandwidth_cap_bps, entry.zero_page_share) == (10 * MIB, 0.25)
        # What is resident where the guest runs now: the next prediction ages the zero-page count by it.
        assert entry.resident_bytes == 100 * MIB
        assert 'course' not in result  # post-copy ran under the engine's own rule

    def test_a_failed_attempt_is_recorded_on_the_source(self, libvirt_error, measures):
        dom = FakeDom(libvirt_error)
        run = StrategyRun(Ctx())
        where, outcome = sides(dom, ['host-a'])
        result = run.after_job(where, 'u-1', outcome, job(SAMPLES), STATS, params())
        entry = history_from_xml(dom.text)[0]
        assert (result['history']['recorded_on'], entry.completed, entry.strategy) == ('host-a', False, 'precopy_steps')
        assert entry.zero_page_share is None  # the completed job is the destination's

    def test_a_refused_write_is_a_warning(self, libvirt_error, measures):
        ctx = Ctx()
        dom = FakeDom(libvirt_error, write_error=libvirt_error('read-only', 55))
        where, outcome = sides(dom, ['host-b'])
        result = StrategyRun(ctx).after_job(where, 'u-1', outcome, job(SAMPLES), STATS, params())
        assert result['history']['recorded_on'] is None and 'read-only' in result['history']['error']
        assert ctx.warnings and 'not recorded in the history of the guest on host-b' in ctx.warnings[0]

    def test_nothing_is_written_when_the_guest_is_not_on_one_host(self, libvirt_error, measures):
        dom = FakeDom(libvirt_error)
        where, outcome = sides(dom, [])
        assert StrategyRun(Ctx()).after_job(where, 'u-1', outcome, job(SAMPLES), STATS, params()) == {}
        assert dom.written == []

    def test_the_course_checks_are_reported(self, libvirt_error, measures):
        measures.given[0] = DirtyRateResult('web1', 'measured', dirty_rate_bps=0.5 * MIB)
        dom = FakeDom(libvirt_error)
        run, dummy = prepare(dom, bandwidth=10)
        run.course(135).records.append({'pass': 2, 'action': None})
        where, outcome = sides(dom, ['host-b'])
        assert run.after_job(where, 'u-1', outcome, job(SAMPLES), STATS, params())['course'] == [
            {'pass': 2, 'action': None}]
