"""playbooks/rolling_maintenance.yml on the lab (issue 17), judged from libvirt on every host, the guests'
heartbeats and the files the round leaves on the hosts, never from the playbook's own report alone.

The maintenance step is a tasks file of this directory (files/), passed in rolling_maintenance_tasks:
rolling_maintenance_test.yml records each run on the host and fails where rolling_test_fail_on says;
rolling_upgrade_from_lab_cache.yml upgrades a bookworm host's libvirt and QEMU from the lab's package cache and
reboots it (issue 16's lab: hosts are machines with systemd, host-a and host-b on bookworm).
"""
import contextlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from support import invariant
from support.lab import run_playbook, virtlab
from support.sampler import Sampler

FILES = Path(__file__).resolve().parent / "files"
TEST_MAINTENANCE = str(FILES / "rolling_maintenance_test.yml")
UPGRADE_MAINTENANCE = str(FILES / "rolling_upgrade_from_lab_cache.yml")
STATE_DIR = "/var/lib/libvirt/kvmops"
# Where the upgrade test puts the lab's flat apt repository of bookworm-backports' libvirt 11.3 / QEMU 10.0 (and
# what they need; `lab/virtlab upgrade-repo` builds it once) inside the host, and its apt URI there.
UPGRADE_REPO_IN_HOST = "/var/tmp/kvmops-upgrade-repo"
LAB_APT_CACHE = "file:" + UPGRADE_REPO_IN_HOST
REBOOT_MARKER = "/run/kvmops-rolling-test-booted-before"
ROUND_FILES = ("rolling.json", "maintenance.json", "evacuation.json", "test-maintenance.log")


def rolling(*extra, check_mode=False, limit=None, timeout=1800, **variables):
    """rolling_maintenance.yml with these variables as extra vars (JSON, so types survive)."""
    return run_playbook("rolling_maintenance.yml", "-e", json.dumps(variables), *extra, check_mode=check_mode,
                        limit=limit, timeout=timeout)


def state_file(labh, host, name):
    return labh.host_path(host, os.path.join(STATE_DIR, name))


def read_json(labh, host, name):
    with open(state_file(labh, host, name), encoding="utf-8") as handle:
        return json.load(handle)


def marked(labh, host):
    return os.path.exists(state_file(labh, host, "maintenance.json"))


def maintenance_runs(labh, host):
    """Lines test-maintenance.log has on the host: how often the test's maintenance step ran there."""
    try:
        with open(state_file(labh, host, "test-maintenance.log"), encoding="utf-8") as handle:
            return len(handle.read().splitlines())
    except OSError:
        return 0


def evacuation_logs(labh, host):
    try:
        return sorted(name for name in os.listdir(labh.host_path(host, STATE_DIR)) if name.startswith("evacuate-"))
    except OSError:
        return []


def recap(stdout):
    """{host: {ok, changed, failed, ...}} from the PLAY RECAP."""
    hosts = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", stdout.split("PLAY RECAP")[-1], re.M):
        hosts[host] = dict((key, int(value)) for key, value in re.findall(r"(\w+)=(\d+)", counts))
    return hosts


def tail(res):
    return res.stdout[-6000:] + res.stderr[-2000:]


@pytest.fixture
def round_name(labh):
    """A round of its own for each test, and no round state left on the hosts before or after it."""
    def clean():
        for host in labh.hypervisors:
            for name in ROUND_FILES:
                try:
                    os.remove(state_file(labh, host, name))
                except OSError:
                    pass
    clean()
    yield "test-%d" % time.time()
    clean()


class HopWatcher(Sampler):
    """The hosts each guest is heard from while a round runs, in order (out and back: [home, peer, home])."""

    def __init__(self, labh, names, interval=0.5):
        super().__init__(interval)
        self.labh, self.names = labh, names
        self.heard = dict((name, []) for name in names)

    def sample(self):
        for name in self.names:
            host = self.labh.heartbeat(name).get("host")
            if host and (not self.heard[name] or self.heard[name][-1] != host):
                self.heard[name].append(host)

    def hops(self, name):
        return list(self.heard[name])


@contextlib.contextmanager
def watching(labh, names):
    """While a round runs: the hops of each guest, and invariant.RollbackWatch on each (its memory never
    goes back in time on any hop; invariant.check afterwards checks the printed counters too)."""
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(invariant.RollbackWatch(labh, name))
        yield stack.enter_context(HopWatcher(labh, names))


@pytest.fixture
def host_b_upgradable(labh):
    """host-b with the upgrade repository in its file system; afterwards host-b is made again from its
    bookworm image (the upgrade must not outlive the test: the other tests and the next runs expect the
    lab's releases), which happens after the test's guests were checked and removed (fixture order)."""
    res = virtlab("upgrade-repo", "bookworm", timeout=1800)
    repo = res.stdout.strip().splitlines()[-1]
    target = labh.host_path("host-b", UPGRADE_REPO_IN_HOST)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(repo, target)
    yield
    virtlab("reset", "host-b", timeout=900)
    labh.refresh()


