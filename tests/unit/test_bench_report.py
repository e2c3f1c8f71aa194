# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The bench's pure parts: Gantt bars from evacuate.yml's progress lines, and the exit status."""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


OUTPUT = '''
    "msg": [
        "10:00:58 plan bench-ev0 -> host-b (live)",
        "10:00:59 start bench-ev0 host-a -> host-b (live)",
        "10:00:59 start bench-ev1 host-a -> host-c (live)",
        "10:01:01 bench-ev0 host-a -> host-b 54% remaining 20 MiB",
        "10:01:02 moved bench-ev0 host-a -> host-b in 3.1s",
        "10:01:04 failed bench-ev1 host-a -> host-c: aborted"
    ]
'''


def test_evacuation_bars_from_progress_lines():
    bars = load_bench().evacuation_bars(OUTPUT)
    assert bars == [
        {"guest": "bench-ev0", "dest": "host-b", "start_s": 0, "end_s": 3, "result": "moved"},
        {"guest": "bench-ev1", "dest": "host-c", "start_s": 0, "end_s": 5, "result": "failed"},
    ]


def test_missing_figures_names_what_is_missing_and_invariant_failures():
    bench = load_bench()
    cell = dict((key, 1) for key in bench.CELL_KEYS)
    good = {"idle_overhead_ratio": 1.0, "blockcopy_ratio": 1.0, "preflight_pair_s": 1.0, "planner_1000_hosts_s": 0.1,
            "convergence": [dict(cell, invariant_held=True)], "postcopy": [{"invariant_held": True}],
            "evacuation": {"guests": 2, "serial_s": 1, "evacuate_s": 1, "bound_s": 1},
            "breakdown": {"as_is": {}}, "prediction": {"cells": [{"invariant_held": True}]},
            "drain": {"bound_s": 50, "evacuate": {"lost": 0}, "virsh_loop": {"lost": 0}}}
    assert bench.missing_figures(good) == []
    assert bench.missing_figures(dict(good, drain={"bound_s": 50, "evacuate": {"lost": 1}, "virsh_loop": {"lost": 0}})) \
        == ["drain evacuate: a guest was not on exactly one host"]
    assert any("prediction cell" in p for p in bench.missing_figures(dict(good, prediction={"cells": [{}]})))
    bad = dict(good, blockcopy_ratio=None, convergence=[dict(cell, invariant_held=False)], evacuation={"guests": 2})
    problems = bench.missing_figures(bad)
    assert "missing blockcopy_ratio" in problems
    assert any("not on exactly one host" in p for p in problems)
    assert "evacuation lacks serial_s" in problems
    assert bench.missing_figures(dict(good, postcopy=None)) == ["missing postcopy"]
    assert any("post-copy cell" in p for p in bench.missing_figures(dict(good, postcopy=[{"invariant_held": False}])))


def test_only_the_named_sections_run_and_the_others_keep_their_figures(tmp_path, monkeypatch):
    bench = load_bench()
    monkeypatch.setattr(bench, "OUT", tmp_path)
    monkeypatch.setenv("BENCH_SECTIONS", "idle, postcopy")
    assert bench.selected_sections() == ["idle", "postcopy"]
    (tmp_path / "latest.json").write_text('{"profile": "%s", "blockcopy_ratio": 1.3}' % bench.PROFILE)
    assert bench.earlier_results(["idle"])["blockcopy_ratio"] == 1.3
    assert bench.earlier_results(list(bench.SECTIONS)) == {}
    monkeypatch.setenv("BENCH_SECTIONS", "idle,speed")
    try:
        bench.selected_sections()
    except SystemExit as exc:
        assert "unknown speed" in str(exc)
    else:
        raise AssertionError("an unknown section was accepted")


def test_each_tool_goes_first_in_turn():
    bench = load_bench()
    tools = ("virsh", "virsh_autoconverge", "virt_migrate")
    assert [bench.rotated(tools, run) for run in range(4)] == [
        tools, ("virsh_autoconverge", "virt_migrate", "virsh"), ("virt_migrate", "virsh", "virsh_autoconverge"), tools]


def load_part(name):
    """bench/<name>.py, imported as bench/run.py imports it."""
    load_bench()  # puts the repository on sys.path, as running bench/run.py does
    return importlib.import_module("bench." + name)


def figure(median, low=None, high=None):
    return {"median": median, "min": low if low is not None else median, "max": high if high is not None else median,
            "runs": 3}


