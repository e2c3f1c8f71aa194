"""Fault cases 10-12 (issue 8): the destination cannot take the guest. virt_migrate's precheck
refuses before anything moves, naming the problem and the fix; with precheck off, libvirt or
QEMU fails part-way and the outcome check must still leave the guest running on its source
with nothing of it on the destination. The invariant is checked after every attempt."""
from support import invariant
from support.lab import virtlab

SRC, DEST = "host-a", "host-c"


def refused_cleanly(res, words):
    assert res.get("failed") is True and res.get("changed") is False, res
    assert words in res["msg"], res["msg"]
    assert "precheck: false" in res["remedy"], res


def test_destination_lacks_the_guest_network(labh, make_guest, bridge_network_on_source, lab_module):
    """Case 11: the guest's network (a bridge) exists on the source only."""
    name = make_guest("df-net", SRC, "--network", bridge_network_on_source)
    snap = invariant.Snapshot(labh, name)
    res = lab_module(SRC, "virt_migrate", {"name": name, "dest": DEST})
    refused_cleanly(res, "network 'pf-net' is not defined on the destination")
    assert [c for c in res["checks"] if c["status"] == "fail"][0]["name"] == "network.interface"
    invariant.check(labh, name, expect_on=SRC, snapshot=snap)
    # Without the precheck libvirt refuses in its Prepare step on host-c: same end state.
    res = lab_module(SRC, "virt_migrate", {"name": name, "dest": DEST, "precheck": False})
    assert res.get("failed") is True and res["location"]["running_on"] == [SRC], res
    invariant.check(labh, name, expect_on=SRC, snapshot=snap)


def test_destination_without_memory_headroom(labh, make_guest, lab_module):
    """Case 10: the lab's hosts share this machine's memory, so the headroom is taken away with the
    margin the destination must keep: guest + margin exceeds what host-c really has available."""
    name = make_guest("df-mem", SRC, "--memory", "256")
    snap = invariant.Snapshot(labh, name)
    stats = labh.libvirt(DEST).getMemoryStats(-1, 0)
    available_mib = (stats["free"] + stats.get("buffers", 0) + stats.get("cached", 0)) // 1024
    # 2 GiB more than is available now: memory freed meanwhile (the guests of the test before
    # are still being torn down) must not make guest + margin fit after all.
    res = lab_module(SRC, "virt_migrate", {"name": name, "dest": DEST, "memory_margin_mib": available_mib + 2048})
    refused_cleanly(res, "but the destination has only")
    assert "Free memory on the destination" in res["remedy"]
    invariant.check(labh, name, expect_on=SRC, snapshot=snap)


def test_storage_copy_target_disk_full(labh, make_guest, lab_module):
    """Case 12: host-c's local image directory is an 8 MiB tmpfs; the guest's local disk holds 24 MiB."""
    name = make_guest("df-disk", SRC, "--storage", "local", "--disk-fill", "24")
    snap = invariant.Snapshot(labh, name)
    path = "/var/lib/libvirt/local/%s.qcow2" % name
    args = {"name": name, "dest": DEST, "copy_storage": "all"}
    virtlab("fault", "disk-full", DEST, "--size", "8")
    try:
        res = lab_module(SRC, "virt_migrate", args)
        refused_cleanly(res, "but only 8.0 MiB free")
        invariant.check(labh, name, expect_on=SRC, snapshot=snap)
        # Without the precheck the copy runs into ENOSPC on host-c part-way: the migration fails,
        # the guest stays on host-a, and the volume created on host-c for the copy is deleted.
        res = lab_module(SRC, "virt_migrate", dict(args, precheck=False))
        assert res.get("failed") is True and res["location"]["running_on"] == [SRC], res
        invariant.check(labh, name, expect_on=SRC, snapshot=snap)
        assert not labh.exists_on(DEST, path), "the copy target was left on %s" % DEST
    finally:
        virtlab("fault", "disk-free", DEST)
    # With room again the same task converges.
    res = lab_module(SRC, "virt_migrate", args)
    assert not res.get("failed"), res
    invariant.check(labh, name, expect_on=DEST, snapshot=snap)
