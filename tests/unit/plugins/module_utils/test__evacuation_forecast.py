# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_evacuate's forecast: where the uplink comes from, the start order, the forecast of the
guests that leave (with a stand-in dirty-rate measurement), and the evacuation's check mode."""

from __future__ import annotations

import types

from ansible_collections.kvmops.migration.plugins.module_utils import _evacuation_forecast
from ansible_collections.kvmops.migration.plugins.module_utils._dirtyrate import DirtyRateReport, DirtyRateResult
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_manager import Evacuation
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_forecast import (
    forecast_evacuation,
    forecast_plan,
    start_order,
    uplink_bandwidth,
)
from ansible_collections.kvmops.migration.plugins.module_utils._migration_history import HistoryEntry, history_to_xml
from ansible_collections.kvmops.migration.plugins.module_utils._migration_spec import option_defaults
from ansible_collections.kvmops.migration.plugins.module_utils._placement import Assignment, Plan
from ansible_collections.kvmops.migration.tests.unit.plugins.module_utils.test__evacuation_manager import (  # noqa: F401 pylint: disable=unused-import
    lab,
    run,
)

MIB = 1 << 20
# Dirty rates the stand-in measurement gives (MiB/s); a guest not listed is not measured.
RATES = {'busy': 20, 'web1': 0.2, 'web2': 0.5, 'db1': 3}


def facts(name, memory_mib=256, running=True, history=()):
    metadata = ''
    if history:
        metadata = ('<metadata><kvmopshist:history xmlns:kvmopshist="https://kvmops.io/migration/history/1">%s'
                    '</kvmopshist:history></metadata>' % history_to_xml(history)[len('<history>'):-len('</history>')])
    xml = "<domain><name>%s</name><uuid>uuid-%s</uuid>%s</domain>" % (name, name, metadata)
    return types.SimpleNamespace(name=name, uuid='uuid-' + name, memory=memory_mib * MIB, running=running, xml=xml)


class Conn:
    """``rss``: {guest: QEMU's resident memory, KiB} as libvirt's memory stats give it (none: unknown)."""

    def __init__(self, rss=None):
        self.rss = rss or {}

    def lookupByUUIDString(self, uuid):  # noqa: N802 - libvirt's spelling
        name = uuid[len('uuid-'):]
        stats = {'rss': self.rss[name]} if name in self.rss else {}
        return types.SimpleNamespace(name=lambda: name, memoryStats=lambda: stats)


def stand_in(monkeypatch):
    measured = []

    def measure(doms, seconds):
        measured.append(([d.name() for d in doms], seconds))
        results = tuple(DirtyRateResult(d.name(), 'measured', dirty_rate_bps=RATES[d.name()] * MIB, vcpu_busy_share=0.05)
                        if d.name() in RATES else DirtyRateResult(d.name(), 'timeout') for d in doms)
        return DirtyRateReport(results=results, seconds=seconds, budget_s=seconds + 1.5, elapsed_s=1.2)
    monkeypatch.setattr(_evacuation_forecast, 'measure_dirty_rates', measure)
    return measured


def options(**given):
    return dict(option_defaults(), **given)


class TestUplink:
    def test_a_preflight_measurement_comes_first(self):
        results = [{'bandwidth': {'mib_s': 80.0}}, {'bandwidth': {'mib_s': 120.0}}, {'bandwidth': None}, {}]
        assert uplink_bandwidth(results, [], 10 * MIB, 2) == (120 * MIB, 'measured by the preflight')

    def test_then_the_fastest_uncapped_migration(self):
        histories = [(HistoryEntry(at='x', strategy='precopy', throughput_bps=50.0 * MIB),),
                     (HistoryEntry(at='x', strategy='precopy', throughput_bps=90.0 * MIB, bandwidth_cap_bps=90.0 * MIB),
                      HistoryEntry(at='x', strategy='precopy', throughput_bps=70.0 * MIB))]
        assert uplink_bandwidth([], histories, None, 2)[0] == 70 * MIB

    def test_then_the_cap_for_each_slot(self):
        assert uplink_bandwidth([], [], 10 * MIB, 3) == (30 * MIB, 'bandwidth cap x max_per_source')
        assert uplink_bandwidth([], [], None, 3) == (None, 'unknown')


def test_start_order_is_the_forecasts_then_the_rest_then_the_refused():
    forecast = {'order': ['db1', 'web1', 'new1', 'gone'], 'groups': {'refused': ['busy'], 'unknown': ['new1']}}
    assert start_order(forecast, ['web1', 'busy', 'new1', 'cold1', 'db1']) == ['db1', 'web1', 'new1', 'cold1', 'busy']
    assert start_order({'error': 'no forecast'}, ['b', 'a']) == ['b', 'a']


