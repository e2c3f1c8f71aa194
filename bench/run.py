"""make bench: side-by-side measurements on the lab, written to .bench/latest.json,
.bench/report.md and PNG charts.

Each figure compares virt_migrate with what an operator would otherwise run, in the same
run, on the same lab: plain `virsh migrate --live --p2p` (with and without --auto-converge).
Times are medians of BENCH_RUNS runs (default 3) with min and max. Nothing here asserts a
wall-clock figure; the report states the targets and whether they were met.

BENCH_CELLS="ws,rate,bw,mem;..." replaces the profile's convergence cells.
BENCH_SECTIONS=idle,blockcopy re-measures only those figures (planner, idle, convergence,
breakdown, prediction, postcopy, preflight, blockcopy, evacuation, drain); the others keep the figures of the last run in the output
directory, and the report says which figures were measured again, and when.
BENCH_NOTE="..." is printed at the top of the report (and kept by later partial runs).
BENCH_BREAKDOWN_RUNS (default 6, smoke 1) idle migrations per tool and variant in `breakdown`;
BENCH_PREDICTION_FIXED_RUNS (default 1) runs of each fixed strategy per cell in `prediction`.
VIRTLAB_INSTANCE: the bench drives that lab instance (its inventory; virsh runs inside its hosts).
Sections added for issues 18 and 20: `breakdown` (bench/breakdown.py), `prediction`
(bench/prediction.py) and `drain` (bench/drain.py); their report sections are in
bench/report_sections.py.
BENCH_PROFILE=smoke runs one small case of each (a few minutes; `make test` runs it through
tests/bench/test_bench_smoke.py); full is the default. BENCH_OUT chooses the output directory.
The run exits non-zero when a required figure is missing or the exactly-one-host invariant
failed in any run: figures are reported, never asserted.

This file is the runner (which sections, where the output goes); bench/measure.py measures,
bench/charts.py draws and bench/report.py writes the report. The lab is driven through
lab/vlab/control.py, as the tests drive it.
"""
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "lab"))

from bench.breakdown import bench_breakdown  # noqa: E402
from bench.charts import chart_gantt, chart_prediction, chart_timeline  # noqa: E402
from bench.drain import bench_drain, drain_json  # noqa: E402
from bench.prediction import bench_prediction  # noqa: E402
from bench.measure import (  # noqa: E402
    PROFILE,
    RUNS,
    bench_blockcopy,
    bench_convergence,
    bench_evacuation,
    bench_idle,
    bench_planner,
    bench_postcopy,
    bench_preflight,
    evacuation_bars,
    log,
    rotated,
    virtlab,
)
from bench.report import CELL_KEYS, missing_figures, report  # noqa: E402
from vlab.control import LabReads  # noqa: E402

# Names tests/unit/test_bench_report.py reads from this file, with those of the runner itself.
__all__ = ["CELL_KEYS", "OUT", "PROFILE", "SECTIONS", "earlier_results", "evacuation_bars", "main", "missing_figures",
           "rotated", "selected_sections"]

OUT = Path(os.environ.get("BENCH_OUT") or REPO / ".bench")


SECTIONS = ("planner", "idle", "breakdown", "convergence", "prediction", "postcopy", "preflight", "blockcopy",
            "evacuation", "drain")


# The smoke profile (`make test`) leaves out the data-bound drain: it is the longest section (5-6 minutes
# for its two tools and the return), and its busy and storage-copied TCG guests die now and then whatever the
# tool (docs/lab.md), which must be a finding of `make bench`, not a coin flip in CI. BENCH_SECTIONS=drain
# still runs it in the smoke profile.
NOT_IN_SMOKE = ("drain",)


