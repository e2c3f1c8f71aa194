"""Predictions on the lab (issue 18): the dirty-rate measurement of real guests, and strategy: auto on
a guest that plain pre-copy cannot move - it starts with what the prediction chose and the guest
arrives, or, with nothing allowed that would work, it refuses before anything moves. Every test ends
with THE invariant check (support.invariant)."""
import time

from ansible_collections.kvmops.migration.plugins.module_utils._dirtyrate import measure_dirty_rates
from ansible_collections.kvmops.migration.plugins.module_utils._migration_history import HISTORY_NS

from support import invariant

MIB = 1 << 20
# lab-facts "Dirty-rate measurement": 96 MiB rewritten at 20 MiB/s read 30 MiB/s, an idle guest 2.
BUSY = ("--memory", "256", "--dirty", "96,20")
VIR_DOMAIN_METADATA_ELEMENT = 2


def busy_guest_running(labh, make_guest, name):
    """A guest rewriting 96 MiB at 20 MiB/s, its heartbeat (and its dirtier) going."""
    make_guest(name, "host-a", *BUSY)
    labh.wait_heartbeat_after(name, labh.heartbeat(name)["counter"] + 2, timeout=60)
    return name


def test_dirty_rate_of_an_idle_and_a_busy_guest_is_bounded_and_orders_them(labh, make_guest, lab_module):
    idle = make_guest("pr-idle", "host-a", "--memory", "256")
    busy = busy_guest_running(labh, make_guest, "pr-busy")
    snaps = [invariant.Snapshot(labh, name) for name in (idle, busy)]
    conn = labh.libvirt("host-a")  # one connection: libvirt reads the statistics of both in one call
    doms = [conn.lookupByName(idle), conn.lookupByName(busy)]
    started = time.monotonic()
    report = measure_dirty_rates(doms, seconds=1)
    took = time.monotonic() - started
    # Both guests at once: one period plus the grace, not one per guest.
    assert report.elapsed_s <= report.budget_s + 0.5 and took <= report.budget_s + 2, (took, report.as_dict())
    quiet, loud = report.result(idle), report.result(busy)
    assert (quiet.status, loud.status) == ("measured", "measured"), report.as_dict()
    assert loud.dirty_rate_bps >= 8 * MIB and loud.dirty_rate_bps > 3 * quiet.dirty_rate_bps, report.as_dict()
    assert loud.measured_at and loud.vcpu_busy_share is not None
    # The same measurement through virt_migrate's check mode: the prediction it starts from.
    res = lab_module("host-a", "virt_migrate", {"name": busy, "dest": "host-b", "bandwidth": 10,
                                                "allow_postcopy": True}, check_mode=True)
    assert not res.get("failed"), res
    measured = res["dirty_rate"]["results"][0]
    assert measured["status"] == "measured" and res["dirty_rate"]["elapsed_s"] <= res["dirty_rate"]["budget_s"] + 0.5
    assert res["prediction"]["dirty_rate_source"] == "measured" and res["decision"]["known"] is True, res["prediction"]
    for name, snap in zip((idle, busy), snaps):
        invariant.check(labh, name, expect_on="host-a", snapshot=snap)


def test_auto_starts_with_the_predicted_strategy_and_the_guest_arrives(labh, make_guest, lab_module):
    """Plain pre-copy cannot move this guest over 10 MiB/s (each pass leaves its 96 MiB set). With
    post-copy allowed, strategy: auto predicts before starting, starts with the strategy it chose
    (auto-converge if it predicts the throttle bites, else post-copy), keeps post-copy as the net,
    and the guest arrives; the prediction and the real figures come back side by side, and the
    figures are recorded in the guest's history on host-b."""
    name = busy_guest_running(labh, make_guest, "pr-auto")
    snap = invariant.Snapshot(labh, name)
    args = {"name": name, "dest": "host-b", "bandwidth": 10, "allow_postcopy": True, "timeout": 240}
    res = lab_module("host-a", "virt_migrate", args)
    assert res["changed"] is True and not res.get("failed"), res
    plain = res["prediction"]["outcomes"]["precopy_steps"]
    assert plain["meets_limits"] is False, res["prediction"]
    chosen = res["decision"]["strategy"]
    assert chosen in ("auto_converge", "postcopy") and res["strategy"] == {
        "requested": "auto", "started": chosen, "note": None}, (res["strategy"], res["decision"])
    kinds = [a["kind"] for a in res["policy_actions"]]
    assert "POSTCOPY" in res["flags"], res["flags"]  # allowed: the switch stays possible
    if chosen == "postcopy":
        assert "AUTO_CONVERGE" in res["flags"] and kinds.count("start_postcopy") == 1, kinds
        assert res["policy_actions"][kinds.index("start_postcopy")]["iteration"] <= 3, res["policy_actions"]
    else:
        assert "AUTO_CONVERGE" in res["flags"], res["flags"]
        # Started as predicted; a switch, if any, came from the course check or the stall rule.
        switch = [a for a in res["policy_actions"] if a["kind"] == "start_postcopy"]
        assert not switch or switch[0]["reason"].startswith(("course check", "stalled")), switch
    assert "abort" not in kinds, kinds
    assert res["stats"]["total_time_ms"] > 0 and res["prediction"]["outcomes"][chosen]["total_s"] > 0
    assert res["history"]["recorded_on"] == "host-b", res.get("history")
    recorded = labh.domain("host-b", name).metadata(VIR_DOMAIN_METADATA_ELEMENT, HISTORY_NS, 0)
    assert "<migration " in recorded and 'completed="yes"' in recorded, recorded
    invariant.check(labh, name, expect_on="host-b", snapshot=snap)


