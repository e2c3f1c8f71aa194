# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The bench's figures for issues 18 and 20 from made-up runs: the drain's bound and per-tool
counts, the prediction cells' verdicts and errors, the breakdown's levels, and the report."""
from __future__ import annotations

import importlib

import pytest

from test_bench_report import load_bench

MIB = 1048576


@pytest.fixture(scope="module")
def bench():
    run = load_bench()  # puts the repository on sys.path, as bench/run.py does
    return run, importlib.import_module("bench.drain"), importlib.import_module("bench.prediction"), \
        importlib.import_module("bench.breakdown")


def loop_run(drain, moved_bytes):
    per_guest = []
    for guest in drain.DRAIN_GUESTS:
        done = guest.name in moved_bytes
        per_guest.append({"guest": guest.name, "dest": "host-b", "completed": done, "seconds": 3.0,
                          "downtime_ms": 100 if done else None,
                          "memory_normal_bytes": moved_bytes.get(guest.name), "disk_processed": None})
    return {"time_s": 90.0, "per_guest": per_guest, "moved": [], "left": [], "lost": []}


def test_the_drain_bound_counts_what_had_to_move_once(bench):
    dummy_run, drain, dummy_prediction, dummy_breakdown = bench
    base = 40 * MIB
    moved = dict((g.name, base + g.fill * MIB) for g in drain.DRAIN_GUESTS if not g.busy_ws)
    need, found_base = drain.bytes_to_move(drain.DRAIN_GUESTS, loop_run(drain, moved))
    assert found_base == base
    for guest in drain.DRAIN_GUESTS:
        if guest.busy_ws:  # not measurable: the same base plus what it uses
            assert need[guest.name] == base + (guest.fill + guest.busy_ws) * MIB
        else:
            assert need[guest.name] == moved[guest.name]
    evacuate = {"time_s": 60.0, "moved": [g.name for g in drain.DRAIN_GUESTS], "left": [], "lost": [],
                "gantt": [{"guest": "x", "dest": "host-b", "start_s": 0, "end_s": 55, "result": "moved"}]}
    summary = drain.drain_summary({"virsh_loop": [dict(loop_run(drain, moved), left=["a"])], "evacuate": [evacuate]})
    total = sum(need.values())
    assert summary["bound_s"] == round(total / (drain.DRAIN_CAP_MIBPS * MIB), 1)
    assert summary["evacuate"]["moved"] == len(drain.DRAIN_GUESTS) and summary["evacuate"]["lost"] == 0
    assert summary["evacuate"]["window_s"] == 55
    assert summary["virsh_loop"]["left"] == 1
    assert summary["evacuate"]["ratio_vs_bound"] == round(60.0 / summary["bound_s"], 3)


def test_the_forecast_window_is_read_from_the_sentence(bench):
    drain = bench[1]
    assert drain.forecast_window('"msg": "8 guests move live in about 71 s, 2 at a time."') == (71.0, False)
    assert drain.forecast_window("4 guests move live in about 69 s or more (no prediction for x)") == (69.0, True)
    assert drain.forecast_window("no forecast") == (None, None)


def auto_run(predicted, job, plain_meets=True, strategy="precopy_steps", completed=True):
    return {"completed": completed, "job_s": job, "downtime_ms": 30, "wall_s": (job or 0) + 2,
            "prediction": {"outcomes": {"precopy_steps": {"meets_limits": plain_meets}}, "zero_page_share": 0.5},
            "decision": {"strategy": strategy, "outcome": {"total_s": predicted, "downtime_ms": 40}},
            "started": strategy, "course": [], "timings": {"module_start_s": 0.3}, "fixed_cost_s": 1.0,
            "vcpu_busy_share": 0.2, "exactly_one_host": True}


def test_a_cell_compares_the_prediction_with_the_measurement(bench):
    prediction = bench[2]
    cell = {"working_set_mib": 96, "dirty_rate_mibps": 30, "bandwidth_mibps": 20, "kind": "steady"}
    runs = {"auto": [auto_run(12.0, 10.0, plain_meets=False, strategy="auto_converge")],
            "precopy": [dict(auto_run(None, None), completed=False)],
            "auto_converge": [auto_run(None, 9.0)]}
    summary = prediction.cell_summary(cell, runs)
    assert (summary["predicted_verdict"], summary["measured_verdict"], summary["verdict_right"]) == (False, False, True)
    assert summary["duration_error"]["median"] == 0.2
    assert summary["auto_vs_best_fixed"] == round(12.0 / 11.0, 3)  # walls: 12 vs auto_converge's 11
    assert summary["auto_failed_where_fixed_finished"] is False
    # Each run's model inputs are kept (the keys the prediction had; absent ones as None).
    assert summary["prediction_inputs"] == [dict((key, 0.5 if key == "zero_page_share" else None)
                                                 for key in prediction.PREDICTION_INPUTS)]
    wrong = prediction.cell_summary(cell, dict(runs, precopy=[auto_run(None, 50.0)]))
    assert wrong["verdict_right"] is False
    failed = prediction.cell_summary(cell, dict(runs, auto=[dict(runs["auto"][0], completed=False)]))
    assert failed["auto_failed_where_fixed_finished"] is True
    total = prediction.prediction_summary([summary, dict(wrong, kind="changing", later=[20, 4])])
    assert total["verdict_right_share"] == 0.5 and total["verdict_wrong_cells"] == ["changing 96/30/20"]
    assert total["duration_error_median"] == 0.2
    # Again over the cells whose load stays as measured: the changing cell is left out there only.
    assert total["constant_load"]["cells"] == 1 and total["constant_load"]["verdict_right_share"] == 1.0
    assert total["constant_load"]["verdict_wrong_cells"] == []


def test_the_breakdown_levels_add_up_to_the_wall(bench):
    breakdown = bench[3]
    virsh = breakdown.virsh_breakdown([{"wall_s": 3.0, "virsh_s": 2.0, "job_s": 1.5, "downtime_s": 0.2}])
    assert virsh["ansible_s"] + virsh["virsh_outside_job_s"] + virsh["job_s"] == pytest.approx(virsh["wall_s"])
    module = breakdown.module_breakdown([{"wall_s": 4.0, "module_start_s": 0.3, "connect": 0.3, "checks": 0.1,
                                          "prediction": 1.0, "job": 1.4, "outcome_check": 0.05, "report": 0.05,
                                          "total_s": 2.9, "downtime_s": 0.2}])
    assert module["ansible_and_detach_s"] == pytest.approx(4.0 - 2.9 - 0.3)


def test_the_report_has_the_new_sections(bench):
    run = bench[0]
    prediction = bench[2]
    cell = dict({"working_set_mib": 16, "dirty_rate_mibps": 4, "bandwidth_mibps": 50, "kind": "steady"})
    cell_figures = prediction.cell_summary(cell, {"auto": [auto_run(4.0, 3.0)], "precopy": [auto_run(None, 3.0)],
                                                  "auto_converge": [auto_run(None, 3.0)]})
    level = {"wall_s": 3.0, "ansible_s": 1.0, "virsh_outside_job_s": 0.3, "job_s": 1.7, "downtime_s": 0.1}
    module = dict((phase, 0.1) for phase in ("module_start_s", "connect", "checks", "prediction", "job",
                                             "outcome_check", "report", "ansible_and_detach_s", "downtime_s"))
    module["wall_s"] = 3.3
    data = {"profile": "smoke", "runs": 1, "breakdown": {"as_is": {"virsh": level, "virt_migrate": module,
                                                                   "ratio": 1.1}},
            "prediction": {"cells": [cell_figures], "summary": prediction.prediction_summary([cell_figures])},
            "drain": {"guests": [{"name": "g", "memory_mib": 256, "fill_mib": 96, "busy_working_set_mib": 0,
                                  "local_disk_mib": 0, "paused": False}], "cap_mib_s": 50, "bound_s": 10.0,
                      "bytes_to_move_mib": 500, "base_mib_per_guest": 40,
                      "evacuate": {"moved": 1, "of": 1, "left": 0, "lost": 0, "window_s": 9,
                                   "time_s": {"median": 11.0, "min": 11.0, "max": 11.0}, "ratio_vs_bound": 1.1},
                      "forecast": {"window_s": 10}}}
    text = run.report(data)
    for heading in ("## Where the seconds of one idle migration go", "## Prediction vs measurement",
                    "## Data-bound drain", "(prediction.png)", "(drain.png)"):
        assert heading in text
    assert "forecast 10 s vs 9 s measured (11 %)" in text
