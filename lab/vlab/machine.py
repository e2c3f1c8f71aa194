"""One lab host as a machine: its own root file system and its own systemd as PID 1.

The root file system is an overlay: the host image (images.py) read-only below, the host's own
writable layer above (`upper/`), mounted at `root/` in the control node's mount namespace. So a
host's changes (a package upgrade, a role's configuration) survive its reboots and power cuts
until `down` removes the layer, and a new host costs no copy of the image.

The machine boots with `systemd-nspawn -b` in the host's network namespace (net.py), below
supervisor.py, which boots it again after a reboot. Processes are found through the machine's
cgroup, never by name: its PID 1 ("the leader") is the process there whose innermost PID is 1.
Commands run inside with `nsenter -a` into the leader's namespaces.

Flags nspawn needs on this machine kind (docs/lab.md): `--register=no --keep-unit` (no system
bus here and PID 1 is not systemd); no system call filter (`SYSTEMD_SECCOMP=0`) and all
capabilities, because nspawn's defaults are made for confined containers and a lab host's root
must do what a real host's does (libvirt, QEMU, firewalld, FUSE mounts; post-copy migration,
which needs userfaultfd, works in the machines); and the device nodes QEMU and FUSE open.
"""
import os
import signal
import sys
import time

from . import config, net
from .proc import CLEAN_ENV, GaveUp, LabError, alive, identity, run, spawn, stop, wait_for

HYPERVISOR = "hypervisor"
STORAGE = "storage"
LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # where the vlab package is
# Where the machines' processes are found: the cgroup2 hierarchy if there is one (nspawn and the
# machines' systemds track processes there), else the v1 name=systemd one (supervisor.py).
HIERARCHIES = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd")
DEVICES = ("/dev/fuse", "/dev/net/tun", "/dev/kvm", "/dev/userfaultfd")
QEMU_PID_DIR = "/run/libvirt/qemu"   # libvirt's pid file of each running guest's QEMU, inside the host
BOOT_TIMEOUT = 120


