"""evacuate.yml / return.yml / rebalance.yml on the lab, judged from libvirt, not from the playbook.

host-a gets 4 guests: ev-s1 and ev-s2 on shared storage in anti-affinity group "web" (domain
metadata), ev-l1 on local storage (copied live), ev-l2 on local storage with copying disabled
(unmovable). A watcher thread polls every domain's jobInfo on all three hosts while the playbook
runs, to see how many migrations really ran at once out of host-a and into each destination.
"""
import json
import os
import re
import time

import pytest

from support.invariant import Snapshot, check
from support.lab import run_playbook
from support.sampler import Sampler


GUESTS = ["ev-s1", "ev-s2", "ev-l1", "ev-l2"]
MOVABLE = ["ev-s1", "ev-s2", "ev-l1"]
METADATA = "<migration><anti_affinity>web</anti_affinity></migration>"
VIR_DOMAIN_JOB_NONE = 0


def playbook(name, *args, check_mode=False, limit=None):
    return run_playbook(name, *args, check_mode=check_mode, limit=limit)


# The lab's hypervisors (docs/lab.md: host-a and host-b on bookworm, host-c and host-d on trixie).
HYPERVISORS = ("host-a", "host-b", "host-c", "host-d")


class JobWatcher(Sampler):
    """Polls jobInfo of every domain on the hypervisors; records migration jobs seen at once."""

    def __init__(self, labh, hosts=HYPERVISORS, interval=0.1):
        super().__init__(interval)
        self.labh = labh
        self.hosts = hosts
        self.conns = None
        self.samples = []  # (t, {host: [guest names with an active job]})

    def sample(self):
        if self.conns is None:
            self.conns = {host: self.labh.libvirt(host) for host in self.hosts}
        seen = {}
        for host, conn in self.conns.items():
            active = []
            for dom in conn.listAllDomains(0):
                try:
                    if dom.name().startswith("ev-") and dom.jobInfo()[0] != VIR_DOMAIN_JOB_NONE:
                        active.append(dom.name())
                except Exception:  # the domain vanished (migrated away) between list and job query
                    continue
            seen[host] = active
        self.samples.append((time.monotonic(), seen))

    def most_at_once(self, host):
        return max((len(seen.get(host, [])) for dummy, seen in self.samples), default=0)


def where(labh, name):
    running = [h for h, state, dummy in labh.locate(name) if state == "running"]
    return running[0] if len(running) == 1 else running


def write_mark(labh, host):
    """The mark evacuate.yml leaves on a drained host, as if `host` were in maintenance."""
    path = labh.host_path(host, "/var/lib/libvirt/kvmops")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "maintenance.json"), "w", encoding="utf-8") as mark:
        json.dump({"host": host, "maintenance": True, "reason": "evacuate", "since": int(time.time())}, mark)


def mark_exists(labh):
    return os.path.exists(labh.host_path("host-a", "/var/lib/libvirt/kvmops/maintenance.json"))


@pytest.fixture
def ev_guests(labh, make_guest):
    make_guest("ev-s1", "host-a", "--memory", "128", "--storage", "shared")
    make_guest("ev-s2", "host-a", "--memory", "128", "--storage", "shared")
    make_guest("ev-l1", "host-a", "--memory", "128", "--storage", "local")
    make_guest("ev-l2", "host-a", "--memory", "128", "--storage", "local")
    for name in ("ev-s1", "ev-s2"):
        dom = labh.domain("host-a", name)
        dom.setMetadata(2, METADATA, "kvmops", "https://kvmops.io/migration", 1 | 2)  # ELEMENT, LIVE|CONFIG
    yield GUESTS
    for host in HYPERVISORS:
        path = labh.host_path(host, "/var/lib/libvirt/kvmops")
        for name in ("maintenance.json", "evacuation.json"):
            try:
                os.remove(os.path.join(path, name))
            except OSError:
                pass


EXTRA = ["-e", json.dumps({"evacuation_guests": GUESTS, "evacuation_no_storage_copy": ["ev-l2"]})]