def test_a_bookworm_host_is_really_upgraded_and_rebooted_and_gets_its_guests_back(
        labh, host_b_upgradable, make_guest, round_name):
    name = make_guest("rm-up1", "host-b")
    snap = invariant.Snapshot(labh, name)
    # /run is a tmpfs of the host's own: a file there is gone once the host has rebooted.
    virtlab("exec", "host-b", "--", "touch", REBOOT_MARKER)
    with watching(labh, [name]) as watcher:
        res, took = rolling(limit="host-b", rolling_maintenance_round=round_name,
                            rolling_maintenance_tasks=UPGRADE_MAINTENANCE, rolling_test_apt_cache=LAB_APT_CACHE)
    assert res.returncode == 0, tail(res)
    invariant.check(labh, name, expect_on="host-b", snapshot=snap)
    hops = watcher.hops(name)
    assert hops[0] == "host-b" and hops[-1] == "host-b" and len(hops) >= 3, "out and back: %s" % hops
    record = read_json(labh, "host-b", "rolling.json")
    assert record["step"] == "done" and record["round"] == round_name
    assert record["guests_out"] == [name] and record["guests_back"] == [name]
    before, after = record["versions_before"], record["versions_after"]
    assert before["libvirt"].startswith("9.") and after["libvirt"].startswith("11."), record
    assert before["qemu"].startswith("7.") and after["qemu"].startswith("10."), record
    # The versions before -> after are in the host's line, and the host rebooted.
    assert "libvirt %s -> %s, QEMU %s -> %s" % (before["libvirt"], after["libvirt"], before["qemu"], after["qemu"]) \
        in res.stdout
    assert virtlab("exec", "host-b", "--", "test", "-e", REBOOT_MARKER, check=False).returncode != 0, \
        "host-b was not rebooted: %s is still there" % REBOOT_MARKER
    assert not marked(labh, "host-b")
    print("upgrade round of host-b took %.1f s" % took)


def test_a_failing_maintenance_stops_at_the_second_host_and_a_rerun_resumes_there(labh, make_guest, round_name):
    guests = {"host-a": make_guest("rm-fa1", "host-a"), "host-b": make_guest("rm-fb1", "host-b")}
    snaps = dict((name, invariant.Snapshot(labh, name)) for name in guests.values())
    common = dict(rolling_maintenance_round=round_name, rolling_maintenance_tasks=TEST_MAINTENANCE)

    res, dummy = rolling(limit="host-a,host-b", rolling_test_fail_on=["host-b"], **common)
    assert res.returncode != 0, "the maintenance failed on host-b: the run must fail\n" + tail(res)
    assert "Round %s stopped at host-b, in its maintain phase" % round_name in res.stdout, tail(res)
    # host-a finished its round; host-b is in maintenance with its guest elsewhere, every guest on one host.
    assert read_json(labh, "host-a", "rolling.json")["step"] == "done"
    invariant.check(labh, guests["host-a"], expect_on="host-a", snapshot=snaps[guests["host-a"]])
    elsewhere, dummy = invariant.check(labh, guests["host-b"], snapshot=snaps[guests["host-b"]])
    assert elsewhere != "host-b"
    assert marked(labh, "host-b") and not marked(labh, "host-a")
    stopped = read_json(labh, "host-b", "rolling.json")
    assert stopped["step"] == "evacuated" and stopped["error"]["phase"] == "maintain", stopped
    assert maintenance_runs(labh, "host-a") == 1 and maintenance_runs(labh, "host-b") == 1

    # Fixed (the step no longer fails): the same round goes on with host-b and leaves host-a alone.
    logs_a = evacuation_logs(labh, "host-a")
    with watching(labh, list(guests.values())) as watcher:
        res, dummy = rolling(limit="host-a,host-b", **common)
    assert res.returncode == 0, tail(res)
    assert "host-a: already done in round %s" % round_name in res.stdout, tail(res)
    assert "host-b: resumes after step evacuated" in res.stdout, tail(res)
    assert watcher.hops(guests["host-a"]) == ["host-a"], "host-a's guest moved in the resumed run"
    assert watcher.hops(guests["host-b"])[-1] == "host-b"
    assert evacuation_logs(labh, "host-a") == logs_a and maintenance_runs(labh, "host-a") == 1
    assert maintenance_runs(labh, "host-b") == 2
    assert recap(res.stdout)["host-a"]["changed"] == 0
    invariant.check(labh, guests["host-a"], expect_on="host-a", snapshot=snaps[guests["host-a"]])
    invariant.check(labh, guests["host-b"], expect_on="host-b", snapshot=snaps[guests["host-b"]])
    assert read_json(labh, "host-b", "rolling.json")["step"] == "done" and not marked(labh, "host-b")


