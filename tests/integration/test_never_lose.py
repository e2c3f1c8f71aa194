"""Never lose, duplicate or roll back a guest (issue 15): the cases that are not one fault in a running
pre-copy (those are the fault matrix, test_fault_matrix.py), each on the lab, judged from every libvirtd,
the guest's serial logs and its heartbeat disk.

- the invariant itself catches a copy resumed from older memory (proved by making it fail);
- a user-paused guest moves and stays paused (success), and is refused a second move before it ran
  (QEMU 7.2 would abort and lose it); a transient guest moves transient; cold
  mode refuses a transient guest;
- cold mode failing at each step after the shutdown (copy onto a full disk, a cut link, a refused
  definition, a refused start) rolls back: the guest runs again on the source, nothing is left on the
  destination (a rollback that could not reach it is finished by the next run);
- recovery refuses while a survivor does not answer (a guest running there unseen would be started twice);
- a block copy whose source libvirtd restarts ends with one copy and no job left.
"""
import glob
import json
import os
import time

import pytest

from support import invariant
from support.lab import run_module, run_playbook, virtlab


def migrate(name, **args):
    return run_module("host-a", "virt_migrate", dict({"name": name, "dest": "host-b"}, **args))


# -- the invariant is real --------------------------------------------------------------------------

def test_the_invariant_catches_a_copy_resumed_from_older_memory(labh, make_guest):
    """A guest saved to shared storage, restored and run on; then its run is thrown away and the same
    old image is restored on host-b: that copy runs from memory older than what already ran, prints
    counters already printed and writes an older counter to its disk. Both checks must fail."""
    name = make_guest("nl-rollback", "host-a")
    image = "/var/lib/libvirt/images/%s.save" % name
    src = labh.libvirt("host-a")
    try:
        labh.domain("host-a", name).save(image)
        src.restore(image)
        labh.wait_heartbeat_after(name, labh.heartbeat(name)["counter"] + 6, timeout=60)
        invariant.check_history(labh, name)  # one history so far: nothing to catch
        with pytest.raises(invariant.GuestRolledBack) as watched:
            with invariant.RollbackWatch(labh, name):
                labh.domain("host-a", name).destroy()
                labh.libvirt("host-b").restore(image)
                time.sleep(6)
        assert "disk counter went from" in str(watched.value)
        with pytest.raises(invariant.GuestRolledBack) as checked:
            invariant.check_history(labh, name)
        assert "printed on host-a and on host-b" in str(checked.value) or "disk holds counter" in str(checked.value)
    finally:
        for host in ("host-a", "host-b"):
            try:
                dom = labh.domain(host, name)
                if dom.isActive():
                    dom.destroy()
            except Exception:  # not there
                pass
        virtlab("exec", "host-a", "--", "rm", "-f", image, check=False)
        virtlab("guest", "rm", name, check=False)  # its history is rolled back on purpose: no final check


# -- guests that are not plain running, persistent ones -------------------------------------------

def test_a_user_paused_guest_moves_and_stays_paused(labh, make_guest):
    name = make_guest("nl-paused", "host-a")
    labh.domain("host-a", name).suspend()
    res = migrate(name)
    assert not res.get("failed"), res
    assert res["location"]["verdict"] == "destination" and res["location"]["running_on"] == ["host-b"], res
    assert "stays paused" in res["msg"], res["msg"]
    invariant.check(labh, name, expect_on="host-b", expect_paused=True)
    # It arrived paused: migrated again from QEMU 7.2 before it ran, QEMU would abort and the guest's running
    # state would be lost (docs/operations.md, "Known limit"). Refused before anything changes.
    back = run_module("host-b", "virt_migrate", {"name": name, "dest": "host-a"})
    assert back.get("failed") and not back.get("changed"), back
    assert "arrived paused" in back["msg"] and "mode: cold" in back.get("remedy", ""), back
    invariant.check(labh, name, expect_on="host-b", expect_paused=True)
    labh.domain("host-b", name).resume()
    invariant.check(labh, name, expect_on="host-b")
    # Once it ran, it moves back (running).
    back = run_module("host-b", "virt_migrate", {"name": name, "dest": "host-a"})
    assert not back.get("failed"), back
    invariant.check(labh, name, expect_on="host-a")


