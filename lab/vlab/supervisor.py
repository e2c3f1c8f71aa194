"""Keep one lab machine booted: `python3 -m vlab.supervisor --cgroup NAME [--fresh-network HOST] -- systemd-nspawn ...`.

A machine that reboots (`reboot` inside it, as ansible.builtin.reboot does) makes its systemd
exit and systemd-nspawn return 133 ("reboot requested"). On real hardware the firmware would
boot the machine again; here this process does: it runs the same nspawn command again. Any
other exit (poweroff inside, or nspawn failing) ends the supervisor with that status.

It first moves itself into the machine's own cgroup NAME (a path such as virtlab/host-a), so
that nspawn and the machine's systemd inherit it: two machines' systemds in one cgroup would
manage each other's services. This machine kind has a hybrid cgroup setup (v1 controllers, the
name=systemd v1 hierarchy and cgroup2 at /sys/fs/cgroup/unified): nspawn takes its cgroup from
the cgroup2 hierarchy and puts the machine in NAME/payload, itself in NAME/supervisor, of both
hierarchies, but creates those two only in cgroup2. So NAME is joined in every systemd
hierarchy there is, and the two groups are made ready in the v1 one. With --fresh-network, the host's network namespace is made anew before every boot (net.py,
fresh_netns): the kernel's network state of the last boot (firewall rules, routes, bridges) is
gone, as on real hardware (the VIRTLAB_* variables say which lab).

SIGTERM, SIGINT and SIGHUP are passed to nspawn (which asks the
machine's systemd to power off). If this process is killed, nspawn gets SIGKILL (PDEATHSIG)
and the machine dies with it, as a machine does when its power goes: the lab never loses
track of a machine. The image builds run their nspawn through it too, for the cgroup.
"""
import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time

from vlab import net

PR_SET_PDEATHSIG = 1
REBOOT_REQUESTED = 133   # systemd-nspawn's exit status when the container asked for a reboot
HIERARCHIES = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd")
NSPAWN_GROUPS = ("payload", "supervisor")


def _die_with_parent():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def join_cgroup(name):
    for hierarchy in HIERARCHIES:
        if not os.path.exists(os.path.join(hierarchy, "cgroup.procs")):
            continue
        path = os.path.join(hierarchy, name)
        for group in NSPAWN_GROUPS:
            os.makedirs(os.path.join(path, group), exist_ok=True)
        with open(os.path.join(path, "cgroup.procs"), "w") as procs:
            procs.write(str(os.getpid()))


def main(argv):
    parser = argparse.ArgumentParser(prog="supervisor.py")
    parser.add_argument("--cgroup", required=True)
    parser.add_argument("--fresh-network", metavar="HOST")
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no command given (-- CMD ...)")
    join_cgroup(args.cgroup)
    child = None
    stopping = []

    def forward(signum, dummy_frame):
        stopping.append(signum)
        if child is not None:
            try:
                child.send_signal(signum)
            except ProcessLookupError:
                pass
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    boots = 0
    while True:
        boots += 1
        sys.stdout.write("virtlab supervisor: start %d at %s\n" % (boots, time.strftime("%H:%M:%S")))
        sys.stdout.flush()
        if args.fresh_network:
            net.fresh_netns(args.fresh_network)
        child = subprocess.Popen(cmd, preexec_fn=_die_with_parent)
        status = child.wait()
        if status == REBOOT_REQUESTED and not stopping:
            continue
        sys.stdout.write("virtlab supervisor: ended with status %d\n" % status)
        return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
