"""recover.yml on the lab (issue 7): host-a dies like a power loss; its guest is restarted on a
survivor from the definitions backup on shared storage only once fencing is confirmed; when host-a
comes back, the rejoin step removes its stale definition. Judged from every libvirtd and the guest's
heartbeat (a fresh boot, heard from the new host), never from the playbooks' own reports.

host-a is powered on again at teardown whatever happened, so later tests find a whole lab."""
import glob
import json
import os
import time

import pytest

from support import invariant
from support.lab import run_playbook, virtlab

GUEST = "rc7-guest"
DEAD = "host-a"
SURVIVORS = ("host-b", "host-c")
DEFINITIONS = "/var/lib/libvirt/images/.kvmops/definitions"
ONLY_OURS = ["-e", json.dumps({"evacuation_guests": [GUEST]})]
RECOVER = ["-e", "dead_host=%s" % DEAD] + ONLY_OURS
PLAYBOOK_TIMEOUT = 240  # a run that hangs on the dead host fails the test instead of stalling the suite


@pytest.fixture
def guest_on_doomed_host(labh, make_guest):
    """GUEST on host-a's shared storage. Teardown powers host-a on first (make_guest's removal,
    which runs after this, needs host-a's libvirtd), then drops our backups."""
    name = make_guest(GUEST, DEAD, "--storage", "shared")
    yield name
    virtlab("fault", "power-on", DEAD, check=False)
    for path in glob.glob(os.path.join(labh.host_path("host-b", DEFINITIONS), "*", name + ".xml")):
        os.remove(path)


def backups(labh, host):
    """{guest: definition} of the backup of `host`, read through host-b (it is on shared storage)."""
    directory = os.path.join(labh.host_path("host-b", DEFINITIONS), host)
    return dict((os.path.basename(path)[:-4], open(path).read()) for path in glob.glob(directory + "/*.xml"))


def recoverable(labh):
    """What a refused recovery must leave as it is: on the survivors, every domain named in host-a's
    backup (all it could start), and every backup file of every host with its content."""
    names = set(backups(labh, DEAD))
    state = dict((host, sorted((dom.name(), dom.state()[0], bool(dom.isPersistent()))
                               for dom in labh.libvirt(host).listAllDomains(0) if dom.name() in names))
                 for host in SURVIVORS)
    root = labh.host_path("host-b", DEFINITIONS)
    state["backups"] = sorted((os.path.relpath(path, root), open(path).read())
                              for path in glob.glob(os.path.join(root, "*", "*.xml")))
    return state


def running_on(labh, name, hosts):
    found = []
    for host in hosts:
        conn = labh.libvirt(host)
        if name in [dom.name() for dom in conn.listAllDomains(0)] and conn.lookupByName(name).isActive():
            found.append(host)
    return found


def ok(res):
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    return res.stdout


def test_dead_host_is_recovered_only_when_fenced_then_rejoins_without_its_stale_copy(labh, guest_on_doomed_host):
    name = guest_on_doomed_host
    started = time.monotonic()
    uuid = labh.domain(DEAD, name).UUIDString()
    first_boot = labh.heartbeat(name)["boot_id"]
    times = {}

    # --- the scheduled backup: host-a's definitions on shared storage; a re-run changes nothing ---------
    res, times["backup"] = run_playbook("backup_definitions.yml", limit=DEAD, timeout=PLAYBOOK_TIMEOUT)
    ok(res)
    assert "<uuid>%s</uuid>" % uuid in backups(labh, DEAD)[name]
    res, dummy = run_playbook("backup_definitions.yml", limit=DEAD, timeout=PLAYBOOK_TIMEOUT)
    assert "changed=0" in ok(res).split("PLAY RECAP")[-1], res.stdout[-2000:]

    # --- power loss: QEMU killed, libvirtd gone, link down ---------------------------------------------
    virtlab("fault", "power-off", DEAD)
    last = labh.heartbeat(name)
    time.sleep(2)
    assert labh.heartbeat(name)["counter"] == last["counter"], "the guest still runs after power-off"

    # --- no fencing: refused, nothing started or written; rejoin refused while host-a is unreachable ---
    before = recoverable(labh)
    res, dummy = run_playbook("recover.yml", *RECOVER, timeout=PLAYBOOK_TIMEOUT)
    assert res.returncode != 0 and "fencing is not confirmed" in res.stdout, res.stdout[-3000:]
    res, dummy = run_playbook("recover.yml", "-e", "rejoin=true", *RECOVER, timeout=PLAYBOOK_TIMEOUT)
    assert res.returncode != 0 and "Refusing to rejoin %s: it does not answer" % DEAD in res.stdout, res.stdout[-3000:]
    assert recoverable(labh) == before
    assert running_on(labh, name, SURVIVORS) == []

    # --- fenced: a fresh boot on one survivor, whose backup now holds the guest -------------------------
    res, times["recover"] = run_playbook("recover.yml", "-e", "fenced=true", *RECOVER, timeout=PLAYBOOK_TIMEOUT)
    assert " moved" in ok(res), res.stdout[-3000:]
    placed = running_on(labh, name, SURVIVORS)
    assert len(placed) == 1, placed
    hb = labh.wait_new_boot(name, first_boot)
    assert hb["host"] == placed[0], "the new boot's heartbeat comes from %s, the guest runs on %s" % (hb["host"], placed)
    assert "<uuid>%s</uuid>" % uuid in backups(labh, placed[0])[name]

    # --- host-a comes back with its stale definition (shut off: nothing starts it) ----------------------
    virtlab("fault", "power-on", DEAD)
    assert (DEAD, "shutoff", True) in labh.locate(name), labh.locate(name)

    # --- rejoin: the stale definition goes, and with it host-a's backup of the guest --------------------
    res, times["rejoin"] = run_playbook("recover.yml", "-e", "rejoin=true", *RECOVER, timeout=PLAYBOOK_TIMEOUT)
    assert "runs on %s; here: undefine" % placed[0] in ok(res), res.stdout[-3000:]
    host, hb = invariant.check(labh, name, expect_on=placed[0], expect_reboot=True)
    assert hb["boots"] == [first_boot, hb["boot_id"]], hb["boots"]
    assert name not in backups(labh, DEAD)
    res, dummy = run_playbook("recover.yml", "-e", "rejoin=true", *RECOVER, timeout=PLAYBOOK_TIMEOUT)
    assert "changed=0" in ok(res).split("PLAY RECAP")[-1], res.stdout[-2000:]
    print("recovered %s on %s; backup %.1f s, recover %.1f s, rejoin %.1f s, whole test %.1f s" % (
        name, host, times["backup"], times["recover"], times["rejoin"], time.monotonic() - started))
