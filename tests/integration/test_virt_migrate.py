"""virt_migrate on the lab: every test ends with THE invariant check (support.invariant)."""
import os
from concurrent.futures import ThreadPoolExecutor

from support import invariant
from support.lab import run_module, virtlab


def test_live_over_ssh_then_idempotent_rerun(labh, make_guest, lab_module):
    name = make_guest("it-live")
    snap = invariant.Snapshot(labh, name)
    res = lab_module("host-a", "virt_migrate", {"name": name, "dest": "host-b"})
    assert res["changed"] is True and not res.get("failed"), res
    assert res["location"]["running_on"] == ["host-b"] and res["location"]["defined_on"] == ["host-b"]
    assert res["stats"]["downtime_ms"] is not None and res["stats"]["downtime_ms"] <= 500
    assert res["stats"]["memory_total_bytes"] > 0
    assert "LIVE" in res["flags"] and "PEER2PEER" in res["flags"]
    invariant.check(labh, name, expect_on="host-b", snapshot=snap)
    again = lab_module("host-a", "virt_migrate", {"name": name, "dest": "host-b"})
    assert again["changed"] is False and not again.get("failed"), again
    invariant.check(labh, name, expect_on="host-b", snapshot=snap)


def test_check_mode_reports_the_plan_and_moves_nothing(labh, make_guest, lab_module):
    name = make_guest("it-check")
    snap = invariant.Snapshot(labh, name)
    res = lab_module("host-a", "virt_migrate", {"name": name, "dest": "host-c", "bandwidth": 50}, check_mode=True)
    assert res["changed"] is True and not res.get("failed"), res
    assert res["plan"]["params"]["bandwidth"] == 50
    assert res["plan"]["storage"][0]["shared"] is True
    invariant.check(labh, name, expect_on="host-a", snapshot=snap)


def test_live_with_storage_copy_from_local_disk(labh, make_guest, lab_module):
    name = make_guest("it-local", "host-a", "--storage", "local")
    snap = invariant.Snapshot(labh, name)
    refused = lab_module("host-a", "virt_migrate", {"name": name, "dest": "host-b"})
    assert refused.get("failed") and refused["changed"] is False
    assert "vda" in refused["msg"] and "copy_storage" in refused["remedy"]
    invariant.check(labh, name, expect_on="host-a", snapshot=snap)
    res = lab_module("host-a", "virt_migrate", {"name": name, "dest": "host-b", "copy_storage": "all"})
    assert res["changed"] is True and not res.get("failed"), res
    assert res["stats"]["disk_transferred_bytes"] is not None
    assert labh.libvirt("host-b").storageVolLookupByPath("/var/lib/libvirt/local/%s.qcow2" % name)
    invariant.check(labh, name, expect_on="host-b", snapshot=snap)
    # Back to host-a: its old image is still there, so only with it removed can the copy go back.
    back = lab_module("host-b", "virt_migrate", {"name": name, "dest": "host-a", "copy_storage": "all",
                                                 "remove_source_storage": True})
    assert back.get("failed") and "already exists" in back["msg"], back
    virtlab("exec", "host-a", "--", "rm", "-f", "/var/lib/libvirt/local/%s.qcow2" % name)
    labh.libvirt("host-a").storagePoolLookupByName("local").refresh(0)
    back = lab_module("host-b", "virt_migrate", {"name": name, "dest": "host-a", "copy_storage": "all",
                                                 "remove_source_storage": True})
    assert back["changed"] and back["removed_source_storage"] == ["/var/lib/libvirt/local/%s.qcow2" % name], back
    assert not os.path.exists(labh.host_path("host-b", "/var/lib/libvirt/local/%s.qcow2" % name))
    invariant.check(labh, name, expect_on="host-a", snapshot=snap)


