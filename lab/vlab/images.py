"""Host images: one Debian root file system per release, built once and shared by every host.

An image is made with debootstrap (minbase) plus apt-get inside it, from the Debian package
registry only, and kept under /var/cache/virtlab/images/<release>-<digest>, outside any
checkout. The digest covers everything that decides the image's contents (release, mirror,
package list, the files the recipe writes, RECIPE): change any of them and the next `up`
builds a new image; otherwise the cached one is used as it is. Hosts never write to an image:
each boots it through an overlay with its own writable layer (machine.py).

A release's image with libvirt's modular daemons (`<release>-modular`, daemons.py) is the
release's image plus virtqemud and virtproxyd built from Debian's own source package
(modular.py), with libvirtd's units off and theirs on: a copy of the release's image, made in
seconds once the daemons are built (minutes, once per libvirt version).

One image per release serves both host roles (hypervisor and storage): two builds instead of
three, and the storage host's daemons are simply left disabled on hypervisors and the other
way round (machine.py). The .deb files are kept in /var/cache/virtlab/apt/<release>, so a
rebuild downloads package indexes but no packages.
"""
import fcntl
import hashlib
import json
import os
import shutil
import threading
import time

from . import config, daemons, modular
from .machine import HIERARCHIES, remove_cgroup, supervised, supervisor_env
from .proc import LabError, run, run_logged

# Bump when the build steps below change in a way the digest inputs do not show.
RECIPE = "3"
MIRROR = os.environ.get("VIRTLAB_MIRROR", "http://deb.debian.org/debian")
IMAGES_DIR = config.SHARED_CACHE / "images"
APT_CACHE = config.SHARED_CACHE / "apt"

# What libvirt and QEMU each release brings (Debian's own packages; docs/lab.md).
RELEASES = {
    "bookworm": {"debian": "12", "libvirt": "9.0", "qemu": "7.2"},
    "trixie": {"debian": "13", "libvirt": "11.3", "qemu": "10.0"},
}

# debootstrap installs only what the machine needs to boot; apt-get (which resolves
# dependencies properly) adds the rest.
BOOT_PACKAGES = ["systemd", "systemd-sysv", "dbus"]
PACKAGES = [
    # every host: remote access and what Ansible needs (/usr/bin/python3; apt for the package module)
    "openssh-server", "python3", "python3-apt", "iproute2", "iputils-ping", "nftables", "procps", "netbase",
    # hypervisors: libvirt, QEMU and what the collection's modules and roles use
    "libvirt-daemon-system", "libvirt-daemon-driver-qemu", "libvirt-clients",
    "libvirt-daemon-driver-storage-iscsi-direct", "qemu-system-x86", "qemu-utils", "qemu-block-extra",
    "python3-libvirt", "python3-firewall", "firewalld", "glusterfs-client", "netcat-openbsd",
    # the storage host
    "glusterfs-server", "tgt",
]

# The QEMU driver settings every lab hypervisor needs on this machine kind (no nested cgroups,
# no device namespaces, no security driver; docs/lab.md). Appended to Debian's qemu.conf, whose
# own lines are all comments, so the roles can still edit the file as on any host.
QEMU_CONF = """
# virtlab: what QEMU needs inside a lab machine on this machine kind (docs/lab.md)
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ ]
"""

# libvirt takes the host's UUID from SMBIOS by default, and every machine here has the same
# (the control node's): libvirt would refuse to "migrate to the same host". /etc/machine-id is
# each host's own (provision.py), so every host of an image has its own UUID.
LIBVIRTD_CONF = """
# virtlab: each lab machine's host UUID is its machine id (docs/lab.md)
host_uuid_source = "machine-id"
"""

# Periodic jobs of a Debian install that would only burn the shared CPUs here (no network to
# fetch updates from, nothing to trim or scrub on an overlay), and a login prompt on the
# machine's console, which would only fill the console log.
MASKED_UNITS = ["apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer",
                "e2scrub_reap.service", "fstrim.timer", "xfs_scrub_all.timer", "console-getty.service"]

# While the image is built, no package may start a daemon (there is no init yet).
POLICY_RC_D = "#!/bin/sh\nexit 101\n"
APT_CONF = 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\nAcquire::Languages "none";\n'

_build_lock = threading.Lock()


MODULAR_SUFFIX = "-" + daemons.MODULAR


