"""`make chaos` (not part of `make test`): the whole fault matrix of issue 15 plus seeded random fault
schedules on the lab. Each cell or schedule is recorded with its outcome; docs/reliability.md is written
from the records when the run ends (tests/support/chaos_report.py). A failing schedule is reproduced from
its seed: `make chaos CHAOS_SEEDS=17 CHAOS_MATRIX=0`."""
import json
import os
import time
import traceback

import pytest

from support import campaign
from support.chaos_report import classify, outcome_category, write_report
from support.lab import REPO

pytestmark = pytest.mark.chaos

SEEDS = [int(s) for s in os.environ.get("CHAOS_SEEDS", ",".join(str(n) for n in range(1, 51))).split(",") if s]
MATRIX = os.environ.get("CHAOS_MATRIX", "1") == "1"
RESULTS = REPO / "tests" / "output" / "chaos" / "results.json"


@pytest.fixture(scope="module")
def records():
    found = []
    yield found
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(found, indent=1))
    if os.environ.get("CHAOS_REPORT", "1") == "1":
        write_report(found, REPO / "docs" / "reliability.md")


@pytest.fixture(autouse=True)
def healthy_lab_after(labh):
    yield
    campaign.virtlab("up", "--firewall")


def _run(labh, make_guest, records, cell, seed=None):
    started = time.monotonic()
    entry = {"cell": cell.name, "seed": seed, "load": " ".join(cell.guest), "delay_s": cell.delay_s}
    record = {}  # filled by run_cell as it goes: a failing cell keeps the task's report
    try:
        campaign.run_cell(labh, make_guest, cell, guest_name=("ch-%s" % seed) if seed is not None else None,
                          record=record)
        entry.update(record, failure=None, category=outcome_category(record["outcome"]))
    except campaign.PhaseMissed as exc:
        entry.update(failure=str(exc)[:600], category="phase missed")
    except AssertionError as exc:
        entry.update(failure="%s: %s" % (type(exc).__name__, str(exc)[:600]), category=classify(exc),
                     trace=traceback.format_exc()[-2000:])
        raise
    except Exception as exc:  # the lab or the harness broke (a virtlab step, a timeout): a failure to read too
        entry.update(failure="%s: %s" % (type(exc).__name__, str(exc)[:600]), category="other failure",
                     trace=traceback.format_exc()[-2000:])
        raise
    finally:
        for key in ("result", "second", "notes", "killed_run"):
            entry.setdefault(key, record.get(key))
        entry["seconds"] = round(time.monotonic() - started, 1)
        records.append(entry)


@pytest.mark.skipif(not MATRIX, reason="CHAOS_MATRIX=0: only the seeded schedules were asked for")
@pytest.mark.parametrize("cell", campaign.cells(), ids=lambda cell: cell.name)
def test_matrix(labh, make_guest, records, cell):
    _run(labh, make_guest, records, cell)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda seed: "seed-%d" % seed)
def test_random_schedule(labh, make_guest, records, seed):
    _run(labh, make_guest, records, campaign.random_schedule(seed), seed)