def test_cold_with_shared_and_with_local_storage(labh, make_guest, lab_module):
    for name, storage in (("it-cold-s", "shared"), ("it-cold-l", "local")):
        make_guest(name, "host-a", "--storage", storage)
        res = lab_module("host-a", "virt_migrate", {"name": name, "dest": "host-c", "mode": "cold",
                                                    "shutdown_timeout": 5, "force_shutdown": True})
        assert res["changed"] is True and not res.get("failed"), res
        assert res["shutdown"] in ("shutdown", "forced")
        assert bool(res["copied_disks"]) == (storage == "local"), res["copied_disks"]
        # A cold migration reboots the guest: the invariant holds, with a fresh boot.
        invariant.check(labh, name, expect_on="host-c", expect_reboot=True)
        again = lab_module("host-a", "virt_migrate", {"name": name, "dest": "host-c", "mode": "cold"})
        assert again["changed"] is False, again


def test_offline_moves_only_the_definition(labh, make_guest, lab_module):
    name = make_guest("it-off")
    labh.domain("host-a", name).destroy()
    res = lab_module("host-a", "virt_migrate", {"name": name, "dest": "host-b", "mode": "offline"})
    assert res["changed"] is True and not res.get("failed"), res
    assert labh.locate(name) == [("host-b", "shutoff", True)]
    again = lab_module("host-a", "virt_migrate", {"name": name, "dest": "host-b", "mode": "offline"})
    assert again["changed"] is False and not again.get("failed"), again


def test_bad_input_changes_nothing(labh, make_guest):
    name = make_guest("it-bad")
    snap = invariant.Snapshot(labh, name)
    cases = [
        ({"name": "no-such-guest", "dest": "host-b"}, "No domain"),
        ({"name": name, "dest": "host-a"}, "source host itself"),
        ({"name": name, "dest": "qemu+ssh://"}, "names no host"),
        ({"name": name, "dest": "host-b", "bandwidth": -5}, "bandwidth"),
        ({"name": name, "dest": "host-b", "max_downtime": 0}, "max_downtime"),
        ({"name": name, "dest": "host-b", "tunnelled": True, "allow_postcopy": True}, "tunnelled"),
        ({"name": name, "dest": "host-b", "mode": "offline"}, "mode=offline"),
        ({"name": name, "dest": "host-b", "migrate_disks": ["vdz"], "copy_storage": "all"}, "vdz"),
        ({"name": name, "dest": "no-such-host.invalid"}, "no-such-host.invalid"),
    ]
    # Refusals touch nothing: side by side is safe. From threads, so with run_module (a subprocess
    # each): lab_module runs Ansible in this process, in the main thread only.
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda args: run_module("host-a", "virt_migrate", args), [c[0] for c in cases]))
    for (args, words), res in zip(cases, results):
        assert res.get("failed") is True, (args, res)
        assert res["changed"] is False
        assert words in res["msg"], (args, res["msg"])
    invariant.check(labh, name, expect_on="host-a", snapshot=snap)


def test_dirtying_guest_under_the_default_policy_converges_or_aborts_cleanly(labh, make_guest, lab_module):
    """A guest rewriting a 96 MiB hot set at 20 MiB/s over a 10 MiB/s cap: plain pre-copy can
    never finish (every pass re-sends the hot set). The default policy's lever is QEMU's CPU
    throttle, which under this lab's TCG bites only sometimes (seen: finished in 81 s with 49 ms
    downtime; and aborted after 12 stalled passes). Either outcome must be clean: finished
    within max_downtime on host-b, or aborted with the guest running on host-a and a remedy
    that names the bandwidth it would need. (allow_postcopy always finishes: next tests.)
    strategy: adaptive is the engine's policy without a prediction (strategy: auto, the default,
    may refuse this guest before starting: tests/integration/test_prediction.py)."""
    name = make_guest("it-dirty", "host-a", "--memory", "256", "--dirty", "96,20")
    snap = invariant.Snapshot(labh, name)
    res = lab_module("host-a", "virt_migrate", {"name": name, "dest": "host-b", "bandwidth": 10, "timeout": 240,
                                                "strategy": "adaptive"})
    kinds = [a["kind"] for a in res["policy_actions"]]
    assert "start_postcopy" not in kinds and 1 <= kinds.count("set_max_downtime") <= 5, kinds
    assert "auto_converge_engaged" in kinds, kinds
    if res.get("failed"):
        assert res["changed"] is False and res["location"]["running_on"] == ["host-a"], res
        assert "abort" in kinds and "MiB/s" in res["remedy"] and "allow_postcopy" in res["remedy"], res
        invariant.check(labh, name, expect_on="host-a", snapshot=snap)
    else:
        assert res["stats"]["downtime_ms"] <= 500 + 100, res["stats"]  # QEMU's estimate may overshoot a little
        invariant.check(labh, name, expect_on="host-b", snapshot=snap)


