# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The bench's pure parts: Gantt bars from evacuate.yml's progress lines, and the exit status."""
from __future__ import annotations

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
            "evacuation": {"guests": 2, "serial_s": 1, "evacuate_s": 1, "bound_s": 1}}
    assert bench.missing_figures(good) == []
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
