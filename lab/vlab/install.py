"""Debian packages the lab needs, installed with apt only when missing."""
import os
import subprocess

from .proc import LabError, run

PACKAGES = [
    "qemu-system-x86", "qemu-utils", "qemu-block-extra",
    "libvirt-daemon", "libvirt-daemon-system", "libvirt-daemon-driver-qemu", "libvirt-clients",
    "libvirt-daemon-driver-storage-iscsi-direct",
    "openssh-server", "openssh-client", "glusterfs-server", "glusterfs-client", "tgt",
    "firewalld", "dbus", "nftables", "iproute2", "cpio", "socat", "gcc", "libc6-dev",
    "python3-libvirt", "python3-firewall", "procps",
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
    # Packages like openssh-server and glusterfs-server would start their daemons in the
    # root namespace on install; a policy-rc.d that says "no" keeps the machine clean.
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