def test_timeout_aborts_and_leaves_the_guest_running_on_the_source(labh, make_guest, lab_module):
    # strategy: adaptive starts the job whatever it would predict (auto refuses this one up front).
    name = make_guest("it-abort", "host-a", "--memory", "256", "--dirty", "96,40")
    snap = invariant.Snapshot(labh, name)
    res = lab_module("host-a", "virt_migrate", {"name": name, "dest": "host-b", "bandwidth": 2, "timeout": 15,
                                                "auto_converge": False, "strategy": "adaptive"})
    assert res.get("failed") is True and res["changed"] is False or res["location"]["running_on"] == ["host-a"], res
    assert res["location"]["running_on"] == ["host-a"], res
    assert "abort" in [a["kind"] for a in res["policy_actions"]]
    assert "MiB/s" in res.get("remedy", ""), res
    invariant.check(labh, name, expect_on="host-a", snapshot=snap)
    virtlab("guest", "where", name)


def test_info_shows_progress_and_control_changes_bandwidth_then_aborts(labh, make_guest, lab_module):
    import time
    name = make_guest("it-ctl", "host-a", "--memory", "256", "--dirty", "96,20")
    snap = invariant.Snapshot(labh, name)
    with ThreadPoolExecutor(1) as pool:
        # strategy: adaptive starts the job whatever it would predict (auto refuses this one up front).
        # In the background, so with run_module (lab_module runs in the main thread only).
        running = pool.submit(run_module, "host-a", "virt_migrate", {
            "name": name, "dest": "host-b", "bandwidth": 5, "timeout": 300, "auto_converge": False,
            "strategy": "adaptive"})
        deadline = time.monotonic() + 60
        job = None
        while time.monotonic() < deadline:
            info = lab_module("host-a", "virt_migrate_info", {"name": name})
            job = info["jobs"][0]
            if job["type"] == "unbounded" and job["data_remaining_bytes"]:
                break
            time.sleep(1)
        assert job and job["type"] == "unbounded" and job["operation"] == "migration_out", job
        later = lab_module("host-a", "virt_migrate_info", {"name": name, "previous_progress": job["progress_percent"]})
        assert later["jobs"][0]["progress_percent"] >= job["progress_percent"]
        assert later["changed"] is False
        faster = lab_module("host-a", "virt_migrate_control", {"name": name, "action": "set_bandwidth", "bandwidth": 7})
        assert faster["changed"] is True and faster["previous"] == 5, faster
        same = lab_module("host-a", "virt_migrate_control", {"name": name, "action": "set_bandwidth", "bandwidth": 7})
        assert same["changed"] is False, same
        aborted = lab_module("host-a", "virt_migrate_control", {"name": name, "action": "abort"})
        assert aborted["changed"] is True, aborted
        res = running.result(timeout=120)
    assert res.get("failed") is True and res["location"]["running_on"] == ["host-a"], res
    invariant.check(labh, name, expect_on="host-a", snapshot=snap)
    idle = lab_module("host-a", "virt_migrate_control", {"name": name, "action": "abort"})
    assert idle["changed"] is False and not idle.get("failed")
    no_job = lab_module("host-a", "virt_migrate_control", {"name": name, "action": "set_bandwidth", "bandwidth": 9})
    assert no_job.get("failed") and "No migration runs" in no_job["msg"]


