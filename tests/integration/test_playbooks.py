"""migrate.yml and storage_migrate.yml on the lab (issue 7), judged from libvirt on every host and
the guest's heartbeat, never from the playbook's own report."""
import os
import xml.etree.ElementTree as ET

from support import invariant
from support.lab import run_playbook, virtlab


def test_migrate_playbook_moves_one_guest_and_a_rerun_changes_nothing(labh, make_guest):
    name = make_guest("pb-mig", "host-a")
    snap = invariant.Snapshot(labh, name)
    extra = ["-e", "guest=%s" % name, "-e", "source=host-a", "-e", "dest=host-b"]
    res, took = run_playbook("migrate.yml", *extra)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "[WARNING]" not in res.stdout + res.stderr, res.stderr[-4000:]  # e.g. a templated argument dict
    invariant.check(labh, name, expect_on="host-b", snapshot=snap)
    # The same command again: the guest is there already; no preflight, no migration, no change.
    res, dummy = run_playbook("migrate.yml", *extra)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "changed=0" in res.stdout.split("PLAY RECAP")[-1], res.stdout[-2000:]
    assert "is already on host-b" in res.stdout
    invariant.check(labh, name, expect_on="host-b", snapshot=snap)
    print("migrate.yml took %.1f s" % took)


def test_storage_migrate_playbook_moves_a_disk_online(labh, make_guest):
    name = make_guest("pb-stor", "host-a", "--storage", "local")
    snap = invariant.Snapshot(labh, name)
    dest_path = "/var/lib/libvirt/images/%s-moved.qcow2" % name
    res, took = run_playbook("storage_migrate.yml", "-e", "host=host-a", "-e", "guest=%s" % name,
                             "-e", "disk=vda", "-e", "dest_path=%s" % dest_path)
    try:
        assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
        assert "[WARNING]" not in res.stdout + res.stderr, res.stderr[-4000:]
        invariant.check(labh, name, expect_on="host-a", snapshot=snap)
        dom = labh.domain("host-a", name)
        for flags in (0, 2):  # live XML, then the persistent definition (VIR_DOMAIN_XML_INACTIVE)
            source = ET.fromstring(dom.XMLDesc(flags)).find("./devices/disk[@device='disk']/source")
            assert source.get("file") == dest_path, (flags, ET.tostring(source))
        print("storage_migrate.yml took %.1f s" % took)
    finally:
        # The copy lives on shared storage under a name `guest rm` does not know.
        virtlab("guest", "rm", name, check=False)
        try:
            os.remove(labh.host_path("host-a", dest_path))
        except OSError:
            pass