def image_key(release, layout=daemons.MONOLITHIC):
    """The name of the image a host of `release` with the daemon `layout` boots (trixie, trixie-modular)."""
    return release if layout == daemons.MONOLITHIC else release + "-" + layout


def split_key(key):
    """(release, daemon layout) of an image name."""
    if key.endswith(MODULAR_SUFFIX):
        return key[:-len(MODULAR_SUFFIX)], daemons.MODULAR
    return key, daemons.MONOLITHIC


def digest(key):
    release, layout = split_key(key)
    h = hashlib.sha256()
    for part in (RECIPE, release, MIRROR, " ".join(BOOT_PACKAGES), " ".join(sorted(PACKAGES)),
                 QEMU_CONF, LIBVIRTD_CONF, APT_CONF, " ".join(MASKED_UNITS)):
        h.update(part.encode() + b"\0")
    if layout == daemons.MODULAR:
        for part in (layout, modular.build_script("0-0"), " ".join(modular.UNITS + modular.CONFS)):
            h.update(part.encode() + b"\0")
    return h.hexdigest()[:12]


def image_path(key):
    check_release(key)
    return IMAGES_DIR / ("%s-%s" % (key, digest(key)))


def check_release(key):
    release, dummy_layout = split_key(key)
    if release not in RELEASES:
        raise LabError("lab", "host image", "unknown release %r (known: %s)" % (
            release, ", ".join(sorted(RELEASES))))


def info(path):
    """What the image's build recorded (versions, build time), or None if it is not complete."""
    try:
        return json.loads((path / "etc" / "virtlab-image.json").read_text())
    except (OSError, ValueError):
        return None


def ensure(releases, log=print):
    """The image of each release (image names: `trixie`, `trixie-modular`), built in parallel where
    missing. {name: path}."""
    wanted = sorted(set(releases))
    for release in wanted:
        check_release(release)
    missing = [r for r in wanted if info(image_path(r)) is None]
    errors = {}

    def build_one(release):
        try:
            build(release, log)
        except LabError as exc:
            errors[release] = exc
    threads = [threading.Thread(target=build_one, args=(r,)) for r in missing]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise next(iter(errors.values()))
    return {r: image_path(r) for r in wanted}