def test_allow_postcopy_finishes_a_guest_pre_copy_cannot(labh, make_guest, lab_module):
    """Opt-in post-copy: without throttling, a 20 MiB/s writer cannot converge over 10 MiB/s;
    the policy switches to post-copy at the end of the first pass that leaves more than
    max_downtime can send, which the module learns from libvirt's migration-iteration event."""
    name = make_guest("it-postcopy", "host-a", "--memory", "256", "--dirty", "96,20")
    snap = invariant.Snapshot(labh, name)
    res = lab_module("host-a", "virt_migrate", {
        "name": name, "dest": "host-b", "bandwidth": 10, "auto_converge": False, "allow_postcopy": True,
        "policy": {"downtime_steps": 1}, "timeout": 240})
    assert res["changed"] is True and not res.get("failed"), res
    kinds = [a["kind"] for a in res["policy_actions"]]
    assert kinds.count("start_postcopy") == 1 and "abort" not in kinds, kinds
    assert "POSTCOPY" in res["flags"]
    # The switch came from a pass-end event, not from the next poll.
    assert res["stats"]["pass_end_events"] >= 1, res["stats"]
    invariant.check(labh, name, expect_on="host-b", snapshot=snap)


def test_paused_mode_is_virsh_migrate_without_live(labh, make_guest, lab_module):
    name = make_guest("it-paused")
    snap = invariant.Snapshot(labh, name)
    res = lab_module("host-a", "virt_migrate", {"name": name, "dest": "host-c", "mode": "paused"})
    assert res["changed"] is True and not res.get("failed"), res
    assert "LIVE" not in res["flags"] and "AUTO_CONVERGE" not in res["flags"]
    invariant.check(labh, name, expect_on="host-c", snapshot=snap)


def test_wait_false_returns_while_it_runs_and_a_rerun_waits_for_the_outcome(labh, make_guest, lab_module):
    """wait: false hands the job to a detached process on the source; the task returns while
    libvirt still migrates, the job stays visible to virt_migrate_info, and the same task with
    wait: true waits for that run instead of starting a second one."""
    name = make_guest("it-nowait", "host-a", "--memory", "256", "--dirty", "64,2")
    snap = invariant.Snapshot(labh, name)
    # Bad input is still refused up front, with nothing started.
    for bad, words in (({"mode": "cold"}, "wait=false is for mode=live"), ({"name": "it-nowait-nosuch"}, "nosuch")):
        refused = lab_module("host-a", "virt_migrate", dict({"name": name, "dest": "host-b", "wait": False}, **bad))
        assert refused.get("failed") and refused["changed"] is False and words in refused["msg"], refused
    invariant.check(labh, name, expect_on="host-a", snapshot=snap)
    args = {"name": name, "dest": "host-b", "bandwidth": 10, "wait": False}
    started = lab_module("host-a", "virt_migrate", args)
    assert started["changed"] is True and started["started"] is True and not started.get("failed"), started
    info = lab_module("host-a", "virt_migrate_info", {"name": name})
    assert info["jobs"] and info["jobs"][0]["operation"] == "migration_out", info  # still migrating
    assert info["detached"][0]["running"] is True and info["detached"][0]["destination"] == "host-b", info
    again = lab_module("host-a", "virt_migrate", dict(args, wait=True))
    assert not again.get("failed"), again
    assert again["detached_outcome"]["msg"].startswith("Migrated %s from host-a to host-b" % name), again
    assert again["location"]["running_on"] == ["host-b"] and again["changed"] is False, again
    after = lab_module("host-a", "virt_migrate_info", {"name": name})  # it has left host-a
    assert after["jobs"] == [] and after["detached"][0]["running"] is False, after
    assert after["detached"][0]["location"]["verdict"] == "destination"
    invariant.check(labh, name, expect_on="host-b", snapshot=snap)
