"""The prediction benchmark (issue 18): for every cell of the convergence matrix, what
`virt_migrate` predicted before the job against what happened, and `strategy: auto` against
each fixed strategy an operator could have picked.

Per cell and run, each on a fresh guest with a history (it was migrated once, uncapped, from
host-b to host-a before: a guest in production has migrated before, and the history is where
the model learns its zero pages; a fresh guest's are unknown and assumed used):

- `strategy: auto` (the default): its prediction (every strategy's outcome), its decision, and
  the measured job: duration (the job's own time), downtime, whether it finished;
- `strategy: precopy` and `strategy: auto_converge`, both with try_anyway (a refusal would hide
  whether the strategy finishes after all): measured only.

Figures: the verdict (does plain pre-copy meet the limits: predicted from auto's prediction,
measured by the strategy=precopy run), the duration error of auto's chosen strategy (|predicted
- measured| / measured, job time), the downtime, auto's wall time against the best fixed
strategy's, and whether auto failed a cell that a fixed strategy finished. The calibration
figures: the fixed cost of one migration (the module's timings without the job) and the vCPU
busy share the dirty-rate sample saw.
"""
import os
import statistics
import time

from bench.measure import (
    CELL_TIMEOUT_S,
    DST,
    RUNS,
    SRC,
    convergence_cells,
    fresh_guest,
    log,
    rotated,
    run_module,
    spread,
    virtlab,
)

MIB = 1048576
MAX_DOWNTIME_MS = 500
TOOLS = ("auto", "precopy", "auto_converge")
# The fixed strategies run this often per cell (auto runs RUNS times): strategy=precopy with
# try_anyway runs to its timeout in every cell plain pre-copy cannot finish, so their runs are
# most of the section's time (BENCH_PREDICTION_FIXED_RUNS, default 1).
FIXED_RUNS = int(os.environ.get("BENCH_PREDICTION_FIXED_RUNS", "1"))


def warm_guest(labh, name, cell):
    """A fresh guest of the cell on host-b, moved once to host-a uncapped (its history); True.
    A guest whose kernel died in that move (seen with busy guests under TCG) is made anew on
    host-a without a history; False (the run is reported without one)."""
    fresh_guest(name, cell.memory, cell.dirty, cell.create_args, on=DST)
    res = run_module(DST, "virt_migrate", {"name": name, "dest": SRC})
    if res.get("failed"):
        raise RuntimeError("warm-up migration of %s failed: %s" % (name, res.get("msg")))
    time.sleep(2)
    beat = labh.heartbeat(name)
    if not (beat.get("oops") or (beat.get("age_s") or 0) > 5):
        return True
    log("prediction: %s died in its warm-up migration (%s); made anew without a history" % (
        name, (beat.get("oops_lines") or ["no heartbeat"])[0]))
    fresh_guest(name, cell.memory, cell.dirty, cell.create_args)
    time.sleep(3)
    return False


def migrate(name, cell, tool):
    args = {"name": name, "dest": DST, "bandwidth": cell.bw, "max_downtime": MAX_DOWNTIME_MS,
            "timeout": CELL_TIMEOUT_S}
    if tool != "auto":
        args.update(strategy=tool, try_anyway=True)
    res = run_module(SRC, "virt_migrate", args)
    stats = res.get("stats") or {}
    timings = res.get("timings") or {}
    return {"completed": not res.get("failed") and (res.get("location") or {}).get("running_on") == [DST],
            "job_s": round(stats.get("total_time_ms", 0) / 1000.0, 2) if stats.get("total_time_ms") else None,
            "downtime_ms": stats.get("downtime_ms"), "prediction": res.get("prediction"),
            "decision": res.get("decision"), "started": (res.get("strategy") or {}).get("started"),
            "course": res.get("course"), "timings": timings,
            "fixed_cost_s": round(timings["total_s"] - timings.get("job", 0.0), 3) if timings.get("total_s") else None,
            "vcpu_busy_share": _busy_share(res.get("dirty_rate"))}


def _busy_share(report):
    for result in (report or {}).get("results") or []:
        if result.get("vcpu_busy_share") is not None:
            return result["vcpu_busy_share"]
    return None


def bench_prediction(labh):
    cells = []
    name = "bench-pred"
    for cell in convergence_cells():
        runs = dict((tool, []) for tool in TOOLS)
        for run in range(max(RUNS, FIXED_RUNS)):
            for tool in rotated(TOOLS, run):
                if run >= (RUNS if tool == "auto" else FIXED_RUNS):
                    continue
                had_history = warm_guest(labh, name, cell)
                started = time.monotonic()
                result = migrate(name, cell, tool)
                result["had_history"] = had_history
                result["wall_s"] = round(time.monotonic() - started, 2)
                running = [h for h, s, _p in labh.locate(name) if s in ("running", "paused")]
                result["exactly_one_host"] = len(running) == 1
                runs[tool].append(result)
                log("prediction cell %s %s run %d: completed=%s job %ss (auto predicted %s)" % (
                    cell.as_dict(), tool, run + 1, result["completed"], result["job_s"],
                    predicted_of(result)[0] if tool == "auto" else "-"))
        cells.append(cell_summary(cell.as_dict(), runs))
    virtlab("guest", "rm", name, check=False)
    return {"cells": cells, "summary": prediction_summary(cells)}


def predicted_of(result):
    """(seconds, downtime ms, strategy) auto's prediction gives the strategy it started."""
    decision = result.get("decision") or {}
    outcome = decision.get("outcome") or {}
    return outcome.get("total_s"), outcome.get("downtime_ms"), decision.get("strategy")