class TestForecast:
    def test_groups_order_and_window_before_anything_moves(self, monkeypatch):
        measured = stand_in(monkeypatch)
        leaving = [facts('web1'), facts('busy'), facts('db1', 1024), facts('cold1', running=False)]
        assignments = [Assignment(f.name, 'host-a', 'host-b') for f in leaving]
        forecast = forecast_evacuation(Conn(), leaving, assignments, options(bandwidth=10, auto_converge=False),
                                       max_concurrent=2, max_per_destination=2)
        # no history gives their working sets: all three sampled again, three times as long
        assert measured == [(['web1', 'busy', 'db1'], 1), (['web1', 'busy', 'db1'], 3)]
        assert forecast['groups']['refused'] == ['busy'] and forecast['not_forecast'] == ['cold1']
        assert forecast['order'] == ['db1', 'web1']  # longest first, the refused one not scheduled
        assert forecast['uplink_source'] == 'bandwidth cap x max_per_source' and forecast['uplink_bps'] == 20 * MIB
        assert forecast['window_s'] > 1024 / 10.0 and forecast['dirty_rate']['elapsed_s'] == 2.4
        assert 'busy cannot move live within the limits' in forecast['sentence']
        busy = next(move for move in forecast['moves'] if move['name'] == 'busy')
        assert busy['decision']['refused'] is True and busy['destination'] == 'host-b'

    def test_postcopy_allowed_moves_the_busy_guest_first(self, monkeypatch):
        stand_in(monkeypatch)
        leaving = [facts('web1'), facts('busy')]
        limits = options(bandwidth=10, auto_converge=False, allow_postcopy=True)
        forecast = forecast_evacuation(Conn(), leaving, [], limits)
        assert forecast['groups']['postcopy'] == ['busy'] and forecast['order'][0] == 'busy'

    def test_history_gives_the_uplink_and_an_unmeasured_guests_rate(self, monkeypatch):
        stand_in(monkeypatch)
        history = (HistoryEntry(at='2026-12-05T10:00:00Z', strategy='precopy_steps', throughput_bps=100.0 * MIB,
                                dirty_rate_bps=MIB),)
        forecast = forecast_evacuation(Conn(), [facts('quiet', history=history)], [], options())
        assert forecast['uplink_bps'] == 100 * MIB and forecast['groups']['precopy'] == ['quiet']
        assert forecast['moves'][0]['prediction']['dirty_rate_source'] == 'history'

    def test_memory_a_guest_never_touched_is_not_forecast_as_sent(self, monkeypatch):
        """The zero pages, as virt_migrate estimates them: QEMU's resident memory is a floor of what
        the first pass sends. A 1 GiB guest with 256 MiB resident moves in about a quarter of the
        time of its whole memory (the drain's forecast was 63 % over its window without this)."""
        stand_in(monkeypatch)
        leaving = [facts('web1', 1024)]
        whole = forecast_evacuation(Conn(), leaving, [], options(bandwidth=10))
        touched = forecast_evacuation(Conn(rss={'web1': 256 * 1024}), leaving, [], options(bandwidth=10))
        assert whole['moves'][0]['prediction']['zero_page_share'] == 0.0
        assert touched['moves'][0]['prediction']['zero_page_share'] == 0.75
        assert touched['window_s'] < 0.4 * whole['window_s'], (touched['window_s'], whole['window_s'])

    def test_a_longer_sample_shows_a_busy_guests_working_set(self, monkeypatch):
        """The drain's busy guests have no history: a 64 MiB/s writer in a 96 MiB set reads 64 MiB/s
        in 1 s and 32 MiB/s over 3 s, so its set is 96 MiB, not the whole memory, and its move is
        forecast far shorter (the benchmark's drain was forecast at 152 s for 87 s without this)."""
        calls = []

        def measure(doms, seconds):
            calls.append(([d.name() for d in doms], seconds))
            rate = {1: 64, 3: 32}[seconds] * MIB
            return DirtyRateReport(results=tuple(DirtyRateResult(d.name(), 'measured', dirty_rate_bps=rate,
                                                                 calc_period_s=seconds, vcpu_busy_share=1.0)
                                                 for d in doms), seconds=seconds, budget_s=seconds + 1.5,
                                   elapsed_s=seconds + 0.2)
        monkeypatch.setattr(_evacuation_forecast, 'measure_dirty_rates', measure)
        # 'known' has a migration that saw its set saturate: 4 passes of 6.4 s each could have
        # dirtied 410 MiB at 64 MiB/s and left 96 MiB
        known = (HistoryEntry(at='2026-12-05T10:00:00Z', strategy='auto_converge', dirty_rate_bps=64.0 * MIB,
                              dirty_set_bytes=96 * MIB, duration_s=26.6, passes=4),)
        leaving = [facts('busy', 256), facts('known', 256, history=known)]
        forecast = forecast_evacuation(Conn(), leaving, [], options(bandwidth=40))
        assert calls == [(['busy', 'known'], 1), (['busy'], 3)]
        busy, other = [next(m['prediction'] for m in forecast['moves'] if m['name'] == n) for n in ('busy', 'known')]
        assert (busy['working_set_source'], busy['working_set_bytes']) == ('measured', 96 * MIB)
        assert busy['dirty_rate_bps'] == 64 * MIB
        assert other['working_set_source'] == 'history'
        assert forecast['dirty_rate']['probe_seconds'] == 3 and forecast['dirty_rate']['elapsed_s'] == 4.4

    def test_forecast_plan_reorders_the_moves_and_logs_the_sentence(self, monkeypatch):
        stand_in(monkeypatch)
        leaving = [facts('web1'), facts('web2'), facts('db1', 1024)]
        plan = Plan(assignments=[Assignment(f.name, 'host-a', 'host-b') for f in leaving])
        lines = []
        forecast = forecast_plan(Conn(), plan, leaving, options(bandwidth=50), log=lines.append)
        # The longest first: db1 (1 GiB), then web2, which dirties more than web1.
        assert [a.guest for a in plan.assignments] == forecast['order'] == ['db1', 'web2', 'web1']
        assert lines == ['forecast: %s' % forecast['sentence']]

    def test_no_forecast_leaves_the_plan_as_it_was(self, monkeypatch):
        def broken(doms, seconds):
            raise RuntimeError('libvirt went away')
        monkeypatch.setattr(_evacuation_forecast, 'measure_dirty_rates', broken)
        leaving = [facts('web2'), facts('web1')]
        plan = Plan(assignments=[Assignment(f.name, 'host-a', 'host-b') for f in leaving])
        lines = []
        forecast = forecast_plan(Conn(), plan, leaving, options(bandwidth=10), log=lines.append)
        assert forecast['error'] == 'no forecast: libvirt went away' and lines == ['forecast: no forecast: libvirt went away']
        assert [a.guest for a in plan.assignments] == ['web2', 'web1']


