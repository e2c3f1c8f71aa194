"""virt_migrate_preflight on the lab: a healthy pair passes; each problem, made real on the lab,
fails the right check with a remedy. Faults only on host-c, always undone in `finally`.

Guests are named pf-*; at most two of them run at a time."""
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from support import invariant
from support.lab import virtlab

SRC, HEALTHY_DEST, FAULT_DEST = "host-a", "host-b", "host-c"
MIGRATION_RANGE = "49152-49215/tcp"


@pytest.fixture
def preflight(lab_module):
    """preflight(args, host=SRC, check_mode=False) -> virt_migrate_preflight's result, with its wall time."""

    def run(args, host=SRC, check_mode=False):
        t0 = time.monotonic()
        res = lab_module(host, "virt_migrate_preflight", args, check_mode=check_mode)
        res["_wall_s"] = round(time.monotonic() - t0, 2)
        assert "checks" in res, res
        return res

    return run


def named(res, name, guest=None, disk=None):
    """The checks called `name` (of `guest`; of its disk `disk`: a storage check's detail starts with it)."""
    return [c for c in res["checks"] if c["name"] == name and (guest is None or c.get("guest") == guest)
            and (disk is None or c["detail"].startswith(disk + " "))]


def one(res, name, guest=None, disk=None):
    found = named(res, name, guest, disk)
    assert len(found) == 1, (name, guest, res["checks"])
    return found[0]


def no_probe_files_left(labh, host, directory):
    return not [p for p in Path(labh.host_path(host, directory)).iterdir() if p.name.startswith("kvmops-preflight-")]


def test_healthy_pair_passes_and_changes_nothing(labh, make_guest, preflight):
    name = make_guest("pf-ok")
    snap = invariant.Snapshot(labh, name)
    res = preflight({"dest": HEALTHY_DEST, "guests": [name], "measure_bandwidth": True, "bandwidth_seconds": 2})
    assert not res.get("failed") and res["changed"] is False, res["summary"]
    assert res["summary"]["fail"] == 0, res["summary"]
    for check_name in ("connectivity.ssh", "connectivity.libvirt", "connectivity.distinct_hosts", "versions.libvirt",
                       "versions.qemu", "firewall.ssh", "firewall.migration_address", "firewall.migration_ports",
                       "bandwidth"):
        assert one(res, check_name)["status"] == "ok", one(res, check_name)
    for check_name in ("versions.machine_type", "cpu.model", "capacity.memory"):
        assert one(res, check_name, name)["status"] == "ok", one(res, check_name, name)
    for disk in ("vda", "vdb"):   # the system disk and the heartbeat disk, both on the shared storage
        assert one(res, "storage.disk", name, disk)["status"] == "ok", one(res, "storage.disk", name, disk)
    assert "probe file written here was read on the destination via ssh" in one(res, "storage.disk", name, disk="vda")["detail"]
    # Ports in use (another engineer's migration to host-b) are skipped, the others all answer.
    assert re.match(r"all \d+ tested ports of 49152-49215 on host-b accepted", one(res, "firewall.migration_ports")["detail"])
    assert res["bandwidth"]["mib_s"] > 0 and res["estimates"][0]["guest"] == name
    assert res["estimates"][0]["seconds"] is not None
    # An idle guest: measured (page sampling, bounded) and predicted to move with plain pre-copy.
    assert res["dirty_rate"]["results"][0]["status"] == "measured", res["dirty_rate"]
    assert res["dirty_rate"]["elapsed_s"] <= res["dirty_rate"]["budget_s"] + 1, res["dirty_rate"]
    assert res["estimates"][0]["strategy"] in ("precopy_steps", "precopy"), res["estimates"][0]
    assert res["estimates"][0]["prediction"]["dirty_rate_source"] == "measured"
    assert res["destination"]["hostname"] == HEALTHY_DEST and res["destination"]["migration_ports"] == "49152-49215"
    # Proof through the destination's libvirt storage pool instead of the SSH session.
    via_libvirt = preflight({"dest": HEALTHY_DEST, "guests": [name], "storage_probe": "libvirt"}, check_mode=True)
    assert not via_libvirt.get("failed"), via_libvirt["summary"]
    assert "via libvirt storage pool images" in one(via_libvirt, "storage.disk", name, disk="vda")["detail"]
    # Read-only: no probe left, the guest untouched.
    assert no_probe_files_left(labh, SRC, "/var/lib/libvirt/images")
    invariant.check(labh, name, expect_on=SRC, snapshot=snap)
    print("preflight 1 guest: module %.2fs, wall %.2fs (bandwidth %.0f MiB/s)" % (
        res["timings"]["total_s"], res["_wall_s"], res["bandwidth"]["mib_s"]))