PREDICTION_INPUTS = ("bandwidth_bps", "bandwidth_source", "dirty_rate_bps", "dirty_rate_source", "working_set_bytes",
                     "working_set_source", "zero_page_share")


def prediction_inputs(result):
    """What auto's prediction was computed from, per run: the next analysis of the model's error
    reads these instead of reconstructing them."""
    prediction = result.get("prediction") or {}
    return dict((key, prediction.get(key)) for key in PREDICTION_INPUTS) if prediction else None


def plain_precopy_meets(result):
    """Whether auto's prediction says plain pre-copy (the engine's steps) meets the limits."""
    outcomes = (result.get("prediction") or {}).get("outcomes") or {}
    plain = outcomes.get("precopy_steps")
    return None if plain is None else bool(plain.get("meets_limits"))


def _error(predicted, measured):
    if predicted is None or not measured:
        return None
    return round(abs(predicted - measured) / measured, 3)


def cell_summary(cell, runs):
    """One cell's figures from its runs (pure: tests/unit/test_bench_figures.py)."""
    auto = runs["auto"]
    verdicts = [plain_precopy_meets(r) for r in auto if plain_precopy_meets(r) is not None]
    predicted_verdict = verdicts[0] if verdicts and len(set(verdicts)) == 1 else (
        statistics.mode(verdicts) if verdicts else None)
    measured_verdict = all(r["completed"] for r in runs["precopy"]) if runs["precopy"] else None
    errors = [_error(predicted_of(r)[0], r["job_s"]) for r in auto if r["completed"]]
    errors = [e for e in errors if e is not None]
    walls = dict((tool, spread([r["wall_s"] for r in rs if r["completed"]])) for tool, rs in runs.items())
    finished = dict((tool, all(r["completed"] for r in rs)) for tool, rs in runs.items())
    fixed = [walls[tool]["median"] for tool in ("precopy", "auto_converge") if finished[tool] and walls[tool]]
    best_fixed = min(fixed) if fixed else None
    return dict(cell, **{
        "predicted_verdict": predicted_verdict, "measured_verdict": measured_verdict,
        "verdict_right": None if predicted_verdict is None or measured_verdict is None
        else predicted_verdict == measured_verdict,
        "auto_strategy": [predicted_of(r)[2] or r.get("started") for r in auto],
        "predicted_s": spread([predicted_of(r)[0] for r in auto]),
        "prediction_inputs": [prediction_inputs(r) for r in auto],
        "measured_job_s": spread([r["job_s"] for r in auto if r["completed"]]),
        "duration_error": spread(errors),
        "predicted_downtime_ms": spread([predicted_of(r)[1] for r in auto]),
        "measured_downtime_ms": spread([r["downtime_ms"] for r in auto if r["completed"]]),
        "finished": finished, "wall_s": walls,
        "auto_vs_best_fixed": round(walls["auto"]["median"] / best_fixed, 3) if best_fixed and walls["auto"] else None,
        "auto_failed_where_fixed_finished": not finished["auto"] and any(
            finished[tool] for tool in ("precopy", "auto_converge")),
        "course_corrections": sum(1 for r in auto for record in (r.get("course") or []) if record.get("action")),
        "fixed_cost_s": spread([r["fixed_cost_s"] for rs in runs.values() for r in rs]),
        "module_start_s": spread([(r["timings"] or {}).get("module_start_s") for rs in runs.values() for r in rs]),
        "vcpu_busy_share": spread([r["vcpu_busy_share"] for r in auto]),
        "invariant_held": all(r["exactly_one_host"] for rs in runs.values() for r in rs),
        "runs_without_history": sum(1 for rs in runs.values() for r in rs if not r.get("had_history", True)),
    })


def cell_label(cell):
    return "%s %d/%d/%d" % (cell["kind"], cell["working_set_mib"], cell["dirty_rate_mibps"], cell["bandwidth_mibps"])


def _accuracy(cells):
    """The verdict and duration-error figures over these cells (pure)."""
    judged = [c for c in cells if c["verdict_right"] is not None]
    errors = [c["duration_error"]["median"] for c in cells if c["duration_error"]]
    return {
        "cells": len(cells),
        "verdict_right_share": round(sum(1 for c in judged if c["verdict_right"]) / float(len(judged)), 3)
        if judged else None,
        "verdict_wrong_cells": [cell_label(c) for c in judged if not c["verdict_right"]],
        "duration_error_median": round(statistics.median(errors), 3) if errors else None,
        "duration_error_max": max(errors) if errors else None,
    }


def prediction_summary(cells):
    """The targets' figures over every cell, and the accuracy figures again over the cells whose load
    stays as it was measured (``constant_load``): a changing cell's rate changes after the prediction
    was made, which no measurement made before the job can see; what answers it is the engine's course
    correction, judged by the auto / best-fixed columns (pure)."""
    ratios = [c["auto_vs_best_fixed"] for c in cells if c["auto_vs_best_fixed"] is not None]
    return dict(_accuracy(cells), **{
        "constant_load": _accuracy([c for c in cells if not c.get("later")]),
        "auto_vs_best_fixed_max": max(ratios) if ratios else None,
        "auto_failed_cells": sum(1 for c in cells if c["auto_failed_where_fixed_finished"]),
        "fixed_cost_s": spread([c["fixed_cost_s"]["median"] for c in cells if c["fixed_cost_s"]]),
        "module_start_s": spread([c["module_start_s"]["median"] for c in cells if c["module_start_s"]]),
    })