def test_evacuate_return_rebalance(labh, ev_guests):
    # --- check mode: the plan, nothing moves, no mark -------------------------------------
    res, dummy = playbook("evacuate.yml", *EXTRA, check_mode=True, limit="host-a")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "[WARNING]" not in res.stdout + res.stderr, res.stderr[-4000:]  # e.g. a templated argument dict
    for name in MOVABLE:
        assert "planned" in res.stdout and name in res.stdout
    assert "ev-l2" in res.stdout and "storage copy is disabled" in res.stdout
    for name in GUESTS:
        assert where(labh, name) == "host-a", name
    assert not mark_exists(labh)

    # --- a candidate whose mark says maintenance gets no guest (the module reads the mark over libvirt) ---
    pools_before = sorted(pool.name() for pool in labh.libvirt("host-b").listAllStoragePools(0))
    write_mark(labh, "host-b")
    try:
        res, dummy = playbook("evacuate.yml", *EXTRA, check_mode=True, limit="host-a")
    finally:
        os.remove(labh.host_path("host-b", "/var/lib/libvirt/kvmops/maintenance.json"))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "host-b is in maintenance (its mark): no guest goes there" in res.stdout  # a plan note
    planned = re.findall(r"(ev-\S+)\s+host-a\s+(host-\S)\s+-\s+-\s+planned", res.stdout)
    assert planned and all(dest in ("host-c", "host-d") for dummy, dest in planned), planned
    assert sorted(pool.name() for pool in labh.libvirt("host-b").listAllStoragePools(0)) == pools_before

    # --- evacuate: 3 move concurrently within limits, ev-l2 stays, the run fails ------------------
    snaps = {name: Snapshot(labh, name) for name in GUESTS}
    with JobWatcher(labh) as watcher:
        res, took = playbook("evacuate.yml", *EXTRA, limit="host-a")
    out = res.stdout
    assert res.returncode != 0, "a guest stayed, the run must fail:\n" + out[-3000:]
    assert "[WARNING]" not in out + res.stderr, res.stderr[-4000:]
    assert "1 guest(s) did not move: ev-l2" in out, out[-3000:]
    for name in MOVABLE:
        assert "%s  host-a" % name in out
    placed = {}
    for name in MOVABLE:
        placed[name], dummy = check(labh, name, snapshot=snaps[name])
        assert placed[name] in HYPERVISORS[1:], placed
    check(labh, "ev-l2", expect_on="host-a", snapshot=snaps["ev-l2"])
    assert placed["ev-s1"] != placed["ev-s2"], "anti-affinity group web violated: %s" % placed
    out_of_a = watcher.most_at_once("host-a")
    # Incoming jobs are not visible through jobInfo on the destination here: count the source's
    # running jobs per destination the guest ended on.
    into = {host: max((sum(1 for g in seen.get("host-a", []) if placed.get(g) == host)
                       for dummy, seen in watcher.samples), default=0) for host in HYPERVISORS[1:]}
    print("evacuate took %.1f s; jobs at once out of host-a: %d, into: %s; samples %d"
          % (took, out_of_a, into, len(watcher.samples)))
    assert out_of_a == 2, "expected 2 concurrent migrations out of host-a (limit 2, two destinations)"
    assert all(count <= 1 for count in into.values()), into
    assert mark_exists(labh)
    record = json.load(open(labh.host_path("host-a", "/var/lib/libvirt/kvmops/evacuation.json")))
    assert sorted(record["guests"]) == sorted(MOVABLE)

    # --- a re-run moves nothing more (ev-l2 still cannot), fails the same way --------------
    res, dummy = playbook("evacuate.yml", *EXTRA, "-e", "evacuation_preflight=false", limit="host-a")
    assert "did not move: ev-l2" in res.stdout
    assert " moved" not in res.stdout.split("Show the report")[-1].split("Fail when")[0]

    # --- return: everything back on host-a, mark cleared --------------------------------
    snaps = {name: Snapshot(labh, name) for name in MOVABLE}
    res, took = playbook("return.yml", limit="host-a")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    for name in MOVABLE:
        check(labh, name, expect_on="host-a", snapshot=snaps[name])
    assert not mark_exists(labh)
    print("return took %.1f s" % took)

    # --- rebalance: host-a holds 4 of our guests, the others none of them ---------------------
    snaps = {name: Snapshot(labh, name) for name in GUESTS}
    res, dummy = playbook("rebalance.yml", "-e", json.dumps({
        "evacuation_guests": MOVABLE, "evacuation_threshold": 0.004, "evacuation_memory_margin_mib": 0}),
        check_mode=True)
    assert res.returncode == 0, res.stdout[-4000:]
    assert "planned" in res.stdout
    assert all(where(labh, name) == "host-a" for name in GUESTS)
    res, took = playbook("rebalance.yml", "-e", json.dumps({
        "evacuation_guests": MOVABLE, "evacuation_threshold": 0.004, "evacuation_memory_margin_mib": 0}))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    after = {}
    for name in GUESTS:
        after[name], dummy = check(labh, name, snapshot=snaps[name])
    print("rebalance took %.1f s: %s" % (took, after))
    on_a = [name for name, host in after.items() if host == "host-a"]
    assert len(on_a) < len(GUESTS), "rebalance moved nothing off the loaded host-a"
    assert set(HYPERVISORS[1:]) & set(after.values())
