# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_migrate's ``strategy`` for one run, on libvirt (client glue; private module_utils).

Before the job: the guest's history (``_migration_history.read_history``; a failure to read it is
a warning), its dirty rate (``_dirtyrate.measure_dirty_rates``, ``dirty_rate_seconds``), the
prediction and the decision (``_strategy``), and the refusal when nothing allowed meets the
limits, confirmed first by a sample three times as long (``probe_working_sets``: a refusal on one
noisy second would stop a migration that meets the limits).  During the job: the course check the engine consults at pass ends (``_course``).  After
the outcome check: the job's figures recorded in the guest's history on the host where it now
runs (a failure is a warning: the guest has moved by then, or stayed where it was).

The bandwidth is what earlier uncapped migrations achieved, else the ``bandwidth`` cap; neither:
no prediction (and no measurement, which could not change that), and ``auto`` runs the adaptive
policy; the job's figures then go into the history for the next time (virt_migrate ships no
bandwidth probe: that needs the preflight's SSH helper on the destination).  A live migration that copies disks
is not predicted either: the model covers memory only.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError, KvmopsError, translated
from ansible_collections.kvmops.migration.plugins.module_utils._convergence import MIB
from ansible_collections.kvmops.migration.plugins.module_utils._course import CourseCheck
from ansible_collections.kvmops.migration.plugins.module_utils._dirtyrate import (
    measure_dirty_rates,
    measured_rate,
    probe_working_sets,
    resident_bytes,
)
from ansible_collections.kvmops.migration.plugins.module_utils._migration import completed_stats
from ansible_collections.kvmops.migration.plugins.module_utils._migration_history import read_history, record_migration
from ansible_collections.kvmops.migration.plugins.module_utils._prediction import predict
from ansible_collections.kvmops.migration.plugins.module_utils._prediction_inputs import (
    JOB_SETUP_S,
    MigrationPath,
    PredictionInputError,
    limits_from_options,
    resolve_bandwidth,
)
from ansible_collections.kvmops.migration.plugins.module_utils._strategy import (
    ADAPTIVE,
    AUTO,
    choice_for,
    guest_load,
    history_entry,
    refusal,
    strategy_ran,
)

# Working-set figures the course check keeps from the start prediction (an assumed one is the
# whole memory: the job's own dirty sets tell more; a measured one was seen saturating).
KEPT_WORKING_SET_SOURCES = ('history', 'given', 'measured')
NO_BANDWIDTH = ('no bandwidth known (no bandwidth cap, no uncapped migration in the guest\'s history), so no '
                'prediction and nothing measured: the adaptive policy decides pass by pass, and this migration\'s '
                'figures are recorded for the next one')


