"""The bad-input suite (issue 8): every case gets a clear message naming the problem,
changed=false, and we prove that nothing changed on ANY host: the domains, pools, networks
and files of every hypervisor are compared before and after the whole suite."""
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from support import invariant
from support.lab import run_module, run_playbook

GUEST = "bi-guest"
LOCAL_GUEST = "bi-local"


def host_state(labh):
    """What a bad input must never change, on every hypervisor."""
    state = {}
    for host in labh.hypervisors:
        conn = labh.libvirt(host)
        state[host] = {
            "domains": sorted((d.name(), d.state()[0], bool(d.isPersistent())) for d in conn.listAllDomains(0)),
            "pools": sorted((p.name(), bool(p.isActive())) for p in conn.listAllStoragePools(0)),
            "networks": sorted((n.name(), bool(n.isActive())) for n in conn.listAllNetworks(0)),
            "local_files": sorted(os.listdir(labh.host_path(host, "/var/lib/libvirt/local"))),
            "kvmops_state": sorted(os.listdir(labh.host_path(host, "/var/lib/libvirt")))
        }
    state["shared_files"] = sorted(os.listdir(labh.host_path("host-a", "/var/lib/libvirt/images")))
    return state


MODULE_CASES = [
    # (module, host, args, words expected in msg)
    ("virt_migrate", "host-a", {"name": "no-such-guest", "dest": "host-b"}, "No domain"),
    ("virt_migrate", "host-a", {"name": "no such guest é", "dest": "host-b"}, "No domain"),
    ("virt_migrate", "host-a", {"name": GUEST, "dest": "host-a"}, "source host itself"),
    ("virt_migrate", "host-a", {"name": GUEST, "dest": "qemu+ssh://"}, "names no host"),
    # Issue 15 item 7: refused before any connection, with the accepted forms (docs/security.md).
    ("virt_migrate", "host-a", {"name": GUEST, "dest": "qemu+ext://host-b/system?command=/tmp/x"}, "qemu+ext"),
    ("virt_migrate", "host-a", {"name": GUEST, "dest": "qemu+ssh://host-b/system?no_verify=1"}, "no_verify"),
    ("virt_migrate", "host-a", {"name": GUEST, "dest": "host-b;id"}, "not a host name"),
    ("virt_migrate", "host-a", {"name": GUEST, "dest": "host-b", "migrate_uri": "exec://x"}, "migrate_uri"),
    ("virt_migrate", "host-a", {"name": GUEST, "dest": "host-b", "transport": "carrier-pigeon"}, "transport"),
    ("virt_migrate", "host-a", {"name": GUEST, "dest": "host-b", "bandwidth": -5}, "bandwidth"),
    ("virt_migrate", "host-a", {"name": GUEST, "dest": "host-b", "bandwidth": 10 ** 9}, "bandwidth"),
    ("virt_migrate", "host-a", {"name": GUEST, "dest": "host-b", "max_downtime": 0}, "max_downtime"),
    ("virt_migrate", "host-a", {"name": GUEST, "dest": "host-b", "timeout": -1}, "timeout"),
    ("virt_migrate", "host-a", {"name": GUEST, "dest": "host-b", "tunnelled": True, "allow_postcopy": True},
     "tunnelled"),
    ("virt_migrate", "host-a", {"name": GUEST, "dest": "host-b", "mode": "offline"}, "mode=offline"),
    ("virt_migrate", "host-a", {"name": GUEST, "dest": "host-b", "migrate_disks": ["vda"]}, "copy_storage"),
    ("virt_migrate", "host-a", {"name": GUEST, "dest": "host-b", "copy_storage": "all", "migrate_disks": ["vdz"]},
     "vdz"),
    ("virt_migrate", "host-a", {"name": LOCAL_GUEST, "dest": "host-b"}, "not on storage shared"),
    ("virt_migrate", "host-a", {"name": GUEST, "dest": "no-such-host.invalid"}, "no-such-host.invalid"),
    ("virt_migrate", "host-a", {"name": GUEST, "dest": "host-b", "compression": {"methods": ["zlib"]}}, "zlib"),
    ("virt_migrate_info", "host-a", {"name": "no-such-guest"}, "No domain"),
    ("virt_migrate_control", "host-a", {"name": GUEST, "action": "set_bandwidth", "bandwidth": 5}, "No migration runs"),
    ("virt_migrate_control", "host-a", {"name": GUEST, "action": "set_max_downtime"}, "needs max_downtime"),
    ("virt_migrate_control", "host-a", {"name": "no-such-guest", "action": "abort"}, "No domain"),
    ("virt_migrate_preflight", "host-a", {"dest": "qemu:///system"}, "names no host"),
    ("virt_migrate_preflight", "host-a", {"dest": "-oProxyCommand=x"}, "not a host name"),
    ("virt_migrate_preflight", "host-a", {"dest": "host-b", "fail_on": "sometimes"}, "fail_on"),
    ("virt_blockcopy", "host-a", {"name": GUEST, "disk": "vdz", "dest": "/var/lib/libvirt/local/x.qcow2"}, "vdz"),
    ("virt_blockcopy", "host-a", {"name": GUEST, "disk": "vda", "dest": "/var/lib/libvirt/local/x.vmdk",
                                  "format": "vmdk"}, "format"),
    ("virt_blockcopy", "host-a", {"name": GUEST, "disk": "vda",
                                  "dest": "/var/lib/libvirt/images/%s.qcow2" % LOCAL_GUEST}, "exists"),
    ("virt_blockcopy", "host-a", {"name": "no-such-guest", "disk": "vda", "dest": "/var/lib/libvirt/local/y.qcow2"},
     "No domain"),
    ("virt_evacuate", "host-a", {"action": "recover", "hosts": ["host-b"]}, "dead_host"),
    ("virt_evacuate", "host-a", {"action": "evacuate", "hosts": ["host-b", "-oProxyCommand=x"]}, "not a host name"),
    ("virt_evacuate", "host-a", {"action": "teleport"}, "action"),
    ("virt_bridge_network", "host-a", {"name": "bi-net"}, "bridge"),
    ("virt_storage_pool", "host-a", {"name": "bi-pool", "type": "netfs", "target_path": "/mnt/x"}, "source_host"),
]