def test_a_transient_guest_moves_transient_and_cold_mode_refuses_it(labh, make_guest):
    name = make_guest("nl-transient", "host-a")
    labh.domain("host-a", name).undefine()
    snap = invariant.Snapshot(labh, name)
    refused = migrate(name, mode="cold")
    assert refused.get("failed") and "transient" in refused["msg"] and "ceases to exist" in refused["msg"], refused
    invariant.check(labh, name, expect_on="host-a", snapshot=snap, persistent=False)
    res = migrate(name, persistent=False, undefine_source=False)
    assert not res.get("failed"), res
    invariant.check(labh, name, expect_on="host-b", snapshot=snap, persistent=False)


# -- cold mode rolls back --------------------------------------------------------------------------

def cold(name, **args):
    return migrate(name, mode="cold", shutdown_timeout=60, force_shutdown=True, **args)


def assert_rolled_back(labh, name, res, step_words):
    assert res.get("failed"), res
    assert step_words in res["msg"] and "The guest now runs on host-a" in res["msg"], res["msg"]
    assert res["location"]["running_on"] == ["host-a"] and res["location"]["defined_on"] == ["host-a"], res
    invariant.check(labh, name, expect_on="host-a", expect_reboot=True)


def test_cold_copy_onto_a_full_disk_rolls_back(labh, make_guest):
    name = make_guest("nl-cold-full", "host-a", "--storage", "local", "--disk-mib", "64", "--disk-fill", "32")
    virtlab("fault", "disk-full", "host-b", "--size", "8")
    try:
        res = cold(name, precheck=False)  # the precheck would refuse before the shutdown
    finally:
        virtlab("fault", "disk-free", "host-b")
    assert_rolled_back(labh, name, res, 'failed at "copy')
    assert "host-b" not in [h for h, s, p in labh.locate(name)]
    assert "host-b" not in invariant.lab_guests.local_volumes(labh.lab, name)
    again = cold(name)
    assert not again.get("failed"), again
    invariant.check(labh, name, expect_on="host-b", expect_reboot=True)


def test_cold_definition_refused_rolls_back(labh, make_guest):
    """host-b already has another domain of that name: libvirt refuses the definition."""
    name = make_guest("nl-cold-name", "host-a")
    decoy = labh.libvirt("host-b").defineXML(
        "<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory><os><type>hvm</type></os></domain>" % name)
    try:
        res = cold(name)
    finally:
        decoy.undefine()
    assert_rolled_back(labh, name, res, 'failed at "define on host-b"')


def test_cold_start_refused_rolls_back(labh, make_guest):
    """host-b cannot boot the guest (its kernel is missing there): the definition made there goes."""
    name = make_guest("nl-cold-start", "host-a")
    kernel = "/var/lib/libvirt/boot/vmlinux"
    virtlab("exec", "host-b", "--", "mv", kernel, kernel + ".away")
    try:
        res = cold(name)
    finally:
        virtlab("exec", "host-b", "--", "mv", kernel + ".away", kernel)
    assert_rolled_back(labh, name, res, 'failed at "start on host-b"')
    assert "host-b" not in [h for h, s, p in labh.locate(name)], labh.locate(name)


def test_cold_copy_with_the_link_cut_rolls_back_and_the_next_run_finishes_it(labh, make_guest):
    """The link to host-b goes down during the copy: the partial copy there cannot be removed now. The
    guest runs again on host-a; the journal keeps what is left, and the next run removes it first."""
    name = make_guest("nl-cold-cut", "host-a", "--storage", "local", "--disk-mib", "96", "--disk-fill", "96")
    virtlab("fault", "netem", "host-b", "--rate", "16")  # 2 MB/s: the copy takes ~50 s
    try:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(cold, name)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not running.done():
                if labh.exists_on("host-b", "/var/lib/libvirt/local/%s.qcow2" % name):
                    break
                time.sleep(0.5)
            time.sleep(3)
            virtlab("fault", "link-down", "host-b")
            res = running.result(timeout=600)
    finally:
        virtlab("fault", "clear", "host-b")
    assert res.get("failed") and 'failed at "copy' in res["msg"], res
    # host-b could not be reached to remove the partial copy: said so, and kept for the next run.
    assert "NOT undone" in res["msg"] and "finishes the rollback first" in res["remedy"], res
    assert [u["done"] for u in res["rollback"] if u["step"].startswith("delete")] == [False], res["rollback"]
    assert invariant.lab_guests.local_volumes(labh.lab, name) == ["host-a", "host-b"]
    found = labh.locate(name)
    assert [(h, s) for h, s, p in found] == [("host-a", "running")], found
    again = cold(name)
    assert not again.get("failed"), again
    assert [u["done"] for u in again["earlier_rollback"]] == [True], again.get("earlier_rollback")
    invariant.check(labh, name, expect_on="host-b", expect_reboot=True)


