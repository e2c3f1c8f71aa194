"""Debian packages the control node needs for the lab, installed with apt only when missing.

The hosts' own software (libvirt, QEMU, GlusterFS, ...) is in their images (images.py); the
control node builds those images (debootstrap), boots them (systemd-container), wires them
(iproute2), builds the guests' kernel and initramfs (gcc, cpio), and talks to the hosts
(python3-libvirt, libvirt-clients' virsh for the tests, openssh-client).
"""
import os
import subprocess

from .proc import LabError, run

PACKAGES = [
    "debootstrap", "systemd-container", "iproute2", "openssh-client", "python3-libvirt", "libvirt-clients",
    "cpio", "gcc", "libc6-dev", "procps", "util-linux",
]


def missing_packages(packages=tuple(PACKAGES)):
    res = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n"] + list(packages),
        capture_output=True, text=True, check=False,
    )
    installed = {line.split()[0] for line in res.stdout.splitlines() if line.endswith(" installed")}
    return [p for p in packages if p not in installed]


def ensure_packages(packages=tuple(PACKAGES), log=print):
    missing = missing_packages(packages)
    if not missing:
        return False
    log("installing Debian packages: %s" % " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # A package that brings a daemon must not start it on the control node (the lab's daemons
    # run in its machines); a policy-rc.d that says "no" keeps the machine clean.
    policy = "/usr/sbin/policy-rc.d"
    made_policy = not os.path.exists(policy)
    if made_policy:
        with open(policy, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
    try:
        run(["apt-get", "update", "-q"], step="apt-get update", timeout=600, env=env)
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing,
            step="apt-get install", timeout=1200, env=env)
    finally:
        if made_policy:
            os.unlink(policy)
    still = missing_packages(packages)
    if still:
        raise LabError("lab", "install packages", "still missing: %s" % " ".join(still))
    return True