def full_data():
    cell = {"working_set_mib": 96, "dirty_rate_mibps": 20, "bandwidth_mibps": 10, "virsh_completed": False,
            "virsh_autoconverge_completed": True, "virt_migrate_completed": False, "virt_migrate_aborted_cleanly": True,
            "virt_migrate_downtime_ms": None, "virt_migrate_total_s": figure(42.0, 40.1, 44.9), "invariant_held": True}
    return {
        "profile": "full", "runs": 3, "measured_at": "2026-12-03 10:00 UTC", "errors": ["evacuation: RuntimeError('x')"],
        "remeasured": {"idle": "2026-12-04 09:00 UTC"}, "note": "reaper on",
        "idle": {"virsh_via_ansible_s": figure(2.77, 2.5, 3.0), "virt_migrate_s": figure(3.35, 3.1, 3.6),
                 "ratio": 1.21, "runs_per_tool": 8},
        "idle_overhead_ratio": 1.21,
        "convergence": [cell],
        "postcopy": [{"working_set_mib": 96, "dirty_rate_mibps": 20, "bandwidth_mibps": 10, "virsh_completed": True,
                      "virt_migrate_completed": True, "virt_migrate_switched_runs": 2,
                      "virsh_total_s": figure(10.0), "virt_migrate_total_s": figure(12.6), "ratio": 1.26,
                      "invariant_held": True}],
        "planner_1000_hosts_s": 0.008,
        "evacuation": {"guests": 8, "serial_s": 10.5, "evacuate_s": 8.9, "bound_s": 1.1, "serial_busy_s": 10.1,
                       "ratio_vs_serial": 0.845, "ratio_vs_bound": 7.8, "gantt": [{"guest": "g"}],
                       "raised_limits": {"limits": "evacuation_max_parallel=4 evacuation_max_per_dest=2",
                                         "evacuate": figure(8.3, 8.0, 8.8), "ratio_vs_serial": 0.79, "ratio_vs_bound": 7.5}},
        "blockcopy": {"virt_blockcopy_mib_s": figure(90.0), "qemu_img_convert_mib_s": figure(33.2), "ratio": 2.71},
        "preflight": {"guests": 10, "module_s": figure(0.54), "ansible_wall_s": figure(2.1)},
    }


def test_the_report_has_every_section_with_its_figures():
    text = load_part("report").report(full_data())
    assert text.startswith("# Benchmark report\n\nProfile `full`, 3 run(s) per figure (median, min-max), "
                           "lab `3 hypervisors, QEMU TCG`, 2026-12-03 10:00 UTC.")
    assert "Section `idle` measured again on 2026-12-04 09:00 UTC" in text and "Note: reaper on" in text
    assert "**Not measured** (the section failed): `evacuation: RuntimeError('x')`" in text
    assert "| virsh | 2.77 | 2.5-3.0 |" in text and "`idle_overhead_ratio` = **1.21**" in text
    assert ", 8 runs each, half in each direction" in text
    assert "| 96 | 20 | 10 | no | yes | clean abort | - | 42.0 | yes |" in text and "![timeline](timeline.png)" in text
    assert "| 96 | 20 | 10 | yes | yes | 10.0 (10.0-10.0) | 12.6 (12.6-12.6) | 1.26 | 2/3 runs | yes |" in text
    assert "20000 guests: median 0.008 s." in text
    assert "evacuate / serial = **0.845**" in text and "evacuate / bound = **7.8**" in text
    assert "evacuate.yml 8.3 (8.0-8.8) s, evacuate / serial = **0.79**" in text
    assert "![evacuation Gantt](evacuation.png)" in text
    assert "`blockcopy_ratio` = **2.71**" in text and "10 guests, host-a -> host-b: 0.54 s in the module" in text
    assert text.endswith("\n")


def test_a_partial_report_leaves_out_what_was_not_measured():
    text = load_part("report").report({"profile": "smoke", "runs": 1, "planner_1000_hosts_s": 0.01})
    assert "Profile `smoke`, 1 run(s)" in text and "## Planner" in text
    for heading in ("## Idle", "## Convergence", "## Post-copy", "## Evacuation", "## Block copy", "## Preflight"):
        assert heading not in text


def test_the_charts_are_png_files(tmp_path):
    charts = load_part("charts")
    timeline = {"cell": [96, 20, 10], "progress": [{"t_ms": 0, "remaining": 200 * 1048576},
                                                   {"t_ms": 4000, "remaining": 90 * 1048576},
                                                   {"t_ms": 9000, "remaining": None}],
                "actions": [{"t_ms": 3000, "kind": "set_bandwidth", "value": 40},
                            {"t_ms": 6000, "kind": "start_postcopy", "value": None}]}
    charts.chart_timeline(timeline, tmp_path / "timeline.png")
    charts.chart_gantt(load_bench().evacuation_bars(OUTPUT), tmp_path / "evacuation.png")
    for name in ("timeline.png", "evacuation.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10000, name