def build(key, log=print):
    """Build one image unless another process has just built it (a lock per image)."""
    dest = image_path(key)
    release, layout = split_key(key)
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    with open(str(dest) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if info(dest) is not None:
            return dest
        if layout == daemons.MODULAR:
            return _build_modular(key, dest, build(release, log), log)
        with _build_lock:
            log("building host image %s (debootstrap %s from %s; a few minutes, once)" % (
                dest.name, release, MIRROR))
        started = time.monotonic()
        tmp = IMAGES_DIR / (".build-" + dest.name)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(dest, ignore_errors=True)
        cache = APT_CACHE / release
        cache.mkdir(parents=True, exist_ok=True)
        logfile = str(dest) + ".log"
        _debootstrap(release, tmp, cache, logfile)
        _install_packages(release, tmp, cache, logfile)
        _finish(release, tmp, started)
        os.rename(tmp, dest)
        log("host image %s built in %.0fs" % (dest.name, time.monotonic() - started))
        return dest


def _build_modular(key, dest, base, log):
    """The release's image `base` with the modular daemons in place of libvirtd (module docstring)."""
    release, dummy_layout = split_key(key)
    started = time.monotonic()
    artefacts = modular.ensure(release, base, MIRROR, log=log)
    tmp = IMAGES_DIR / (".build-" + dest.name)
    shutil.rmtree(tmp, ignore_errors=True)
    run(["cp", "-a", "--reflink=auto", str(base), str(tmp)], host="image " + key, step="copy the image")
    modular.install(tmp, artefacts, LIBVIRTD_CONF)
    units = daemons.UNITS[daemons.MODULAR]
    monolithic = daemons.UNITS[daemons.MONOLITHIC]
    run(["systemctl", "--root=%s" % tmp, "--quiet", "disable"] + list(monolithic.services + monolithic.sockets),
        host="image " + key, step="disable libvirtd")
    run(["systemctl", "--root=%s" % tmp, "--quiet", "enable"] + list(units.services + units.sockets),
        host="image " + key, step="enable the modular daemons")
    record = info(base)
    record.update({"release": release, "daemons": daemons.MODULAR, "digest": digest(key),
                   "modular": json.loads((artefacts / "build.json").read_text()),
                   "build_seconds": round(time.monotonic() - started), "built": time.strftime("%Y-%m-%dT%H:%M:%S")})
    _write(tmp, "/etc/virtlab-image.json", json.dumps(record, indent=1) + "\n")
    os.rename(tmp, dest)
    log("host image %s built in %.0fs" % (dest.name, time.monotonic() - started))
    return dest


def _debootstrap(release, root, cache, logfile):
    run_logged(["debootstrap", "--variant=minbase", "--include=" + ",".join(BOOT_PACKAGES),
                "--cache-dir=%s" % cache, release, str(root), MIRROR],
               "image " + release, "debootstrap", logfile, timeout=1800)


def _write(root, path, text, mode=0o644):
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    os.chmod(target, mode)


def _install_packages(release, root, cache, logfile):
    _write(root, "/usr/sbin/policy-rc.d", POLICY_RC_D, 0o755)
    _write(root, "/etc/apt/apt.conf.d/90virtlab", APT_CONF)
    # Faster package installation; the image is rebuilt from scratch if a build is interrupted.
    _write(root, "/etc/dpkg/dpkg.cfg.d/90virtlab-unsafe-io", "force-unsafe-io\n")
    script = ("set -e; apt-get update -q; "
              "DEBIAN_FRONTEND=noninteractive apt-get install -y -q %s" % " ".join(PACKAGES))
    # nspawn, not chroot: it mounts /proc, /sys and /dev for the package scripts and unmounts
    # them when apt ends. The machine's network is shared for the downloads. It runs in a cgroup
    # of its own, like the lab's machines (supervisor.py says why).
    cgroup = "virtlab-images/" + release
    nspawn = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "-D", str(root),
              "--bind=%s:/var/cache/apt/archives" % cache, "--resolv-conf=replace-host",
              "--timezone=off", "sh", "-c", script]
    run_logged(supervised(cgroup, nspawn), "image " + release, "apt-get install", logfile, timeout=2400, env=supervisor_env())
    remove_cgroup(cgroup)
    for hierarchy in HIERARCHIES:   # the parent too, unless the other release's build is in it
        try:
            os.rmdir(os.path.join(hierarchy, "virtlab-images"))
        except OSError:
            pass


def _finish(release, root, started):
    """What makes the image a template rather than a machine: no identity of its own."""
    for conf, text in (("qemu.conf", QEMU_CONF), ("libvirtd.conf", LIBVIRTD_CONF)):
        with open(root / "etc" / "libvirt" / conf, "a") as f:
            f.write(text)
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()               # each host gets its own host key (machine.py)
    _write(root, "/etc/machine-id", "")
    for path in ("/etc/hostname", "/usr/sbin/policy-rc.d", "/etc/dpkg/dpkg.cfg.d/90virtlab-unsafe-io",
                 "/etc/resolv.conf"):
        target = root / path.lstrip("/")
        if target.exists() or target.is_symlink():
            target.unlink()
    for unit in MASKED_UNITS:
        link = root / "etc" / "systemd" / "system" / unit
        if not link.is_symlink():
            link.symlink_to("/dev/null")
    # libvirt's NAT network "default" would start dnsmasq on every hypervisor: not wanted.
    autostart = root / "etc" / "libvirt" / "qemu" / "networks" / "autostart" / "default.xml"
    if autostart.is_symlink() or autostart.exists():
        autostart.unlink()
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (root / sub).glob("*"):
            if entry.is_file():
                entry.unlink()
    versions = dict(line.split(" ", 1) for line in run(
        ["chroot", str(root), "dpkg-query", "-W", "-f", "${Package} ${Version}\n",
         "libvirt-daemon", "qemu-system-x86", "systemd", "glusterfs-server", "python3-libvirt"],
        host="image " + release, step="read versions").stdout.splitlines() if " " in line)
    record = {"release": release, "debian": RELEASES[release]["debian"], "digest": digest(release),
              "mirror": MIRROR, "packages": PACKAGES, "versions": versions,
              "build_seconds": round(time.monotonic() - started), "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _write(root, "/etc/virtlab-image.json", json.dumps(record, indent=1) + "\n")