class Machine:
    """A lab host and its entry in the lab state (release, image, supervisor)."""

    def __init__(self, name, role, record):
        self.name = name
        self.role = role
        self.record = record          # dict in state.json: mutated in place
        self.dir = config.host_dir(name)
        self.ip = config.host_ip(name)
        self.root = self.dir / "root"     # the machine's / as the control node sees it (no inner mounts)
        self.cgroup = "%s/%s" % (config.CGROUP, name)   # below each hierarchy (supervisor.py)
        self._leader = None

    def __repr__(self):
        return "Machine(%s)" % self.name

    # --- the root file system ------------------------------------------------------------
    def root_mounted(self):
        return is_mount_point(str(self.root))

    def mount_root(self, image):
        """Mount the overlay of `image` and this host's writable layer (created if new)."""
        if self.root_mounted():
            return False
        for sub in ("upper", "work", "root"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=%s,upperdir=%s,workdir=%s" % (
            image, self.dir / "upper", self.dir / "work"), str(self.root)],
            host=self.name, step="mount root file system")
        return True

    def unmount_root(self):
        if self.root_mounted():
            run(["umount", "-l", str(self.root)], host=self.name, step="unmount root file system", check=False)

    def file(self, path):
        """A path in the machine's own file system, readable whether it runs or not (mounts made
        inside the machine, /run and the shared storage, are not there: see root_path)."""
        return self.root / path.lstrip("/")

    # --- processes ------------------------------------------------------------------------
    def _cgroup_pids(self):
        pids = []
        for directory, dummy_dirs, files in os.walk(os.path.join(tracking_hierarchy(), self.cgroup)):
            if "cgroup.procs" in files:
                try:
                    with open(os.path.join(directory, "cgroup.procs")) as procs:
                        pids += [int(p) for p in procs.read().split()]
                except OSError:
                    pass
        return pids

    def leader(self):
        """Identity of the machine's PID 1 (systemd) as the control node sees it, or None."""
        if self._leader and alive(self._leader):
            return self._leader
        self._leader = None
        for pid in self._cgroup_pids():
            ns_pids = _ns_pids(pid)
            if len(ns_pids) > 1 and ns_pids[-1] == 1:
                self._leader = identity(pid)
                break
        return self._leader

    def host_pid(self, ns_pid):
        """The control node's pid of the process that is `ns_pid` inside the machine, or None."""
        for pid in self._cgroup_pids():
            ns_pids = _ns_pids(pid)
            if len(ns_pids) > 1 and ns_pids[-1] == ns_pid:
                return pid
        return None

    def running(self):
        return alive(self.record.get("supervisor")) and self.leader() is not None

    def _leader_pid(self):
        leader = self.leader()
        if not leader:
            raise LabError(self.name, "enter host", "machine is not running (run: lab/virtlab up)")
        return leader[0]

    def enter(self):
        """Command prefix that runs a command inside the machine (all its namespaces)."""
        return ["nsenter", "-t", str(self._leader_pid()), "-a", "--"]

    def run(self, cmd, step=None, **kw):
        return run(self.enter() + cmd, host=self.name, step=step or cmd[0], **kw)

    def root_path(self, path):
        """A path inside the running machine as seen from the control node, with the machine's
        own mounts (through its PID 1's /proc root)."""
        return "/proc/%d/root%s" % (self._leader_pid(), path)

    # --- systemd units ----------------------------------------------------------------------
    def systemctl(self, *args, check=True, timeout=120):
        return self.run(["systemctl"] + list(args), step="systemctl " + " ".join(args), check=check,
                        timeout=timeout)

    def active(self, unit):
        return self.running() and self.systemctl("is-active", "--quiet", unit, check=False).returncode == 0

    # --- boot, reboot, power ------------------------------------------------------------------
    def nspawn_command(self):
        cmd = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--boot",
               "--directory=%s" % self.root, "--machine=%s" % self.name,
               "--network-namespace-path=/run/netns/%s" % config.netns_name(self.name),
               "--capability=all", "--resolv-conf=off", "--timezone=off", "--link-journal=no",
               "--console=read-only", "--kill-signal=SIGRTMIN+3"]
        cmd += ["--bind=%s" % dev for dev in DEVICES if os.path.exists(dev)]
        if self.role == STORAGE:
            # The storage host's data disk: the GlusterFS brick and the iSCSI backing files live
            # on the control node's file system, not in the overlay.
            cmd.append("--bind=%s:/srv" % (self.dir / "srv"))
        return cmd

    def start(self):
        """Start the machine (its root must be mounted) unless it runs; True if started.
        wait_booted() then waits for it."""
        if self.running():
            return False
        if alive(self.record.get("supervisor")):
            self.kill()     # a supervisor whose machine is gone: start over
        os.makedirs(self.dir / "logs", exist_ok=True)
        self.record["supervisor"] = spawn(
            supervised(self.cgroup, self.nspawn_command(), fresh_network=self.name),
            str(self.dir / "logs" / "console.log"), env=supervisor_env())
        return True

    def boot(self):
        """Start the machine and wait until systemd says it is up; True if it was started."""
        started = self.start()
        if started:
            self.wait_booted()
        return started

    def wait_booted(self, timeout=BOOT_TIMEOUT):
        """Wait for systemd to finish starting the machine: 'running', or 'degraded' (a unit
        failed; the lab's status names what is missing)."""
        def booted():
            if not alive(self.record.get("supervisor")):
                raise GaveUp(self.name, "boot", "the machine exited; see %s" % (
                    self.dir / "logs" / "console.log"))
            if not self.leader():
                return False
            res = self.systemctl("is-system-running", check=False, timeout=10)
            return res.stdout.strip() in ("running", "degraded")
        wait_for(booted, timeout, "boot", self.name, interval=0.3)

    def kill(self):
        """Power loss: every process of the machine gets SIGKILL at once (the supervisor first,
        so nothing boots it again). Its root file system and network namespace stay."""
        stop(self.record.get("supervisor"), timeout=1, sig=signal.SIGKILL)
        leader = self.leader()
        if leader:
            stop(leader, timeout=1, sig=signal.SIGKILL)  # the kernel kills the rest of its PID namespace
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pids = self._cgroup_pids()
            if not pids:
                break
            for pid in pids:
                stop(identity(pid), timeout=0.2, sig=signal.SIGKILL)
            time.sleep(0.1)
        else:
            raise LabError(self.name, "power off", "processes still running in %s: %s" % (
                self.cgroup, self._cgroup_pids()))
        self._leader = None
        self.record.pop("supervisor", None)

    def reboot(self, timeout=BOOT_TIMEOUT):
        """`systemctl reboot` inside, as an operator (or ansible.builtin.reboot) does; returns
        once the machine is up again."""
        old = self._leader_pid()
        self.run(["systemctl", "reboot"], step="reboot", check=False)
        wait_for(lambda: self.leader() is None or self.leader()[0] != old, timeout, "reboot", self.name)
        self.wait_booted(timeout)

    def teardown(self):
        """Everything of the host goes: processes, root mount, network namespace, cgroup."""
        self.kill()
        for pid in net.netns_pids(self.name):
            stop(identity(pid), timeout=5, sig=signal.SIGKILL)
        self.unmount_root()
        net.delete_netns(self.name)
        remove_cgroup(self.cgroup)
        self.record.clear()

    # --- guests' QEMU ---------------------------------------------------------------------------
    def qemu_processes(self):
        """Identities (control node pids) of the QEMU processes libvirt runs in this machine, from
        the pid files it keeps for them in /run/libvirt/qemu (pids of the machine's namespace)."""
        directory = self.root_path(QEMU_PID_DIR)
        names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
        found = [self.qemu_process(n[:-len(".pid")]) for n in names if n.endswith(".pid") and n != "driver.pid"]
        return [ident for ident in found if ident]

    def qemu_process(self, guest):
        """Identity (control node pid) of one guest's QEMU in this machine, or None."""
        try:
            with open(self.root_path("%s/%s.pid" % (QEMU_PID_DIR, guest))) as pidfile:
                ns_pid = int(pidfile.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        pid = self.host_pid(ns_pid)
        return identity(pid) if pid else None

    def tcp_open(self, port, timeout=1.0):
        import socket
        try:
            with socket.create_connection((self.ip, port), timeout=timeout):
                return True
        except OSError:
            return False


def _ns_pids(pid):
    """The pid of a process in each PID namespace it is in, outermost first ([] if gone)."""
    try:
        with open("/proc/%d/status" % pid) as status:
            for line in status:
                if line.startswith("NSpid:"):
                    return [int(p) for p in line.split()[1:]]
    except OSError:
        pass
    return []


def supervised(cgroup, cmd, fresh_network=None):
    """`cmd` (an nspawn command) run by supervisor.py in the cgroup `cgroup`; with
    `fresh_network` (a host), that host's network namespace is made anew before each start.
    Run it with supervisor_env()."""
    return ([sys.executable, "-m", "vlab.supervisor", "--cgroup", cgroup]
            + (["--fresh-network", fresh_network] if fresh_network else []) + ["--"] + list(cmd))


def supervisor_env():
    """The supervisor finds the lab's package, and which lab this is (VIRTLAB_*); nspawn filters
    no system calls (module docstring)."""
    env = dict(CLEAN_ENV, PYTHONPATH=LAB_DIR, SYSTEMD_SECCOMP="0")
    env.update((k, v) for k, v in os.environ.items() if k.startswith("VIRTLAB_"))
    return env


def tracking_hierarchy():
    return next(h for h in HIERARCHIES + (HIERARCHIES[-1],) if os.path.exists(os.path.join(h, "cgroup.procs")))


def remove_cgroup(name):
    """Remove the empty cgroup `name` and the groups below it (nspawn's and the machine's
    systemd's), in every hierarchy."""
    for hierarchy in HIERARCHIES:
        top = os.path.join(hierarchy, name)
        for directory, dummy_dirs, dummy_files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            try:
                os.rmdir(directory)
            except OSError:
                pass


def is_mount_point(path):
    with open("/proc/self/mountinfo") as mountinfo:
        return any(line.split()[4] == path for line in mountinfo)
