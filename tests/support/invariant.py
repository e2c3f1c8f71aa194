"""THE invariant, checked after every migration attempt in every lab test.

After any attempt, success or failure:
- the guest runs on exactly one host; its persistent definition exists exactly where it runs
  (when it is persistent); no other host has anything of it: no domain, no copied volume, and no
  migration or block job anywhere;
- its heartbeat continued: same boot, counter increased, no kernel oops, heard from the host it
  runs on;
- its memory never went back in time: no copy of it ever printed a counter that was already
  printed (on the same host or another) and the counter it writes to its disk on shared storage
  never fell behind one already printed (a source resumed after the destination's vCPUs ran, or a
  copy restored from older memory, fails here).
We look at every hypervisor's libvirtd, the guest's serial logs and its disk; we never trust a
return code.

Failures are typed so that the test run can tell them apart: ``GuestRolledBack`` (memory went
back in time), ``GuestStalled`` (the heartbeat stopped), ``GuestKernelOops`` (the known QEMU TCG
corruption signature, the only failure a test run may retry), plain AssertionError otherwise.
"""
import threading

# GuestKernelOops and GuestStalled are imported for the tests that import them from here.
from support.lab import GuestKernelOops, GuestStalled, lab_guests, lab_jobs, unknown_oops  # noqa: F401 pylint: disable=unused-import

RUNNING_STATES = ("running", "paused", "blocked")
# How far the disk counter may trail the newest printed one: the guest prints, then writes.
DISK_LAG = 3


class GuestRolledBack(AssertionError):
    """A copy of the guest ran from memory older than what another copy (or itself) had already run."""


class Snapshot:
    """The guest's heartbeat before an operation, to compare with afterwards."""

    def __init__(self, labh, name):
        self.name = name
        self.before = labh.heartbeat(name)
        assert self.before["counter"] > 0, "guest %s has no heartbeat before the test" % name


def check_history(labh, name):
    """No counter printed twice (on one host or two) and the disk never behind: memory never went
    back in time. Returns the highest counter per boot."""
    history = lab_guests.history(labh.lab, name)
    seen = {}  # (boot, counter) -> host
    highest = {}
    for host, lines in sorted(history.items()):
        last = {}
        for boot, counter in lines:
            if counter <= last.get(boot, 0):
                raise GuestRolledBack("guest %s: %s printed counter %d after %d (boot %s): its memory went back in "
                                      "time" % (name, host, counter, last[boot], boot))
            last[boot] = counter
            other = seen.get((boot, counter))
            if other is not None and other != host:
                raise GuestRolledBack("guest %s: counter %d of boot %s was printed on %s and on %s: a copy ran from "
                                      "memory another copy had already run" % (name, counter, boot, other, host))
            seen[(boot, counter)] = host
            highest[boot] = max(highest.get(boot, 0), counter)
    on_disk = lab_guests.disk_heartbeat(labh.lab, name)
    if on_disk is not None:
        boot, counter = on_disk
        if boot in highest and counter < highest[boot] - DISK_LAG:
            raise GuestRolledBack("guest %s: its disk holds counter %d of boot %s but %d was printed already: a copy "
                                  "wrote to the disk from older memory" % (name, counter, boot, highest[boot]))
    return highest


def check_no_leftovers(labh, name, host):
    """Nothing of the guest on any host but `host` (no domain, no local volume of it), and no
    migration or block job on it anywhere."""
    for other, state, persistent in labh.locate(name):
        assert other == host, "guest %s left on %s (%s, persistent=%s)" % (name, other, state, persistent)
    jobs = lab_jobs(labh.lab, name)
    assert not jobs, "guest %s: jobs still active: %s" % (name, jobs)
    volumes = [h for h in lab_guests.local_volumes(labh.lab, name) if h not in (host, lab_guests.home(labh.lab, name))]
    assert not volumes, "guest %s: a copy of its local disk is left on %s" % (name, ", ".join(volumes))


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
    check_no_leftovers(labh, name, host)
    if persistent is not None:
        is_persistent = [p for h, dummy_state, p in found if h == host][0]
        assert is_persistent == persistent, "guest %s persistent=%s on %s, expected %s" % (
            name, is_persistent, host, persistent)
    if expect_paused:
        assert state == "paused", "guest %s is %s on %s, expected paused" % (name, state, host)
        check_history(labh, name)
        return host, labh.heartbeat(name)
    assert state == "running", "guest %s is %s on %s, expected running" % (name, state, host)
    hb = labh.wait_heartbeat_after(name, snapshot.before["counter"] if snapshot else 0, timeout=timeout)
    # A fresh heartbeat line must come from the host it runs on, after the one we saw before.
    hb = labh.wait_heartbeat_after(name, hb["counter"], timeout=timeout)
    assert hb["host"] == host, "guest %s: newest heartbeat from %s but it runs on %s" % (name, hb["host"], host)
    if hb["oops"]:
        raise unknown_oops(name, hb["oops_lines"])
    check_history(labh, name)
    if expect_reboot:
        return host, hb
    assert len(hb["boots"]) == 1, "guest %s rebooted (boot ids %s)" % (name, hb["boots"])
    if snapshot:
        assert hb["boot_id"] == snapshot.before["boot_id"], "guest %s rebooted" % name
    return host, hb


def final_check(labh, name):
    """What holds after every lab test for every guest it made, whatever the test did to it: at most
    one active copy, no job left, definitions only where it runs, its memory never rolled back."""
    found = labh.locate(name)
    active = [h for h, s, dummy_persistent in found if s in RUNNING_STATES]
    assert len(active) <= 1, "guest %s is active on several hosts: %s" % (name, found)
    if active:
        defined_elsewhere = [(h, s) for h, s, persistent in found if persistent and h != active[0]]
        assert not defined_elsewhere, "guest %s runs on %s but is also defined on %s" % (
            name, active[0], defined_elsewhere)
    jobs = lab_jobs(labh.lab, name)
    assert not jobs, "guest %s: jobs still active: %s" % (name, jobs)
    check_history(labh, name)


class RollbackWatch:
    """Samples the counter the guest writes to its disk while an operation runs, and fails if it
    ever goes down within a boot: a stale copy writing while the real one runs shows only there
    (the serial logs of both would look fine on their own)."""

    def __init__(self, labh, name, interval_s=0.2):
        self.labh = labh
        self.name = name
        self.interval_s = interval_s
        self.problem = None
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rollback-watch-%s" % name, daemon=True)

    def _run(self):
        last = {}
        while not self._stop.wait(self.interval_s):
            sample = lab_guests.disk_heartbeat(self.labh.lab, self.name)
            if sample is None:
                continue
            self.samples += 1
            boot, counter = sample
            if counter < last.get(boot, 0) and self.problem is None:
                self.problem = ("guest %s: its disk counter went from %d back to %d (boot %s): a copy wrote from "
                                "older memory" % (self.name, last[boot], counter, boot))
            last[boot] = max(last.get(boot, 0), counter)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        if self.problem and exc[0] is None:
            raise GuestRolledBack(self.problem)
        return False
