"""virt_blockcopy on the lab: shared -> local -> shared with pivots while the guest keeps its
heartbeat, persistent definition updated (proven by a restart), abort paths leave the guest on
its original disk, refusals touch nothing. Every test ends with THE invariant check."""
import os
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import pytest

from support import invariant
from support.lab import run_module, virtlab
from vlab import config as lab_config

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
    labh.wait_new_boot(name, snap.before["boot_id"])
    snap = invariant.Snapshot(labh, name)

    back = blockcopy({"name": name, "disk": "vda", "dest": shared, "remove_source": True, "bandwidth": 200})
    assert back["changed"] and back["pivoted"] and not back.get("failed"), back
    assert disk_source(labh, name) == (shared, False) and disk_source(labh, name, inactive=True)[0] == shared
    assert not exists(labh, local) and exists(labh, shared)
    # Rebooted once on purpose (above); since then, same boot and the heartbeat goes on.
    hb = invariant.check(labh, name, expect_on=HOST, snapshot=snap, expect_reboot=True)[1]
    assert hb["boot_id"] == snap.before["boot_id"] and hb["counter"] > snap.before["counter"]


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


# --- pool/volume and network destinations (issue #5), on host-c -----------------------------------
# host-c only: the fault suite works on host-a and host-b. storage-1 serves the NBD export
# (qemu-nbd in its namespaces) and the GlusterFS volume `vmstore`.
HOST_C = "host-c"
STORAGE = "storage-1"
STORAGE_IP = lab_config.STORAGE_IP
NBD_PORT = 10851          # qemu-nbd of the test below
NBD_CLOSED_PORT = 10852   # nothing listens there: an unreachable target
FILL = 8 * 1024 * 1024    # --disk-fill 8: the first 8 MiB of the guest disk are 0x5a
DISK_BYTES = 64 * 1024 * 1024


def blockcopy_c(args, check_mode=False):
    return run_module(HOST_C, "virt_blockcopy", args, check_mode=check_mode)


def live_disk(labh, name, inactive=False):
    """(disk type, source, mirror present) of vda on host-c; a network source as protocol://host:port/name."""
    dom = labh.domain(HOST_C, name)
    disk = ET.fromstring(dom.XMLDesc(VIR_DOMAIN_XML_INACTIVE if inactive else 0)).find("./devices/disk[@device='disk']")
    src = disk.find("source")
    if disk.get("type") == "network":
        host = src.find("host")
        where = "%s://%s:%s/%s" % (src.get("protocol"), host.get("name"), host.get("port"), src.get("name"))
    else:
        where = src.get("file") or src.get("dev")
    return disk.get("type"), where, disk.find("mirror") is not None


def refusals(labh, name, cases, before, check_mode_args=None):
    """Run refusals side by side (they touch nothing); each must fail with changed=false and its words.
    With `check_mode_args`, a check-mode run goes alongside; its result is returned."""
    with ThreadPoolExecutor(3) as pool:
        plan = pool.submit(blockcopy_c, check_mode_args, True) if check_mode_args else None
        results = list(pool.map(lambda case: blockcopy_c(dict(case[0], name=name, disk="vda")), cases))
    for (args, words), res in zip(cases, results):
        assert res.get("failed") is True and res.get("changed") is False, (args, res)
        assert words in res["msg"], (args, res["msg"])
    assert live_disk(labh, name) == before and not labh.domain(HOST_C, name).blockJobInfo("vda", 0)
    return plan.result() if plan else None


def same_image(a, b):
    """qemu-img compare on host-c (guest-visible contents; -U: the guest has one of them open)."""
    res = virtlab("exec", HOST_C, "--", "qemu-img", "compare", "-U", a, b, check=False)
    return res.returncode == 0


def pool_volumes(labh, pool_name):
    pool = labh.libvirt(HOST_C).storagePoolLookupByName(pool_name)
    pool.refresh(0)
    return pool.listVolumes()


@pytest.fixture
def tiny_pool(labh):
    """Pool bc5-tiny on host-c: a dir pool on a 64 KiB tmpfs, defined but not started."""
    path = "%s/bc5-tiny" % LOCAL
    virtlab("exec", HOST_C, "--", "mkdir", "-p", path)
    virtlab("exec", HOST_C, "--", "mount", "-t", "tmpfs", "-o", "size=64k", "bc5-tiny", path)
    conn = labh.libvirt(HOST_C)
    if "bc5-tiny" in conn.listStoragePools() + conn.listDefinedStoragePools():  # left by an interrupted run
        stale = conn.storagePoolLookupByName("bc5-tiny")
        if stale.isActive():
            stale.destroy()
        stale.undefine()
    pool = conn.storagePoolDefineXML("<pool type='dir'><name>bc5-tiny</name><target><path>%s</path></target></pool>"
                                     % path, 0)
    try:
        yield pool
    finally:
        if pool.isActive():
            pool.destroy()
        pool.undefine()
        virtlab("exec", HOST_C, "--", "umount", path, check=False)
        virtlab("exec", HOST_C, "--", "rmdir", path, check=False)


