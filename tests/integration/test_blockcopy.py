"""virt_blockcopy on the lab: shared -> local -> shared with pivots while the guest keeps its
heartbeat, persistent definition updated (proven by a restart), abort paths leave the guest on
its original disk, refusals touch nothing. Every test ends with THE invariant check."""
import os
import time
import xml.etree.ElementTree as ET

import pytest

from support import invariant
from support.lab import run_module, virtlab

HOST = "host-a"
SHARED = "/var/lib/libvirt/images"
LOCAL = "/var/lib/libvirt/local"
VIR_DOMAIN_XML_INACTIVE = 2


def blockcopy(args, check_mode=False):
    return run_module(HOST, "virt_blockcopy", args, check_mode=check_mode)


def disk_source(labh, name, inactive=False):
    dom = labh.domain(HOST, name)
    root = ET.fromstring(dom.XMLDesc(VIR_DOMAIN_XML_INACTIVE if inactive else 0))
    disk = root.find("./devices/disk[@device='disk']")
    return disk.find("source").get("file"), disk.find("mirror") is not None


def block_job(labh, name):
    return labh.domain(HOST, name).blockJobInfo("vda", 0)


def exists(labh, path):
    return os.path.exists(labh.host_path(HOST, path))


def test_shared_to_local_and_back_with_pivot(labh, make_guest):
    name = make_guest("pf-bc")
    shared, local = "%s/%s.qcow2" % (SHARED, name), "%s/%s.qcow2" % (LOCAL, name)
    snap = invariant.Snapshot(labh, name)

    plan = blockcopy({"name": name, "disk": "vda", "dest": local}, check_mode=True)
    assert plan["changed"] and plan["state"] == "planned" and not plan.get("failed"), plan
    assert plan["plan"]["transient_job"] is True and plan["plan"]["new_source"] == local
    assert disk_source(labh, name) == (shared, False) and not exists(labh, local)

    res = blockcopy({"name": name, "disk": "vda", "dest": local, "remove_source": True})
    assert res["changed"] and res["pivoted"] and not res.get("failed"), res
    assert (res["old_source"], res["new_source"], res["state"]) == (shared, local, "pivoted")
    assert res["bytes_copied"] > 0 and res["throughput_mib_s"] > 0 and res["samples"][-1]["state"] == "ready"
    assert res["persistent_updated_by"] == "libvirt" and res["source_removed"] is True
    assert disk_source(labh, name) == (local, False)
    assert disk_source(labh, name, inactive=True)[0] == local
    assert not exists(labh, shared) and exists(labh, local)
    invariant.check(labh, name, expect_on=HOST, snapshot=snap)

    again = blockcopy({"name": name, "disk": shared, "dest": local})
    assert again["changed"] is False and again["state"] == "done" and not again.get("failed"), again

    # The persistent definition really names the copy: a restart boots from it.
    dom = labh.domain(HOST, name)
    dom.destroy()
    dom.create()
    assert disk_source(labh, name)[0] == local
    wait_new_boot(labh, name, snap.before["boot_id"])
    snap = invariant.Snapshot(labh, name)

    back = blockcopy({"name": name, "disk": "vda", "dest": shared, "remove_source": True, "bandwidth": 200})
    assert back["changed"] and back["pivoted"] and not back.get("failed"), back
    assert disk_source(labh, name) == (shared, False) and disk_source(labh, name, inactive=True)[0] == shared
    assert not exists(labh, local) and exists(labh, shared)
    # Rebooted once on purpose (above); since then, same boot and the heartbeat goes on.
    hb = invariant.check(labh, name, expect_on=HOST, snapshot=snap, expect_reboot=True)[1]
    assert hb["boot_id"] == snap.before["boot_id"] and hb["counter"] > snap.before["counter"]