def selected_sections():
    """BENCH_SECTIONS=idle,blockcopy re-measures only those figures (default: all; the smoke profile: all
    but NOT_IN_SMOKE)."""
    wanted = [name.strip() for name in os.environ.get("BENCH_SECTIONS", "").split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        raise SystemExit("BENCH_SECTIONS: unknown %s (choose from %s)" % (", ".join(unknown), ", ".join(SECTIONS)))
    if wanted:
        return wanted
    return [name for name in SECTIONS if not (PROFILE == "smoke" and name in NOT_IN_SMOKE)]


def earlier_results(sections):
    """When only some sections run, the others keep the figures of the last run in OUT (same profile)."""
    previous = OUT / "latest.json"
    if len(sections) == len(SECTIONS) or not previous.exists():
        return {}
    data = json.loads(previous.read_text())
    return data if data.get("profile") == PROFILE else {}


def main():
    sections = selected_sections()
    OUT.mkdir(parents=True, exist_ok=True)
    virtlab("up", "--firewall")
    labh = LabReads()
    data = earlier_results(sections)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if len(sections) < len(SECTIONS) and data:
        data.setdefault("remeasured", {}).update(dict((name, stamp) for name in sections))
    else:
        data["measured_at"] = stamp
    data.update({"profile": PROFILE, "runs": RUNS, "errors": []})
    data["not_measured"] = [name for name in SECTIONS if name not in sections and name not in data]
    if os.environ.get("BENCH_NOTE"):  # e.g. what changed in the lab between the sections' runs
        data["note"] = os.environ["BENCH_NOTE"]

    def section(title, measure, key=None):
        """Run one benchmark; an error is recorded (and makes the run fail) without losing
        what the other sections measured, and what is known so far (this section's result
        under ``key`` included) is saved at once."""
        log(title)
        result = None
        try:
            result = measure()
        except Exception as exc:  # reported in the JSON and the exit status
            log("PROBLEM in %s: %r" % (title, exc))
            data["errors"].append("%s: %r" % (title, exc))
        if key:
            data[key] = result
        (OUT / "latest.json").write_text(json.dumps(data, indent=1, default=list))
        return result

    if "planner" in sections:
        planner = section("planner", bench_planner)
        if planner:
            data["planner"], data["planner_1000_hosts_s"] = planner, planner["median"]
    if "idle" in sections:
        section("idle overhead", lambda: bench_idle(labh), "idle")
        if data["idle"]:
            data["idle_overhead_ratio"] = data["idle"]["ratio"]
    if "breakdown" in sections:
        section("where the seconds of one idle migration go", lambda: bench_breakdown(labh), "breakdown")
    timeline = None
    if "convergence" in sections:
        convergence = section("convergence matrix", lambda: bench_convergence(labh))
        if convergence:
            data["convergence"], timeline = convergence
    if "prediction" in sections:
        section("prediction vs measurement", lambda: bench_prediction(labh), "prediction")
    if "postcopy" in sections:
        section("post-copy cells", lambda: bench_postcopy(labh), "postcopy")
    if "preflight" in sections:
        section("preflight", lambda: bench_preflight(labh, 10 if PROFILE == "full" else 2), "preflight")
        if data["preflight"]:
            data["preflight_pair_s"] = data["preflight"]["module_s"]["median"] if data["preflight"]["module_s"] else None
    if "blockcopy" in sections:
        section("block copy", lambda: bench_blockcopy(labh), "blockcopy")
        if data["blockcopy"]:
            data["blockcopy_ratio"] = data["blockcopy"]["ratio"]
    if "evacuation" in sections:
        section("evacuation", lambda: bench_evacuation(labh, 8 if PROFILE == "full" else 2), "evacuation")
    if "drain" in sections:
        drain = section("data-bound drain", lambda: bench_drain(labh))
        if drain:
            data["drain"] = drain_json(drain)
            data["drain_runs"] = drain["runs"]
            if drain["evacuate"].get("gantt"):
                chart_gantt(drain["evacuate"]["gantt"], OUT / "drain.png",
                            title="evacuate.yml -l host-a, uplink capped at %d MiB/s" % drain["cap_mib_s"])
    if data.get("prediction"):
        chart_prediction(data["prediction"]["cells"], (data.get("drain") or {}), OUT / "prediction.png")
    if timeline and timeline["progress"]:
        chart_timeline(timeline, OUT / "timeline.png")
    if "evacuation" in sections and data["evacuation"] and data["evacuation"].get("gantt"):
        chart_gantt(data["evacuation"]["gantt"], OUT / "evacuation.png")
    (OUT / "latest.json").write_text(json.dumps(data, indent=1))
    (OUT / "report.md").write_text(report(data))
    log("wrote %s and %s" % (OUT / "latest.json", OUT / "report.md"))
    problems = missing_figures(data) + data["errors"]
    for problem in problems:
        log("PROBLEM: %s" % problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