@pytest.fixture
def local_volume(labh):
    """The name of a volume of pool `local` on host-c, deleted through libvirt at the end (after the guest)."""
    made = []

    def volume(name):
        made.append(name)
        return name
    yield volume
    for name in made:
        if name in pool_volumes(labh, "local"):
            labh.libvirt(HOST_C).storagePoolLookupByName("local").storageVolLookupByName(name).delete(0)


def test_pool_volume_created_copied_pivoted(labh, local_volume, tiny_pool, make_guest):
    name = make_guest("bc5-pool", HOST_C, "--disk-fill", "8")
    volume = local_volume("%s-vol.qcow2" % name)
    shared, path = "%s/%s.qcow2" % (SHARED, name), "%s/%s" % (LOCAL, volume)
    args = {"name": name, "disk": "vda", "dest_pool": "local", "dest_volume": volume}
    snap = invariant.Snapshot(labh, name)
    before = live_disk(labh, name)
    assert before == ("file", shared, False)

    # Unknown and inactive pools: refused, nothing touched.
    refusals(labh, name, [
        ({"dest_pool": "bc5-nope", "dest_volume": volume}, "storage pool 'bc5-nope' does not exist on this host"),
        ({"dest_pool": "bc5-tiny", "dest_volume": volume}, "storage pool 'bc5-tiny' is not active"),
    ], before)
    tiny_pool.create(0)
    plan = refusals(labh, name, [
        ({"dest_pool": "bc5-tiny", "dest_volume": volume}, "not enough space in pool bc5-tiny"),
    ], before, check_mode_args=args)
    assert plan["changed"] and plan["state"] == "planned" and not plan.get("failed"), plan
    assert plan["plan"]["create_volume"] is True and plan["new_source"] == path
    assert volume not in pool_volumes(labh, "local") and pool_volumes(labh, "bc5-tiny") == []

    res = blockcopy_c(args)
    assert res["changed"] and res["pivoted"] and res["volume_created"] is True and not res.get("failed"), res
    assert (res["old_source"], res["new_source"], res["dest_kind"]) == (shared, path, "volume")
    assert res["persistent_updated_by"] == "libvirt"
    assert live_disk(labh, name) == ("file", path, False)
    assert live_disk(labh, name, inactive=True)[:2] == ("file", path)
    vol = labh.libvirt(HOST_C).storagePoolLookupByName("local").storageVolLookupByName(volume)
    assert vol.path() == path and vol.info()[1] == DISK_BYTES
    assert same_image(shared, path), "the volume does not hold the guest's data"

    again = blockcopy_c(dict(args, disk=shared))
    assert again["changed"] is False and again["state"] == "done" and not again.get("failed"), again
    invariant.check(labh, name, expect_on=HOST_C, snapshot=snap)


@pytest.fixture
def nbd_export(labh):
    """qemu-nbd on storage-1 exporting a zeroed raw image of the guests' disk size; stopped by its pid."""
    served = []

    def export(name):
        image, pidfile = "/srv/bc5-nbd/%s.raw" % name, "/srv/bc5-nbd/%s.pid" % name
        virtlab("exec", STORAGE, "--", "mkdir", "-p", "/srv/bc5-nbd")
        virtlab("exec", STORAGE, "--", "qemu-img", "create", "-q", "-f", "raw", image, str(DISK_BYTES))
        virtlab("exec", STORAGE, "--", "qemu-nbd", "--fork", "--persistent", "--shared=4", "-f", "raw",
                "-x", name, "-b", STORAGE_IP, "-p", str(NBD_PORT), "--pid-file", pidfile, image)
        with open(labh.host_path(STORAGE, pidfile)) as f:
            served.append((int(f.read().strip()), image, pidfile))
        return "nbd://%s:%d/%s" % (STORAGE_IP, NBD_PORT, name), labh.host_path(STORAGE, image)
    yield export
    for pid, image, pidfile in served:
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmdline = f.read()
        except OSError:  # it ended already
            cmdline = b""
        if b"qemu-nbd" in cmdline and image.encode() in cmdline:
            os.kill(pid, 15)
            deadline = time.monotonic() + 10
            while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        virtlab("exec", STORAGE, "--", "rm", "-f", image, pidfile)
    virtlab("exec", STORAGE, "--", "rmdir", "/srv/bc5-nbd", check=False)