def test_ten_guests_under_five_seconds(labh, make_guest, preflight):
    """Two running guests and eight defined (shut off, so the 2-core lab is not loaded) ones."""
    running = [make_guest("pf-t0"), make_guest("pf-t1")]
    conn = labh.libvirt(SRC)
    template = conn.lookupByName(running[0]).XMLDesc(2)  # VIR_DOMAIN_XML_INACTIVE
    defined = []
    try:
        for i in range(2, 10):
            name = "pf-t%d" % i
            virtlab("guest", "rm", name, check=False)
            virtlab("exec", SRC, "--", "qemu-img", "create", "-q", "-f", "qcow2",
                    "/var/lib/libvirt/images/%s.qcow2" % name, "64M")
            xml = re.sub(r"<uuid>.*?</uuid>", "", template)
            xml = xml.replace("<name>%s</name>" % running[0], "<name>%s</name>" % name)
            xml = xml.replace("/%s.qcow2" % running[0], "/%s.qcow2" % name).replace("/%s.log" % running[0], "/%s.log" % name)
            conn.defineXML(xml)
            defined.append(name)
        guests = running + defined
        res = preflight({"dest": HEALTHY_DEST, "guests": guests})
        assert not res.get("failed"), res["summary"]
        assert len(named(res, "storage.disk", disk="vda")) == 10 and len(named(res, "cpu.model")) == 10
        assert res["timings"]["total_s"] < 5.0, res["timings"]
        print("preflight 10 guests: module %.2fs, wall %.2fs, %d checks" % (
            res["timings"]["total_s"], res["_wall_s"], res["summary"]["total"]))
    finally:
        for name in defined:
            virtlab("guest", "rm", name, check=False)


def test_firewall_closing_the_migration_range_fails_with_remedy(labh, make_guest, preflight):
    name = make_guest("pf-fw")
    virtlab("exec", FAULT_DEST, "--", "firewall-cmd", "--remove-port=" + MIGRATION_RANGE)
    try:
        res = preflight({"dest": FAULT_DEST, "guests": [name]})
    finally:
        virtlab("exec", FAULT_DEST, "--", "firewall-cmd", "--add-port=" + MIGRATION_RANGE)
    assert virtlab("exec", FAULT_DEST, "--", "firewall-cmd", "--query-port=" + MIGRATION_RANGE).stdout.strip() == "yes"
    assert res.get("failed") and "firewall.migration_ports" in res["msg"]
    fw = one(res, "firewall.migration_ports")
    assert fw["status"] == "fail" and "64 of 64 migration ports blocked" in fw["detail"], fw
    assert "no route to host" in fw["detail"]
    assert "firewall-cmd --permanent --add-port=49152-49215/tcp" in fw["remedy"]
    # Only that: SSH and libvirt still work, and the summary names exactly the firewall.
    assert one(res, "firewall.ssh")["status"] == "ok" and one(res, "connectivity.libvirt")["status"] == "ok"
    assert res["summary"]["failed_checks"] == ["firewall.migration_ports"]
    # Reopened: passes again.
    again = preflight({"dest": FAULT_DEST, "guests": [name]}, check_mode=True)
    assert one(again, "firewall.migration_ports")["status"] == "ok"