def test_auto_refuses_before_anything_moves_naming_what_would_work(labh, make_guest, lab_module):
    """Neither post-copy nor auto-converge allowed: nothing allowed moves this guest over 10 MiB/s.
    The task fails before any job starts and says what would work. (With auto_converge at its
    default the prediction may count on the throttle; this test takes that lever away so the
    refusal does not depend on how the lab's TCG throttle is modelled.)"""
    name = busy_guest_running(labh, make_guest, "pr-refuse")
    snap = invariant.Snapshot(labh, name)
    args = {"name": name, "dest": "host-b", "bandwidth": 10, "allow_postcopy": False, "auto_converge": False}
    res = lab_module("host-a", "virt_migrate", args)
    assert res.get("failed") is True and res["changed"] is False, res
    assert "nothing was started" in res["msg"], res["msg"]
    assert "allow_postcopy: true" in res["remedy"] and "bandwidth: at least" in res["remedy"], res["remedy"]
    assert res["decision"]["refused"] is True and res["decision"]["known"] is True, res["decision"]
    assert "policy_actions" not in res and "stats" not in res, res  # no job ran
    assert labh.domain("host-a", name).jobInfo()[0] == 0
    invariant.check(labh, name, expect_on="host-a", snapshot=snap)
    # What the remedy says works does: the same task with post-copy allowed moves it.
    moved = lab_module("host-a", "virt_migrate", dict(args, allow_postcopy=True, timeout=240))
    assert not moved.get("failed") and moved["strategy"]["started"] == "postcopy", moved
    invariant.check(labh, name, expect_on="host-b", snapshot=snap)


def test_a_longer_sample_sees_a_busy_guests_working_set_in_the_evacuation_forecast(labh, make_guest, lab_module):
    """The benchmark drain's busy guest: 96 MiB rewritten at 64 MiB/s in 256 MiB, with no history.
    One second reads about 64 MiB/s and cannot tell that set from the whole memory; the forecast
    samples it again for 3 s (lab: 84-114 MiB dirtied, where a writer that never saturates would
    dirty about 190) and takes the set it saw saturate.  Check mode: nothing moves."""
    name = make_guest("pr-set", "host-a", "--memory", "256", "--dirty", "96,64")
    labh.wait_heartbeat_after(name, labh.heartbeat(name)["counter"] + 2, timeout=60)
    snap = invariant.Snapshot(labh, name)
    res = lab_module("host-a", "virt_evacuate", {"hosts": ["host-b"], "migrate_options": {"bandwidth": 20}},
                     check_mode=True)
    assert not res.get("failed"), res
    forecast = res["forecast"]
    prediction = next(move["prediction"] for move in forecast["moves"] if move["name"] == name)
    measured = next(result for result in forecast["dirty_rate"]["results"] if result["name"] == name)
    assert forecast["dirty_rate"]["probe_seconds"] == 3 and len(measured["samples"]) == 2, forecast["dirty_rate"]
    assert prediction["working_set_source"] == "measured", (prediction, measured)
    assert 48 * MIB <= prediction["working_set_bytes"] <= 160 * MIB, (prediction, measured)
    # Measuring all guests twice stays bounded: 1 s and 3 s, each with its grace.
    assert forecast["dirty_rate"]["elapsed_s"] <= forecast["dirty_rate"]["budget_s"] + 1, forecast["dirty_rate"]
    invariant.check(labh, name, expect_on="host-a", snapshot=snap)