@pytest.fixture
def gluster_image(labh):
    """A zeroed raw image on the GlusterFS volume (made through host-c's FUSE mount), removed at the end."""
    made = []

    def image(name):
        path = "%s/%s-gluster.raw" % (SHARED, name)
        virtlab("exec", HOST_C, "--", "qemu-img", "create", "-q", "-f", "raw", path, str(DISK_BYTES))
        made.append(path)
        return "gluster://%s/vmstore/%s-gluster.raw" % (STORAGE_IP, name), path
    yield image
    for path in made:
        virtlab("exec", HOST_C, "--", "rm", "-f", path)


def test_network_targets_nbd_and_gluster(labh, nbd_export, gluster_image, make_guest):
    name = make_guest("bc5-net", HOST_C, "--disk-fill", "8")
    # back: where `guest rm` cleans up after a failure too
    shared, back = "%s/%s.qcow2" % (SHARED, name), "%s/%s.qcow2" % (LOCAL, name)
    nbd, nbd_image = nbd_export(name)
    gluster, gluster_path = gluster_image(name)
    snap = invariant.Snapshot(labh, name)
    before = live_disk(labh, name)

    refusals(labh, name, [
        ({"dest": nbd}, "pass reuse_external: true"),
        ({"dest": "nbd://%s:%d/%s" % (STORAGE_IP, NBD_CLOSED_PORT, name), "reuse_external": True},
         "Starting the block copy of vda to nbd://%s:%d/%s failed" % (STORAGE_IP, NBD_CLOSED_PORT, name)),
        ({"dest": "rbd://%s/pool/%s" % (STORAGE_IP, name), "reuse_external": True}, "protocol 'rbd' is not supported"),
    ], before)

    # Mirror without pivot, then abort: the guest stays on its disk.
    nbd_args = {"name": name, "disk": "vda", "dest": nbd, "reuse_external": True}
    res = blockcopy_c(dict(nbd_args, pivot=False))
    assert res["changed"] and res["mirroring"] and res["state"] == "ready" and not res.get("failed"), res
    assert live_disk(labh, name) == ("file", shared, True)
    aborted = blockcopy_c(dict(nbd_args, abort=True))
    assert aborted["aborted"] and aborted["new_source"] == shared and not aborted.get("failed"), aborted
    assert live_disk(labh, name) == before and not labh.domain(HOST_C, name).blockJobInfo("vda", 0)

    # Copy and pivot onto the NBD export: live and persistent definitions name it, the export holds the data.
    res = blockcopy_c(nbd_args)
    assert res["changed"] and res["pivoted"] and not res.get("failed"), res
    assert (res["old_source"], res["new_source"], res["dest_kind"], res["format"]) == (shared, nbd, "network", "raw")
    assert res["persistent_updated_by"] == "libvirt"
    assert live_disk(labh, name) == ("network", nbd, False)
    assert live_disk(labh, name, inactive=True)[:2] == ("network", nbd)
    with open(nbd_image, "rb") as f:
        data = f.read(FILL + 4096)
    assert data[:FILL] == b"\x5a" * FILL and data[FILL:] == bytes(4096), "the export does not hold the guest's data"
    again = blockcopy_c(dict(nbd_args, disk=shared))
    assert again["changed"] is False and again["state"] == "done" and not again.get("failed"), again

    # From the NBD export to a GlusterFS image (network to network), then back to a file.
    res = blockcopy_c({"name": name, "disk": "vda", "dest": gluster, "reuse_external": True})
    assert res["pivoted"] and res["old_source"] == nbd and not res.get("failed"), res
    assert res["new_source"] == "gluster://%s:24007/vmstore/%s-gluster.raw" % (STORAGE_IP, name)
    assert live_disk(labh, name)[:2] == ("network", res["new_source"])
    assert live_disk(labh, name, inactive=True)[:2] == ("network", res["new_source"])
    res = blockcopy_c({"name": name, "disk": "vda", "dest": back, "format": "qcow2", "remove_source": True})
    assert res["pivoted"] and res["source_removed"] is False and not res.get("failed"), res
    assert live_disk(labh, name) == ("file", back, False) and live_disk(labh, name, inactive=True)[:2] == ("file", back)
    assert same_image(shared, back), "the data did not survive path -> nbd -> gluster -> path"
    assert os.path.exists(nbd_image) and exists_c(labh, gluster_path), "a network target was deleted"
    invariant.check(labh, name, expect_on=HOST_C, snapshot=snap)


def exists_c(labh, path):
    return os.path.exists(labh.host_path(HOST_C, path))