def test_cpu_model_the_destination_cannot_offer(labh, make_guest, preflight):
    """The guest runs with qemu64, but its persistent definition (edited while it runs, as
    `virsh edit` does) asks for Skylake-Server, which TCG on host-c cannot provide
    (usable='no' in its domain capabilities): after a migration it would not start there."""
    name = make_guest("pf-cpu")
    snap = invariant.Snapshot(labh, name)
    conn = labh.libvirt(SRC)
    dom = conn.lookupByName(name)
    xml = dom.XMLDesc(2)
    root = ET.fromstring(xml)
    if root.find("cpu") is not None:
        root.remove(root.find("cpu"))
    cpu = ET.fromstring("<cpu mode='custom' match='exact' check='partial'><model fallback='forbid'>Skylake-Server"
                        "</model></cpu>")
    root.insert(list(root).index(root.find("os")) + 1, cpu)
    conn.defineXML(ET.tostring(root, encoding="unicode"))
    res = preflight({"dest": FAULT_DEST, "guests": [name]})
    assert res.get("failed") and "cpu.persistent" in res["msg"]
    live = one(res, "cpu.model", name)
    assert live["status"] == "ok", live
    c = one(res, "cpu.persistent", name)
    assert c["status"] == "fail" and "Skylake-Server" in c["detail"] and "would not start there" in c["detail"], c
    assert "avx512f" in c["detail"]
    assert "cpu_baseline" in c["remedy"] and "baseline" in c["remedy"]
    invariant.check(labh, name, expect_on=SRC, snapshot=snap)


def test_local_disk_needs_copy_storage(labh, make_guest, preflight):
    name = make_guest("pf-local", SRC, "--storage", "local")
    res = preflight({"dest": FAULT_DEST, "guests": [name]})
    disk = one(res, "storage.disk", name, disk="vda")
    assert disk["status"] == "warn", disk
    assert "vda (/var/lib/libvirt/local/pf-local.qcow2)" in disk["detail"] and "copy_storage" in disk["detail"]
    assert "pool local" in disk["detail"] and "copy_storage: all" in disk["remedy"]
    assert not res.get("failed"), res["summary"]  # a warning only, with fail_on: fail
    strict = preflight({"dest": FAULT_DEST, "guests": [name], "fail_on": "warn"}, check_mode=True)
    assert strict.get("failed") and "storage.disk (pf-local)" in strict["msg"]
    assert no_probe_files_left(labh, SRC, "/var/lib/libvirt/local")


def test_missing_network_on_destination(labh, make_guest, bridge_network_on_source, preflight):
    name = make_guest("pf-net-g", SRC, "--network", bridge_network_on_source)
    res = preflight({"dest": FAULT_DEST, "guests": [name]})
    assert res.get("failed") and "network.interface" in res["msg"]
    c = one(res, "network.interface", name)
    assert c["status"] == "fail" and "network 'pf-net' is not defined on the destination" in c["detail"], c
    assert "net-define" in c["remedy"]


def test_destination_memory_too_small(labh, make_guest, preflight):
    """A 512 MiB guest against the memory host-c really has available, with a margin (memory
    the host keeps for itself) set so that guest + margin exceeds it by 384 MiB."""
    name = make_guest("pf-mem", SRC, "--memory", "512")
    stats = labh.libvirt(FAULT_DEST).getMemoryStats(-1, 0)
    available_mib = (stats["free"] + stats.get("buffers", 0) + stats.get("cached", 0)) // 1024
    res = preflight({"dest": FAULT_DEST, "guests": [name], "memory_margin_mib": available_mib - 128})
    assert res.get("failed") and "capacity.memory" in res["msg"]
    c = one(res, "capacity.memory", name)
    assert c["status"] == "fail" and "guest needs 512.0 MiB" in c["detail"] and "only" in c["detail"], c
    assert "Free memory on the destination" in c["remedy"]
    fits = preflight({"dest": FAULT_DEST, "guests": [name]}, check_mode=True)
    assert one(fits, "capacity.memory", name)["status"] == "ok"


def test_destination_libvirtd_down(labh, make_guest, preflight):
    name = make_guest("pf-down")
    virtlab("fault", "stop-libvirtd", FAULT_DEST)
    try:
        res = preflight({"dest": FAULT_DEST, "guests": [name]})
    finally:
        virtlab("fault", "start-libvirtd", FAULT_DEST)
    assert res.get("failed") and "connectivity.libvirt" in res["msg"]
    c = one(res, "connectivity.libvirt")
    assert c["status"] == "fail" and "qemu+ssh://host-c/system" in c["detail"], c
    assert "Start the libvirt daemon" in c["remedy"]
    assert res["summary"]["skipped"], res["summary"]
    # What does not need libvirt on the destination was still checked.
    assert one(res, "connectivity.ssh")["status"] == "ok"
    assert one(res, "storage.disk", name, disk="vda")["status"] == "ok"
    assert res["timings"]["total_s"] < 10, res["timings"]
