"""A flat apt repository a lab host can upgrade its libvirt and QEMU from, without the network.

The rolling-maintenance test upgrades a bookworm host for real (libvirt 9.0 / QEMU 7.2 to
bookworm-backports' 11.3 / 10.0). Downloading those packages during the test would make it
depend on the registry's speed, so they are fetched once, with everything they need beyond what
the bookworm image has, into /var/cache/virtlab/apt/<release>-backports-repo, next to the images'
package cache, and indexed there (a Packages file: `deb [trusted=yes] file:<dir> ./`).

The download runs apt-get inside the release's image (an overlay with a throw-away upper layer,
so the image is never written), with the backports suite added, so apt resolves the closure
against exactly the packages the hosts have. The repository is rebuilt only when the image or
the package list changes (its stamp).
"""
import hashlib
import json
import os
import shutil
import time

from . import images
from .machine import is_mount_point, remove_cgroup, supervised, supervisor_env
from .proc import LabError, run, run_logged

# What a hypervisor's maintenance upgrades (the rolling_maintenance role's default is libvirt*,
# qemu*, python3-libvirt: every one of those the image has is named here).
UPGRADE_PACKAGES = [
    "libvirt-daemon-system", "libvirt-daemon-driver-qemu", "libvirt-clients",
    "libvirt-daemon-driver-storage-iscsi-direct", "qemu-system-x86", "qemu-utils", "qemu-block-extra",
    "python3-libvirt",
]
STAMP = "repo.json"
CONTROL_FIELDS_SKIPPED = ("Filename", "Size", "SHA256", "MD5sum")


def repo_dir(release):
    return images.APT_CACHE / ("%s-backports-repo" % release)


def _wanted_stamp(release):
    image = images.image_path(release)
    return {"image": image.name, "packages": UPGRADE_PACKAGES, "suite": "%s-backports" % release}


def ensure(release="bookworm", log=print):
    """The repository's directory, built if missing or stale."""
    target = repo_dir(release)
    wanted = _wanted_stamp(release)
    try:
        with open(target / STAMP, encoding="utf-8") as handle:
            if json.load(handle) == wanted and (target / "Packages").is_file():
                return target
    except (OSError, ValueError):
        pass
    image = images.ensure([release], log=log)[release]
    started = time.monotonic()
    work = images.APT_CACHE / (".build-%s-backports" % release)
    _unmount(work / "root")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    for sub in ("upper", "work", "root"):
        (work / sub).mkdir(parents=True)
    target.mkdir(parents=True)
    run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=%s,upperdir=%s,workdir=%s" % (
        image, work / "upper", work / "work"), str(work / "root")],
        host="upgrade repository", step="mount the image")
    try:
        _download(release, work / "root", target, str(work) + ".log")
    finally:
        _unmount(work / "root")
        shutil.rmtree(work, ignore_errors=True)
    _index(target)
    with open(target / STAMP, "w", encoding="utf-8") as handle:
        json.dump(wanted, handle, indent=1)
    log("upgrade repository %s: %d packages in %.0fs" % (
        target.name, len(list(target.glob("*.deb"))), time.monotonic() - started))
    return target


def _unmount(path):
    if is_mount_point(str(path)):
        run(["umount", "-l", str(path)], host="upgrade repository", step="unmount", check=False)


def _download(release, root, target, logfile):
    suite = "%s-backports" % release
    sources = root / "etc" / "apt" / "sources.list.d" / "backports.list"
    sources.parent.mkdir(parents=True, exist_ok=True)
    sources.write_text("deb %s %s main\n" % (images.MIRROR, suite))
    script = ("set -e; apt-get update -q; DEBIAN_FRONTEND=noninteractive apt-get install -y -q --download-only "
              "-t %s %s" % (suite, " ".join(UPGRADE_PACKAGES)))
    cgroup = "virtlab-images/%s-backports" % release
    nspawn = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "-D", str(root),
              "--bind=%s:/var/cache/apt/archives" % target, "--resolv-conf=replace-host",
              "--timezone=off", "sh", "-c", script]
    try:
        run_logged(supervised(cgroup, nspawn), "image " + release, "apt-get --download-only " + suite, logfile,
                   timeout=1800, env=supervisor_env())
    finally:
        remove_cgroup(cgroup)
        for leftover in ("partial", "lock"):
            path = target / leftover
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
    if not list(target.glob("*.deb")):
        raise LabError("upgrade repository", "apt-get --download-only",
                       "nothing downloaded: %s has nothing newer than the image (log: %s)" % (suite, logfile))


def _index(target):
    """The Packages file of a flat repository: each .deb's control fields, its file name, size and
    SHA256 (what dpkg-scanpackages writes; dpkg-dev is not on every machine, dpkg-deb is)."""
    stanzas = []
    for deb in sorted(target.glob("*.deb")):
        control = run(["dpkg-deb", "--field", str(deb)], host="upgrade repository", step="read " + deb.name).stdout
        lines = [line for line in control.rstrip("\n").splitlines()
                 if not line.split(":", 1)[0] in CONTROL_FIELDS_SKIPPED]
        digest = hashlib.sha256()
        with open(deb, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        lines += ["Filename: ./%s" % deb.name, "Size: %d" % os.path.getsize(deb), "SHA256: %s" % digest.hexdigest()]
        stanzas.append("\n".join(lines) + "\n")
    (target / "Packages").write_text("\n".join(stanzas))
