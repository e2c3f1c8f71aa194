# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight's per-guest predictions: each guest's migration over the measured bandwidth, with
the strategy virt_migrate's ``strategy: auto`` would start (private module_utils).

With ``measure_bandwidth`` the preflight measures the running guests' dirty rates
(``_dirtyrate``, all at once, in a thread while the other checks run; those whose history gives no
working set are sampled again for three times as long to see it) and turns each guest into a
prediction (``_prediction``) under virt_migrate's default limits; its history comes from the domain
XML the preflight reads anyway.  Each estimate keeps the old ``seconds`` key: the chosen strategy's
predicted time (plus the disks to copy at the measured rate), or, when nothing allowed meets the
limits or nothing could be predicted, the old lower bound (memory and disks once over the link).
"""

from __future__ import annotations

import threading

from ansible_collections.kvmops.migration.plugins.module_utils._convergence import MIB
from ansible_collections.kvmops.migration.plugins.module_utils._dirtyrate import (
    DEFAULT_GRACE_S,
    PROBE_FACTOR,
    measure_dirty_rates,
    probe_working_sets,
)
from ansible_collections.kvmops.migration.plugins.module_utils._migration_spec import default_timeout_s, option_defaults
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_checks import estimate_seconds
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_spec import mib
from ansible_collections.kvmops.migration.plugins.module_utils._prediction import choose_strategy, predict
from ansible_collections.kvmops.migration.plugins.module_utils._prediction_inputs import (
    JOB_SETUP_S,
    GuestLoad,
    MigrationPath,
    limits_from_options,
    working_set_unknown,
)
from ansible_collections.kvmops.migration.plugins.module_utils._strategy import guest_load, prediction_view

# Beyond the measurement's own budget, how long the preflight waits for the measuring thread.
JOIN_SLACK_S = 5.0


class DirtyRateProbe:
    """Measures ``domains`` in a thread; :meth:`report` waits for it (bounded).  A libvirt error
    while measuring is reported (``error``), never raised: the preflight's checks go on."""

    def __init__(self, domains, seconds=1, measure=None, probe=()):
        self.domains, self.seconds, self._measure = list(domains), seconds, measure or measure_dirty_rates
        self.probe = list(probe)  # the guests to sample again, longer, for their working set
        self._report = None
        self.error = None
        self._thread = threading.Thread(target=self._run, name='kvmops-preflight-dirtyrate')
        self._thread.daemon = True

    def start(self):
        if self.domains:
            self._thread.start()
        return self

    def _run(self):
        try:
            report = self._measure(self.domains, seconds=self.seconds)
            if self.probe:
                report = probe_working_sets(self.probe, report, seconds=PROBE_FACTOR * self.seconds,
                                            measure=self._measure)
            self._report = report
        except Exception as exc:  # pylint: disable=broad-except
            self.error = 'measuring the dirty rates failed: %s' % exc

    def report(self):
        """The DirtyRateReport, or None (nothing to measure, failed, or not back in time)."""
        if self._thread.ident is not None:  # started
            budget = self.seconds + DEFAULT_GRACE_S
            if self.probe:
                budget += PROBE_FACTOR * self.seconds + DEFAULT_GRACE_S
            self._thread.join(budget + JOIN_SLACK_S)
            if self._thread.is_alive():
                self.error = 'the dirty-rate measurement did not return in time'
        return self._report


def _memory_bytes(guest):
    return (guest['current_memory_kib'] or guest['memory_kib'] or 0) * 1024


def set_unknown(guest):
    """True when the runner's guest dict has nothing but the safe assumption for its working set
    (no history that saw it saturate): a longer sample may show it."""
    return working_set_unknown(GuestLoad(memory_bytes=max(1, _memory_bytes(guest)), history=guest.get('history') or ()))


def guest_estimates(guests, report, mib_s, options=None):
    """One estimate per guest (the runner's guest dicts, each with its ``history``) over ``mib_s``
    (the measured bandwidth), with the DirtyRateReport ``report`` (None: history only).
    ``options``: virt_migrate's options for the limits (default: its defaults)."""
    options = options or option_defaults()
    estimates = []
    for g in guests:
        copy = sum(d.get('allocation') or 0 for d in g['disks'] if d.get('needs_copy'))
        memory = _memory_bytes(g)
        entry = {'guest': g['name'], 'memory_mib': mib(memory), 'copy_storage_mib': mib(copy),
                 'seconds': estimate_seconds(memory, copy, mib_s)}
        estimates.append(entry)
        if not memory or not mib_s:
            entry.update(strategy='unknown', sentence='No prediction: no memory size or no bandwidth.', remedies=[])
            continue
        limits = limits_from_options(options, options.get('timeout') or default_timeout_s(memory, copy))
        measured = report.result(g['name']) if report is not None else None
        prediction = predict(guest_load(memory, measured, g.get('history') or (), resident_bytes=g.get('resident_bytes')),
                             MigrationPath(bandwidth_bps=mib_s * MIB, setup_s=JOB_SETUP_S), limits)
        decision = choose_strategy(prediction, limits)
        if decision.strategy is not None:
            entry['seconds'] = round(decision.outcome.total_s + copy / (mib_s * MIB), 1)
        entry.update(strategy=decision.strategy or ('refused' if decision.refused else 'unknown'),
                     sentence=prediction.sentence, remedies=list(decision.remedies),
                     prediction=prediction_view(prediction))
    return estimates