@pytest.fixture
def unmovable(labh, make_guest):
    """On host-a, a guest on local storage whose disks may not be copied (it cannot move) and one that can."""
    return {"stuck": make_guest("rm-stuck", "host-a", "--storage", "local"),
            "free": make_guest("rm-free", "host-a", "--storage", "shared")}


def test_a_guest_that_cannot_move_skips_its_host_when_asked(labh, unmovable, round_name):
    snaps = dict((name, invariant.Snapshot(labh, name)) for name in unmovable.values())
    res, dummy = rolling(limit="host-a", rolling_maintenance_round=round_name, rolling_maintenance_tasks=TEST_MAINTENANCE,
                         rolling_maintenance_unmovable="skip_host", evacuation_no_storage_copy=[unmovable["stuck"]])
    assert res.returncode == 0, tail(res)
    assert "host-a: skipped: guests cannot move: %s" % unmovable["stuck"] in res.stdout, tail(res)
    # Nothing on host-a changed: both guests ran on, never shut down; no mark, no record, no maintenance.
    for name in unmovable.values():
        invariant.check(labh, name, expect_on="host-a", snapshot=snaps[name])
    assert not marked(labh, "host-a") and maintenance_runs(labh, "host-a") == 0
    assert not os.path.exists(state_file(labh, "host-a", "rolling.json"))


def test_a_guest_that_cannot_move_is_shut_down_cleanly_and_started_again_when_asked(labh, unmovable, round_name):
    snap_free = invariant.Snapshot(labh, unmovable["free"])
    snap_stuck = invariant.Snapshot(labh, unmovable["stuck"])
    with watching(labh, list(unmovable.values())) as watcher:
        res, dummy = rolling(limit="host-a", rolling_maintenance_round=round_name,
                             rolling_maintenance_tasks=TEST_MAINTENANCE, rolling_maintenance_unmovable="shutdown",
                             evacuation_no_storage_copy=[unmovable["stuck"]])
    assert res.returncode == 0, tail(res)
    assert "1 shut down and started again (%s)" % unmovable["stuck"] in res.stdout, tail(res)
    # The movable guest went out and came back live; the other one booted again on host-a.
    invariant.check(labh, unmovable["free"], expect_on="host-a", snapshot=snap_free)
    assert len(watcher.hops(unmovable["free"])) >= 3 and watcher.hops(unmovable["stuck"]) == ["host-a"]
    dummy, beat = invariant.check(labh, unmovable["stuck"], expect_on="host-a", expect_reboot=True)
    assert beat["boot_id"] != snap_stuck.before["boot_id"], "the guest that cannot move was not shut down"
    record = read_json(labh, "host-a", "rolling.json")
    assert record["shutdown_guests"] == [unmovable["stuck"]] and record["step"] == "done"
    assert maintenance_runs(labh, "host-a") == 1 and not marked(labh, "host-a")


def test_check_mode_plans_every_host_then_a_second_full_run_changes_nothing(labh, make_guest, round_name):
    guests = dict((host, make_guest("rm-all-%s" % host[-1], host)) for host in labh.hypervisors)
    snaps = dict((name, invariant.Snapshot(labh, name)) for name in guests.values())
    common = dict(rolling_maintenance_round=round_name, rolling_maintenance_tasks=TEST_MAINTENANCE)

    res, dummy = rolling(check_mode=True, **common)
    assert res.returncode == 0, tail(res)
    for host, name in guests.items():
        assert "%s: starts round %s" % (host, round_name) in res.stdout, tail(res)
        assert re.search(r"out and back: .*\b%s -> host-\w" % name, res.stdout), tail(res)
        assert not os.path.exists(state_file(labh, host, "rolling.json")) and not marked(labh, host)
    assert res.stdout.count("  expected: about ") >= len(guests), tail(res)

    res, dummy = rolling(**common)
    assert res.returncode == 0, tail(res)
    for host, name in guests.items():
        assert "%s: done in round %s" % (host, round_name) in res.stdout
        invariant.check(labh, name, expect_on=host, snapshot=snaps[name])
        assert maintenance_runs(labh, host) == 1 and not marked(labh, host)

    logs = dict((host, evacuation_logs(labh, host)) for host in guests)
    with watching(labh, list(guests.values())) as watcher:
        res, dummy = rolling(**common)
    assert res.returncode == 0, tail(res)
    counts = recap(res.stdout)
    for host, name in guests.items():
        assert counts[host]["changed"] == 0 and counts[host]["failed"] == 0, counts
        assert "%s: already done in round %s" % (host, round_name) in res.stdout
        assert watcher.hops(name) == [host], "%s moved in the second run" % name
        assert evacuation_logs(labh, host) == logs[host] and maintenance_runs(labh, host) == 1
        invariant.check(labh, name, expect_on=host, snapshot=snaps[name])