@pytest.fixture(scope="module")
def guests(labh):
    from support.lab import virtlab
    for name, storage in ((GUEST, "shared"), (LOCAL_GUEST, "local")):
        virtlab("guest", "rm", name, check=False)
        virtlab("guest", "create", name, "--on", "host-a", "--storage", storage)
    # blockcopy's "dest exists" case needs a file at the destination path.
    virtlab("exec", "host-a", "--", "qemu-img", "create", "-q", "-f", "qcow2",
            "/var/lib/libvirt/images/%s.qcow2" % LOCAL_GUEST, "16M")
    yield
    for name in (GUEST, LOCAL_GUEST):
        virtlab("guest", "rm", name, check=False)


def playbook(path, *args):
    return run_playbook(path, *args, timeout=600)[0]


def test_bad_input_suite_changes_nothing_anywhere(labh, guests):
    snaps = {name: invariant.Snapshot(labh, name) for name in (GUEST, LOCAL_GUEST)}
    before = host_state(labh)
    problems = []
    # Refusals touch nothing, so they can run side by side (the host-state comparison below
    # still sees any change); three at a time keeps the 2-core machine responsive.
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda case: run_module(case[1], case[0], case[2]), MODULE_CASES))
    for (module, host, args, words), res in zip(MODULE_CASES, results):
        clear = res.get("failed") is True and res.get("changed", False) is False
        if not clear or words.lower() not in res.get("msg", "").lower():
            problems.append((module, args, res.get("msg"), res.get("changed")))
    # Playbooks: a -l that matches no hypervisor, and recover without fencing.
    nomatch = playbook("playbooks/evacuate.yml", "-l", "no-such-host")
    if "no-such-host" not in nomatch.stdout + nomatch.stderr:
        problems.append(("evacuate.yml -l no-such-host", nomatch.returncode, nomatch.stdout[-500:]))
    unfenced = playbook("playbooks/recover.yml", "-e", "dead_host=host-c")
    if unfenced.returncode == 0 or "fenc" not in (unfenced.stdout + unfenced.stderr).lower():
        problems.append(("recover.yml unfenced", unfenced.returncode, unfenced.stdout[-800:]))
    assert problems == [], problems
    assert len(MODULE_CASES) + 2 >= 30
    assert host_state(labh) == before
    for name, snap in snaps.items():
        invariant.check(labh, name, expect_on="host-a", snapshot=snap)