def test_the_evacuation_plan_in_check_mode_carries_the_forecast(lab, tmp_path, monkeypatch):  # noqa: F811
    stand_in(monkeypatch)
    for name in ('web1', 'db1', 'web2'):
        lab['host-a'].add(name)
    result = run(tmp_path, check_mode=True, action='evacuate', hosts=['host-b', 'host-c'],
                 migrate_options={'bandwidth': 20})
    forecast = result['forecast']
    assert sorted(forecast['order']) == ['db1', 'web1', 'web2'] and forecast['window_s'] > 0
    assert [row['guest'] for row in result['table'] if row['result'] == 'planned'] == forecast['order']
    assert [a['guest'] for a in result['plan']['assignments']] == forecast['order']
    assert any('forecast: 3 guests move live in about' in line for line in result['progress'])


def test_without_an_uplink_nothing_is_measured_and_the_plan_order_stays(monkeypatch):
    measured = stand_in(monkeypatch)
    leaving = [facts('web2'), facts('web1')]
    plan = Plan(assignments=[Assignment(f.name, 'host-a', 'host-b') for f in leaving])
    forecast = forecast_plan(Conn(), plan, leaving, options())
    assert measured == [] and forecast['uplink_source'] == 'unknown' and forecast['dirty_rate'] is None
    assert forecast['groups']['unknown'] == ['web1', 'web2'] and forecast['window_is_lower_bound'] is True
    assert [a.guest for a in plan.assignments] == ['web2', 'web1']


def test_a_cold_move_drops_the_live_strategy_a_live_one_keeps_it():
    evacuation = Evacuation(types.SimpleNamespace(params={'migrate_options': {'strategy': 'precopy'}}, check_mode=True))
    cold, mode = evacuation.options_for(types.SimpleNamespace(persistent=True, running=False), [])
    assert mode == 'cold' and 'strategy' not in cold
    live, mode = evacuation.options_for(types.SimpleNamespace(persistent=True, running=True), [])
    assert mode == 'live' and live['strategy'] == 'precopy'