def wait_new_boot(labh, name, old_boot, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hb = labh.heartbeat(name)
        if hb.get("boot_id") and hb["boot_id"] != old_boot:
            return hb
        time.sleep(0.5)
    raise AssertionError("guest %s did not boot again within %ss" % (name, timeout))


def test_persistent_definition_repaired_when_stale(labh, make_guest):
    """If the persistent definition still names the old image (older libvirt, or someone redefined
    it), a re-run fixes it through updateDeviceFlags(AFFECT_CONFIG)."""
    name = make_guest("pf-bc")
    shared, local = "%s/%s.qcow2" % (SHARED, name), "%s/%s.qcow2" % (LOCAL, name)
    snap = invariant.Snapshot(labh, name)
    res = blockcopy({"name": name, "disk": "vda", "dest": local})
    assert res["pivoted"], res
    conn = labh.libvirt(HOST)
    stale = conn.lookupByName(name).XMLDesc(VIR_DOMAIN_XML_INACTIVE).replace(local, shared)
    conn.defineXML(stale)
    assert disk_source(labh, name, inactive=True)[0] == shared
    fixed = blockcopy({"name": name, "disk": "vda", "dest": local})
    assert fixed["changed"] and fixed["persistent_updated_by"] == "module (updateDeviceFlags)", fixed
    assert disk_source(labh, name, inactive=True)[0] == local and disk_source(labh, name)[0] == local
    assert blockcopy({"name": name, "disk": "vda", "dest": local})["changed"] is False
    invariant.check(labh, name, expect_on=HOST, snapshot=snap)


def test_timeout_aborts_and_guest_stays_on_original_disk(labh, make_guest):
    name = make_guest("pf-bc")
    shared, partial = "%s/%s.qcow2" % (SHARED, name), "%s/%s-slow.qcow2" % (LOCAL, name)
    snap = invariant.Snapshot(labh, name)
    res = blockcopy({"name": name, "disk": "vda", "dest": partial, "bandwidth": 1, "timeout": 3})
    assert res.get("failed") and res["changed"] is False, res
    assert "was not ready after 3s" in res["msg"] and res["state"] == "timed out"
    assert res["aborted"] is True and res["partial_dest_removed"] is True
    assert res["state_after_abort"] == "on original disk %s" % shared
    assert disk_source(labh, name) == (shared, False) and not block_job(labh, name)
    assert not exists(labh, partial)
    invariant.check(labh, name, expect_on=HOST, snapshot=snap)


def test_mirror_without_pivot_then_pivot_or_abort(labh, make_guest):
    name = make_guest("pf-bc")
    shared, local = "%s/%s.qcow2" % (SHARED, name), "%s/%s-m.qcow2" % (LOCAL, name)
    snap = invariant.Snapshot(labh, name)
    try:
        res = blockcopy({"name": name, "disk": "vda", "dest": local, "pivot": False})
        assert res["changed"] and res["mirroring"] and not res["pivoted"] and res["state"] == "ready", res
        assert disk_source(labh, name) == (shared, True) and block_job(labh, name)
        aborted = blockcopy({"name": name, "disk": "vda", "dest": local, "abort": True})
        assert aborted["changed"] and aborted["aborted"] and aborted["new_source"] == shared, aborted
        assert disk_source(labh, name) == (shared, False) and not block_job(labh, name)
        invariant.check(labh, name, expect_on=HOST, snapshot=snap)

        virtlab("exec", HOST, "--", "rm", "-f", local)
        started = blockcopy({"name": name, "disk": "vda", "dest": local, "wait": False})
        assert started["changed"] and started["mirroring"] and not started["pivoted"], started
        adopted = blockcopy({"name": name, "disk": "vda", "dest": local})
        assert adopted["pivoted"] and adopted["plan"]["adopted"] is True, adopted
        assert disk_source(labh, name) == (local, False) and disk_source(labh, name, inactive=True)[0] == local
        invariant.check(labh, name, expect_on=HOST, snapshot=snap)
    finally:
        virtlab("exec", HOST, "--", "rm", "-f", local)


@pytest.fixture
def tiny_filesystem():
    """A 64 KiB tmpfs inside host-a's mount namespace, for the not-enough-space refusal."""
    path = "%s/pf-tiny" % LOCAL
    virtlab("exec", HOST, "--", "mkdir", "-p", path)
    virtlab("exec", HOST, "--", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", path)
    try:
        yield path
    finally:
        virtlab("exec", HOST, "--", "umount", path, check=False)
        virtlab("exec", HOST, "--", "rmdir", path, check=False)


def test_refusals_touch_nothing(labh, make_guest, tiny_filesystem):
    name = make_guest("pf-bc")
    shared = "%s/%s.qcow2" % (SHARED, name)
    other = "%s/%s-other.qcow2" % (LOCAL, name)
    virtlab("exec", HOST, "--", "qemu-img", "create", "-q", "-f", "qcow2", other, "64M")
    try:
        _refusals(labh, name, shared, other, tiny_filesystem)
    finally:
        virtlab("exec", HOST, "--", "rm", "-f", other)


def _refusals(labh, name, shared, other, tiny_filesystem):
    snap = invariant.Snapshot(labh, name)
    with open(labh.host_path(HOST, other), "rb") as f:
        before = f.read()
    cases = [
        ({"disk": "vdz", "dest": "%s/x.qcow2" % LOCAL}, "the guest has no disk 'vdz'"),
        ({"disk": "vda", "dest": other}, "already exists; refusing to overwrite it"),
        ({"disk": "vda", "dest": "%s/x.vmdk" % LOCAL, "format": "vmdk"}, "value of format must be one of: raw, qcow2"),
        ({"disk": "vda", "dest": "%s/x.qcow2" % tiny_filesystem}, "not enough space"),
        ({"disk": "vda", "dest": "%s/nope.qcow2" % LOCAL, "reuse_external": True}, "does not exist"),
        ({"disk": "vda", "dest": "%s/x.qcow2" % LOCAL, "shallow": True, "format": "raw"}, "need format qcow2"),
    ]
    for args, message in cases:
        res = blockcopy(dict(args, name=name))
        assert res.get("failed") and message in res["msg"], (args, res)
        assert res["changed"] is False
        assert disk_source(labh, name) == (shared, False) and not block_job(labh, name)
    with open(labh.host_path(HOST, other), "rb") as f:
        assert f.read() == before
    assert not exists(labh, "%s/x.qcow2" % LOCAL)
    invariant.check(labh, name, expect_on=HOST, snapshot=snap)
