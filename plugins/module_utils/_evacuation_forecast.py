# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_evacuate's forecast: before anything moves, the expected maintenance window, the guests in
the order they will start, which need auto-converge or post-copy and which cannot move live
(client glue around ``_prediction_plan``; private module_utils).

The guests that leave running are measured at once on the source (``_dirtyrate``,
``dirty_rate_seconds`` of the migrate options), each with its history from its domain XML; those
whose history gives no working set are sampled again for three times as long, at once, to see it
(``_dirtyrate.probe_working_sets``: the forecast's measuring takes 4 s, not 1).  The
source's uplink is the fastest bandwidth a preflight measured to a destination (O(preflight) results
or O(run_preflight) with ``measure_bandwidth``), else the fastest an earlier migration of these guests
achieved without a cap, else the ``bandwidth`` cap times the migrations allowed at once, else
unknown: then nothing is measured and the forecast only lists the guests (``unknown``), in the
plan's order.
Guests that move cold (shut off) are not forecast.

:func:`start_order` is the order the runner starts the moves in: the forecast's (longest first),
then the guests without a prediction and those moving cold (in the plan's order), then the guests
that cannot move live within the limits (tried last: each migration decides again with its own
measurement).
"""

from __future__ import annotations

from ansible_collections.kvmops.migration.plugins.module_utils._errors import is_libvirt_error
from ansible_collections.kvmops.migration.plugins.module_utils._convergence import MIB
from ansible_collections.kvmops.migration.plugins.module_utils._dirtyrate import (
    measure_dirty_rates,
    probe_working_sets,
    resident_bytes,
)
from ansible_collections.kvmops.migration.plugins.module_utils._migration_history import history_from_domain_xml
from ansible_collections.kvmops.migration.plugins.module_utils._migration_spec import default_timeout_s
from ansible_collections.kvmops.migration.plugins.module_utils._prediction_inputs import (
    JOB_SETUP_S,
    GuestLoad,
    MigrationPath,
    PredictionInputError,
    limits_from_options,
    working_set_unknown,
)
from ansible_collections.kvmops.migration.plugins.module_utils._prediction_plan import GuestToMove, plan_evacuation
from ansible_collections.kvmops.migration.plugins.module_utils._strategy import AUTO, decide, guest_load, rounded

# The fixed cost of one migration of an evacuation besides moving memory: the job's own fixed part
# (JOB_SETUP_S), the dirty-rate sample of strategy: auto (1 s; the destination's connection is
# lent by the evacuation, so only the checks overlap it) and the checks and the outcome check on
# both hosts (about 0.1 s: the module's timings on the lab, issue 20's breakdown).  Lab-calibrated;
# to be checked against the benchmark's quiet run (its drain's forecast window against the
# measured one).
MIGRATION_SETUP_S = JOB_SETUP_S + 1.1


def uplink_bandwidth(preflight_results, histories, cap_bps, max_concurrent):
    """(bytes/s or None, source) of the source's uplink for the forecast (module docstring)."""
    measured = [result['bandwidth']['mib_s'] * MIB for result in preflight_results or ()
                if isinstance(result.get('bandwidth'), dict) and result['bandwidth'].get('mib_s')]
    if measured:
        return max(measured), 'measured by the preflight'
    achieved = [entry.throughput_bps for history in histories for entry in history
                if entry.throughput_bps and entry.bandwidth_cap_bps is None]
    if achieved:
        return max(achieved), 'history (the fastest uncapped migration of these guests)'
    if cap_bps:
        return cap_bps * max_concurrent, 'bandwidth cap x max_per_source'
    return None, 'unknown'


def _measure(conn, guests, seconds, histories):
    """({name: DirtyRateResult}, {name: QEMU's resident bytes}, DirtyRateReport) of the running guests
    (a guest that cannot be looked up is left out).  The guests whose history gives no working set
    are sampled a second time, longer, all at once (``probe_working_sets``): without it a busy
    guest's whole memory is taken as dirty and the window comes out far too long (the benchmark's
    drain: 152 s forecast for 87 s)."""
    doms, memory = [], {}
    for facts in guests:
        try:
            doms.append(conn.lookupByUUIDString(facts.uuid))
        except Exception as exc:  # pylint: disable=broad-except
            if not is_libvirt_error(exc):
                raise
            continue
        memory[doms[-1].name()] = facts.memory
    if not doms:
        return {}, {}, None
    resident = dict((dom.name(), resident_bytes(dom)) for dom in doms)
    report = measure_dirty_rates(doms, seconds=seconds)
    unknown = [dom for dom in doms
               if working_set_unknown(GuestLoad(memory_bytes=memory[dom.name()], history=histories.get(dom.name(), ())))]
    report = probe_working_sets(unknown, report, measure=measure_dirty_rates)
    return dict((result.name, result) for result in report.results), resident, report


def forecast_evacuation(conn, leaving, assignments, migrate_options, preflight_results=(), max_concurrent=2,
                        max_per_destination=None):
    """The forecast (a JSON-friendly dict) of moving ``leaving`` (``GuestFacts`` of the guests the
    plan moves, from the host of ``conn``) to the destinations of ``assignments`` (the plan's),
    under ``migrate_options`` (virt_migrate's options as every migration gets them)."""
    running = [facts for facts in leaving if facts.running]
    histories = dict((facts.name, history_from_domain_xml(facts.xml)) for facts in running)
    cap = (migrate_options.get('bandwidth') or 0) * MIB or None
    uplink_bps, source = uplink_bandwidth(preflight_results, histories.values(), cap, max_concurrent)
    measured, resident, report = {}, {}, None
    if uplink_bps is not None:  # without it nothing can be predicted: no point in measuring
        measured, resident, report = _measure(conn, running, migrate_options.get('dirty_rate_seconds') or 1, histories)
    destination = dict((assignment.guest, assignment.destination) for assignment in assignments)
    # The zero pages as virt_migrate estimates them (its RSS floor and the history): without them every
    # guest's whole memory would be forecast as sent, a window far longer than the drain's.
    guests = [GuestToMove(name=facts.name, destination=destination.get(facts.name),
                          load=guest_load(facts.memory, measured.get(facts.name), histories[facts.name],
                                          resident_bytes=resident.get(facts.name)),
                          timeout_s=migrate_options.get('timeout') or default_timeout_s(facts.memory))
              for facts in running]
    try:
        forecast = plan_evacuation(guests, MigrationPath(bandwidth_bps=uplink_bps, setup_s=MIGRATION_SETUP_S),
                                   limits_from_options(migrate_options), max_concurrent=max_concurrent,
                                   max_per_destination=max_per_destination, choose=_as_auto_decides)
    except PredictionInputError as exc:
        return {'error': 'no forecast: %s' % exc, 'order': [], 'not_forecast': [f.name for f in leaving]}
    view = rounded(forecast.as_dict())
    view.update(uplink_bps=uplink_bps, uplink_source=source,
                not_forecast=[facts.name for facts in leaving if not facts.running],
                dirty_rate=report.as_dict() if report is not None else None)
    return view


def _as_auto_decides(prediction, limits):
    """Each migration's decision as virt_migrate's strategy: auto makes it (its timeout margin)."""
    return decide(AUTO, prediction, limits)


def start_order(forecast, names):
    """``names`` (the plan's guests) in the order to start them (module docstring)."""
    groups = forecast.get('groups', {})
    unknown, refused = set(groups.get('unknown', [])), set(groups.get('refused', []))
    ahead = [name for name in forecast.get('order', []) if name in names and name not in unknown]
    rest = [name for name in names if name not in ahead and name not in refused]
    return ahead + rest + [name for name in names if name in refused]


def forecast_plan(conn, plan, leaving, migrate_options, preflight_results=(), max_concurrent=2,
                  max_per_destination=None, log=None):
    """Forecast ``plan`` (a ``_placement.Plan`` of an evacuation) and reorder its assignments to
    start as the forecast says; returns the forecast.  A forecast is advice: when it cannot be
    made the evacuation goes on in the plan's order, the forecast says why (``error``)."""
    by_name = dict((facts.name, facts) for facts in leaving)
    try:
        forecast = forecast_evacuation(conn, [by_name[a.guest] for a in plan.assignments if a.guest in by_name],
                                       plan.assignments, migrate_options, preflight_results, max_concurrent,
                                       max_per_destination)
    except Exception as exc:  # pylint: disable=broad-except
        forecast = {'error': 'no forecast: %s' % exc, 'order': []}
    order = start_order(forecast, [assignment.guest for assignment in plan.assignments])
    plan.assignments.sort(key=lambda assignment: order.index(assignment.guest))
    if log is not None:
        log('forecast: %s' % (forecast.get('sentence') or forecast.get('error')))
    return forecast
