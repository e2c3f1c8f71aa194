"""THE exactly-one-host invariant, checked after every migration attempt in every test.

After any attempt, success or failure, the guest runs on exactly one host; its persistent
definition exists exactly where it runs (when it is persistent); nothing of it is left on
any other host; and its heartbeat continued from before: same boot, counter increased,
no kernel oops, heard from the host it runs on. We look at every hypervisor's libvirtd
and the guest's serial logs; we never trust a return code.
"""

from support.lab import GuestKernelOops

RUNNING_STATES = ("running", "paused", "blocked")


class Snapshot:
    """The guest's heartbeat before an operation, to compare with afterwards."""

    def __init__(self, labh, name):
        self.name = name
        self.before = labh.heartbeat(name)
        assert self.before["counter"] > 0, "guest %s has no heartbeat before the test" % name


def check(labh, name, expect_on=None, snapshot=None, persistent=True, expect_paused=False, expect_reboot=False,
          timeout=60):
    """Assert the invariant; return (host it runs on, heartbeat after).

    expect_on: the host the guest must run on (None: any single host).
    persistent: True if the guest must be persistently defined exactly where it runs, False if
    it must be transient everywhere, None to skip the persistence check.
    expect_reboot: a cold migration restarts the guest: then the newest boot must have a
    heartbeat from the host it runs on, and earlier boots are allowed.
    """
    found = labh.locate(name)
    running = [(h, s) for h, s, dummy_persistent in found if s in RUNNING_STATES]
    assert len(running) == 1, "guest %s must run on exactly one host, found %s" % (name, found)
    host, state = running[0]
    if expect_on:
        assert host == expect_on, "guest %s runs on %s, expected %s (%s)" % (name, host, expect_on, found)
    others = [(h, s, p) for h, s, p in found if h != host]
    assert not others, "guest %s left on other hosts: %s" % (name, others)
    if persistent is not None:
        is_persistent = [p for h, dummy_state, p in found if h == host][0]
        assert is_persistent == persistent, "guest %s persistent=%s on %s, expected %s" % (
            name, is_persistent, host, persistent)
    if expect_paused:
        assert state == "paused", "guest %s is %s on %s, expected paused" % (name, state, host)
        return host, labh.heartbeat(name)
    assert state == "running", "guest %s is %s on %s, expected running" % (name, state, host)
    hb = labh.wait_heartbeat_after(name, snapshot.before["counter"] if snapshot else 0, timeout=timeout)
    # A fresh heartbeat line must come from the host it runs on, after the one we saw before.
    hb = labh.wait_heartbeat_after(name, hb["counter"], timeout=timeout)
    assert hb["host"] == host, "guest %s: newest heartbeat from %s but it runs on %s" % (name, hb["host"], host)
    if hb["oops"]:
        raise GuestKernelOops("guest %s: kernel oops: %s" % (name, hb["oops_lines"]))
    if expect_reboot:
        return host, hb
    assert len(hb["boots"]) == 1, "guest %s rebooted (boot ids %s)" % (name, hb["boots"])
    if snapshot:
        assert hb["boot_id"] == snapshot.before["boot_id"], "guest %s rebooted" % name
    return host, hb