# -- recovery beside a silent survivor -------------------------------------------------------------

DEFINITIONS = "/var/lib/libvirt/images/.kvmops/definitions"


def test_recovery_refuses_while_a_survivor_does_not_answer(labh, make_guest):
    """host-a's backup still lists a guest that moved to host-c since; host-a dies and host-c goes
    silent. Starting the guest from the backup would run it twice on the same disks: refused, until
    host-c answers again (then the guest is found running there and skipped)."""
    name = make_guest("nl-recover", "host-a", "--storage", "shared")
    res, dummy = run_playbook("backup_definitions.yml", limit="host-a", timeout=240)
    assert res.returncode == 0, res.stdout[-3000:]
    moved = migrate(name, dest="host-c")
    assert not moved.get("failed"), moved
    virtlab("fault", "power-off", "host-a")
    virtlab("fault", "link-down", "host-c")
    args = {"action": "recover", "dead_host": "host-a", "fenced": True, "hosts": ["host-a", "host-b", "host-c"],
            "guests": [name]}
    try:
        try:
            refused = run_module("host-b", "virt_evacuate", args)
        finally:
            virtlab("fault", "link-up", "host-c")
        assert refused.get("failed") and "host-c did not answer" in refused["msg"], refused
        assert "fenced_hosts" in refused.get("remedy", ""), refused
        assert name not in [d.name() for d in labh.libvirt("host-b").listAllDomains(0)], "nothing defined on host-b"
        # host-c answers again (host-a is still dead): the guest is found running there and left alone.
        res = run_module("host-b", "virt_evacuate", args)
        assert not res.get("failed"), res
        assert "already running on host-c" in json.dumps(res["table"]), res["table"]
    finally:
        virtlab("fault", "power-on", "host-a")
    invariant.check(labh, name, expect_on="host-c", persistent=None)
    # host-a came back with its stale definition: the rejoin of recover.yml removes it.
    rejoin = run_module("host-a", "virt_evacuate", {"action": "rejoin", "dead_host": "host-a",
                                                    "hosts": ["host-a", "host-b", "host-c"], "guests": [name]})
    assert not rejoin.get("failed"), rejoin
    invariant.check(labh, name, expect_on="host-c")
    for path in glob.glob(os.path.join(labh.host_path("host-b", DEFINITIONS), "*", name + ".xml")):
        os.remove(path)


# -- a block copy whose source libvirtd restarts ---------------------------------------------------

def test_blockcopy_whose_libvirtd_restarts_ends_with_one_copy_and_no_job(labh, make_guest):
    name = make_guest("nl-blockcopy", "host-a", "--disk-mib", "128", "--disk-fill", "96")
    snap = invariant.Snapshot(labh, name)
    dest = "/var/lib/libvirt/local/%s.qcow2" % name
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(run_module, "host-a", "virt_blockcopy",
                              {"name": name, "disk": "vda", "dest": dest, "bandwidth": 8})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not labh.exists_on("host-a", dest):
            time.sleep(0.3)
        time.sleep(2)
        virtlab("fault", "stop-libvirtd", "host-a")
        virtlab("fault", "start-libvirtd", "host-a")
        res = running.result(timeout=600)
    # Whatever the module saw, a re-run ends the copy either way (pivoted, or aborted and done again).
    again = run_module("host-a", "virt_blockcopy", {"name": name, "disk": "vda", "dest": dest})
    assert not again.get("failed"), (res, again)
    assert labh.domain("host-a", name).blockJobInfo("vda", 0) == {}
    invariant.check(labh, name, expect_on="host-a", snapshot=snap)
