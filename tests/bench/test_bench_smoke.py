"""`make test` runs the benchmark's smoke profile (issues 8, 18, 20): one small case of each figure, on
the lab, side by side with the tools users would otherwise run (the data-bound drain only in `make bench`). Figures are reported, never
asserted (2 noisy cores); what must hold is that every figure is produced, the charts are
drawn, and no run left a guest on other than exactly one host (bench/run.py exits non-zero)."""
import json
import os
import subprocess
import sys

from support.lab import REPO

OUT = REPO / "tests" / "output" / "bench-smoke"


def test_bench_smoke_produces_every_figure_and_chart():
    env = dict(os.environ, BENCH_PROFILE="smoke", BENCH_OUT=str(OUT))
    res = subprocess.run([sys.executable, str(REPO / "bench" / "run.py")], env=env, cwd=str(REPO),
                         capture_output=True, text=True, timeout=1800, check=False)
    print(res.stdout[-6000:])
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    data = json.loads((OUT / "latest.json").read_text())
    assert data["profile"] == "smoke"
    for key in ("idle_overhead_ratio", "blockcopy_ratio", "preflight_pair_s", "planner_1000_hosts_s"):
        assert isinstance(data[key], (int, float)) and data[key] > 0, (key, data[key])
    assert data["convergence"] and data["evacuation"]["guests"] == 2
    assert [cell["ratio"] for cell in data["postcopy"]] and "## Post-copy allowed" in (OUT / "report.md").read_text()
    # Issue 20: the seconds of one idle migration by level, both tools, with and without SSH sharing.
    for variant in ("as_is", "connection_sharing"):
        figures = data["breakdown"][variant]
        assert figures["virsh"]["job_s"] > 0 and figures["virt_migrate"]["job"] > 0 and figures["ratio"] > 0, figures
    # The data-bound drain (issue 20) is left to `make bench` in this profile (bench/run.py NOT_IN_SMOKE).
    assert data["not_measured"] == ["drain"] and "drain" not in data, data.get("not_measured")
    # Issue 18: predicted vs measured for the smoke cell.
    cell = data["prediction"]["cells"][0]
    assert cell["predicted_s"] and cell["measured_job_s"] and cell["verdict_right"] is not None, cell
    report = (OUT / "report.md").read_text()
    for heading in ("## Where the seconds of one idle migration go", "## Prediction vs measurement"):
        assert heading in report
    for chart in ("timeline.png", "evacuation.png", "prediction.png"):
        assert (OUT / chart).stat().st_size > 10000, chart
        assert "(%s)" % chart in report