class StrategyRun:
    """The strategy of one virt_migrate run.  ``ctx``: the manager context (its ``warn``).
    ``choice``: the ``_strategy.StrategyChoice`` once :meth:`prepare` ran; ``check``: the
    CourseCheck given to the engine, if any."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.choice = None
        self.check = None
        self._histories = {}  # UUID -> history, read once per run
        self._early = None  # (UUID, thread, [report]) of a sample started by start_measuring

    # -- as early as the guest is known ------------------------------------------
    def start_measuring(self, dom, params):
        """Start the dirty-rate sample of ``dom`` now, in a thread, when :meth:`prepare` will want
        it (a live migration whose strategy is decided and whose bandwidth is known, no storage
        copy asked for): its second then passes while the destination's connection and the checks
        run (_fixed_cost).  The sample only reads the guest; unused, it costs nothing else."""
        if (params['mode'] != 'live' or (params.get('strategy') or AUTO) == ADAPTIVE
                or params.get('copy_storage') not in (None, 'none')):
            return
        cap = (params.get('bandwidth') or 0) * MIB or None
        if resolve_bandwidth(MigrationPath(bandwidth_bps=None), self._history(dom), cap)[0] is None:
            return
        box = []
        seconds = params['dirty_rate_seconds']
        thread = threading.Thread(target=lambda: box.append(measure_dirty_rates([dom], seconds=seconds)),
                                  name='kvmops-dirty-rate', daemon=True)
        thread.start()
        self._early = (dom.UUIDString(), thread, box)

    def _measured(self, dom, seconds):
        """The early sample of ``dom`` if one was started (waiting for its end), else one taken now."""
        if self._early is not None and self._early[0] == dom.UUIDString():
            dummy_uuid, thread, box = self._early
            self._early = None
            thread.join()
            if box:
                return box[0]
        return measure_dirty_rates([dom], seconds=seconds)

    # -- before the job --------------------------------------------------------
    def prepare(self, dom, params, dst_host, storage, timeout_s):
        """Measure, predict and decide for ``dom`` (the source virDomain) going to ``dst_host``;
        return virt_migrate's options that start the chosen strategy.  Raises the refusal
        (``MigrationError`` with what would work) when nothing allowed meets the limits, unless
        ``try_anyway``.  ``storage``: the manager's storage plan; ``timeout_s``: the timeout in force."""
        requested = params.get('strategy') or AUTO
        if params['mode'] != 'live' or requested == ADAPTIVE:
            note = None if requested == ADAPTIVE else 'mode=%s: nothing to predict' % params['mode']
            self.choice = choice_for(requested, params, note=note)
            return self.choice.options
        if any(disk['action'].startswith('copy') for disk in storage):
            self.choice = choice_for(requested, params, note=(
                'no prediction with a storage copy (the model covers memory only): the adaptive policy decides '
                'pass by pass'))
            return self.choice.options
        try:
            limits = limits_from_options(params, timeout_s)
        except PredictionInputError as exc:
            raise InvalidInputError(str(exc), remedy='Fix the options; nothing was changed.')
        history = self._history(dom)
        memory = dom.info()[2] * 1024
        if resolve_bandwidth(MigrationPath(bandwidth_bps=None), history, limits.bandwidth_cap_bps)[0] is None:
            self.choice = choice_for(requested, params, prediction=predict(guest_load(memory, None, history),
                                                                           MigrationPath(bandwidth_bps=None), limits),
                                     limits=limits, note=NO_BANDWIDTH)
            return self._checked(dom, dst_host, params)
        report = self._measured(dom, params['dirty_rate_seconds'])
        measured = report.result(dom.name())
        if measured is not None and measured.status not in ('measured', 'paused'):  # paused: dirties nothing
            self.ctx.warn('The dirty rate of %s was not measured (%s): %s' % (
                dom.name(), measured.status, measured.message or 'no reason given'))
        rss = resident_bytes(dom)
        self.choice = self._chosen(requested, params, limits, report, guest_load(memory, measured, history, rss))
        if self.choice.refused and measured_rate(report, dom.name()):
            # Before refusing, sample longer: the 1-s sample counts in 2 MiB steps (a 2 MiB/s writer
            # can read 8 MiB/s) and cannot see the working set; the longer one pools the rate or shows
            # the set saturated.  3 s more, only for a guest about to be refused.
            report = probe_working_sets([dom], report, measure=measure_dirty_rates)
            load = guest_load(memory, report.result(dom.name()), history, rss)
            self.choice = self._chosen(requested, params, limits, report, load)
        return self._checked(dom, dst_host, params)

    @staticmethod
    def _chosen(requested, params, limits, report, load):
        prediction = predict(load, MigrationPath(bandwidth_bps=None, setup_s=JOB_SETUP_S), limits)
        return choice_for(requested, params, prediction=prediction, limits=limits, load=load,
                          measurement=report.as_dict())

    def _checked(self, dom, dst_host, params):
        """The options of the choice made, or the refusal."""
        if self.choice.refused and not params['try_anyway']:
            raise refusal(dom.name(), dst_host, self.choice)
        return self.choice.options

    def history(self, dom):
        """The guest's migration history, newest first (read once per run; empty when unreadable)."""
        return self._history(dom)

    def _history(self, dom):
        uuid = dom.UUIDString()
        if uuid not in self._histories:
            try:
                self._histories[uuid] = read_history(dom)
            except KvmopsError as exc:
                self.ctx.warn('The migration history of %s could not be read (%s); predicting without it' % (
                    dom.name(), exc))
                self._histories[uuid] = ()
        return self._histories[uuid]

    def report(self):
        """Result keys for the run: ``strategy``, ``prediction``, ``decision``, ``dirty_rate``."""
        return self.choice.report() if self.choice is not None else {}

    # -- during the job ----------------------------------------------------------
    def course(self, timeout_s):
        """The engine's course check for a job with this completion timeout (None: no check)."""
        choice = self.choice
        if choice is None or choice.course_strategy is None:
            return None
        prediction = choice.prediction
        kept = prediction.working_set_bytes if prediction.working_set_source in KEPT_WORKING_SET_SOURCES else None
        self.check = CourseCheck(choice.load, replace(choice.limits, timeout_s=timeout_s), choice.course_strategy,
                                 bandwidth_bps=prediction.bandwidth_bps, working_set_bytes=kept)
        return self.check

    # -- after the outcome check --------------------------------------------------
    def after_job(self, sides, uuid, outcome, job, stats, params, guest_paused=False):
        """Record the job's figures in the guest's history where it runs now; result keys
        ``course`` (the course check's records) and ``history`` (where it was recorded, or why not)."""
        result = {}
        if self.check is not None:
            result['course'] = list(self.check.records)
        running_on = outcome.location.running_on
        if len(running_on) != 1:
            return result  # nowhere, or not known where: no definition to write to
        host = running_on[0]
        conn = sides.dst_conn if host == sides.dst_host else sides.src_conn
        moved = host == sides.dst_host
        chosen = self.choice.strategy if self.choice is not None else ADAPTIVE
        throttle = max([sample.get('throttle') or 0 for sample in job.samples] or [0])
        try:
            with translated("Looking up the domain on %s to record its migration history" % host):
                dom = conn.lookupByUUIDString(uuid)
            ran = strategy_ran(params['mode'], chosen, job.postcopy_started, throttle, guest_paused)
            entry = history_entry(stats, job.samples, ran,
                                  moved, cap_bps=(params.get('bandwidth') or 0) * MIB or None,
                                  completed_job=completed_stats(dom) if moved else None,
                                  resident_bytes=resident_bytes(dom))
            entries = record_migration(dom, entry)
        except KvmopsError as exc:
            self.ctx.warn('The figures of this migration were not recorded in the history of the guest on %s (%s); '
                          'the next prediction goes without them' % (host, exc))
            result['history'] = {'recorded_on': None, 'error': str(exc)}
            return result
        result['history'] = {'recorded_on': host, 'entries': len(entries), 'entry': entry.as_dict()}
        return result
