"""docs/reliability.md from the records of a `make chaos` run: what ran, and the counts of lost,
duplicated and rolled-back guests, stale definitions and leftovers (all must be 0)."""
import time

from support.campaign import POSTCOPY_OUTCOMES
from support.invariant import GuestRolledBack

CATEGORIES = ("lost", "duplicated", "rolled back", "stale definition", "leftover", "other failure", "phase missed")
# Not a failure: the fault parted the halves of a post-copy (the risk allow_postcopy accepts), the task
# reported it exactly, resumed nothing, and the documented procedure ended it (campaign.POSTCOPY_OUTCOMES).
POSTCOPY_INTERRUPTED = "post-copy interrupted, reported"


def outcome_category(outcome):
    """The category of a cell that held every check: 'ok', or the post-copy row."""
    return POSTCOPY_INTERRUPTED if outcome.startswith(POSTCOPY_OUTCOMES) else "ok"


def classify(exc):
    """Which promise an invariant failure broke, from the check that raised it."""
    text = str(exc)
    if isinstance(exc, GuestRolledBack):
        return "rolled back"
    if "runs nowhere" in text or "must run on exactly one host, found []" in text:
        return "lost"
    if "must run on exactly one host" in text or "active on several hosts" in text or "BOTH" in text:
        return "duplicated"
    if "also defined on" in text or "persistent=" in text:
        return "stale definition"
    if "left on" in text or "local disk is left" in text or "jobs still active" in text:
        return "leftover"
    return "other failure"


def write_report(records, path):
    counts = dict((category, 0) for category in CATEGORIES + (POSTCOPY_INTERRUPTED,))
    for record in records:
        if record.get("category") in counts:
            counts[record["category"]] += 1
    matrix = [r for r in records if r.get("seed") is None]
    seeded = [r for r in records if r.get("seed") is not None]
    lines = [
        "# Reliability: the fault campaign",
        "",
        "Written by `make chaos` (tests/integration/test_chaos.py) on %s. Each cell injects one fault at one "
        "phase of a real live migration on the lab; each seeded schedule draws the fault, the phase, the guest's "
        "load and the moment from its seed (`make chaos CHAOS_SEEDS=<n> CHAOS_MATRIX=0` runs it again). After "
        "each, the invariant is checked on every hypervisor (tests/support/invariant.py): exactly one active "
        "copy, defined only there, nothing left elsewhere, no job left, the heartbeat continued, and its memory "
        "never went back in time (serial logs and the heartbeat disk)." % time.strftime("%Y-%m-%d"),
        "",
        "| | count |",
        "|---|---|",
        "| matrix cells run | %d |" % len(matrix),
        "| seeded schedules run | %d |" % len(seeded),
    ]
    lines += ["| %s | %d |" % (category, counts[category]) for category in CATEGORIES]
    lines += ["| %s (not a loss the product caused: see below) | %d |" % (
        POSTCOPY_INTERRUPTED, counts[POSTCOPY_INTERRUPTED]),
        "",
        "A post-copy switches the guest's vCPUs to the destination before its memory is there; a fault that "
        "kills either half or parts them for good then ends the guest's running state, whatever any tool does "
        "(the reason post-copy is opt-in, `allow_postcopy`). Those cells pass when the task reports it exactly "
        "(`postcopy_lost` or `postcopy_split`, with both halves and the procedure), resumed nothing stale, and "
        "the documented procedure (docs/operations.md \"Post-copy interrupted\") brings the guest back from "
        "its disks with its memory never rolled back; they are counted in their own row."]
    lines += ["", "## Every cell and schedule", "",
              "| cell | seed | guest load | result | outcome | s |", "|---|---|---|---|---|---|"]
    for record in records:
        result = record.get("result") or {}
        outcome = record.get("outcome") or "**%s**: %s" % (record.get("category"), (record.get("failure") or "")[:160])
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            record["cell"], record.get("seed") if record.get("seed") is not None else "",
            record.get("load", ""), result.get("verdict") or ("failed" if result.get("failed") else "moved"),
            outcome.replace("|", "/"), record.get("seconds", "")))
    path.write_text("\n".join(lines) + "\n")
