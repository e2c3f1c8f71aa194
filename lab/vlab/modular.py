"""libvirt's modular daemons (virtqemud, virtproxyd) for a release whose Debian packages lack them.

Debian builds libvirt's modular daemons with every libvirt it packages, then leaves them out of
every package (debian/not-installed lists virtqemud, virtproxyd, their units and configuration).
So a lab host with modular daemons gets exactly those: they are built here from the same Debian
source package as the release's libvirt (the upstream tarball and Debian's patches, Debian's own
configure options through debian/rules), and only virtqemud, virtproxyd, the systemd units and
the configuration files that build generates are kept. Everything else the host runs (libvirt's
library, its QEMU driver module, virtlogd, QEMU) stays the release's own packages: the two
daemons are the same program as libvirtd (src/remote/remote_daemon.c), built to serve one driver
(virtqemud) or to forward clients to the per-driver daemons (virtproxyd).

The build runs once per release and libvirt version, in a throw-away copy of the release's host
image with the build dependencies installed (`apt-get build-dep`, the .debs kept in the apt
cache), and takes about four minutes on two cores; the result is cached under
/var/cache/virtlab/modular/<release>-<libvirt version>, outside any checkout.
"""
import json
import os
import shutil
import time
import urllib.request

from . import config, daemons
from .machine import supervised, supervisor_env, remove_cgroup
from .proc import LabError, run, run_logged

ARTEFACTS_DIR = config.SHARED_CACHE / "modular"
# What the build keeps: the daemons (virtqemud for QEMU, virtproxyd for clients, and one per
# secondary driver the release's libvirt packages hold: the storage pools the lab and the roles
# define are virtstoraged's in this layout), and the units and configuration files it generated.
DAEMONS = daemons.MODULAR_DAEMONS
UNITS = tuple("%s%s" % (daemon, suffix) for daemon in DAEMONS
              for suffix in (".service", ".socket", "-ro.socket", "-admin.socket")) + (
    "virtproxyd-tcp.socket", "virtproxyd-tls.socket")
CONFS = tuple(daemon + ".conf" for daemon in DAEMONS)
BUILD_DIR = "obj-x86_64-linux-gnu"  # where debian/rules (dh) configures the build on amd64


def libvirt_version(image):
    """The Debian version of the image's libvirt (e.g. 11.3.0-3+deb13u3), from its dpkg status."""
    res = run(["chroot", str(image), "dpkg-query", "-W", "-f", "${Version}", "libvirt-daemon"],
              host="image", step="read libvirt's version")
    return res.stdout.strip()


def artefacts_path(release, version):
    return ARTEFACTS_DIR / ("%s-%s" % (release, version.replace("+", "_").replace(":", "_")))


def source_files(version, mirror):
    """URLs of the upstream tarball and Debian's packaging for a libvirt version (the pool layout)."""
    upstream = version.split(":")[-1].rsplit("-", 1)[0]
    pool = "%s/pool/main/libv/libvirt/" % mirror.rstrip("/")
    return [pool + "libvirt_%s.orig.tar.xz" % upstream, pool + "libvirt_%s.debian.tar.xz" % version.split(":")[-1]]


def build_script(version):
    """The shell script run inside the builder root (the sources are already in /src)."""
    upstream = version.split(":")[-1].rsplit("-", 1)[0]
    return " && ".join([
        "set -e",
        "grep -q '^deb-src' /etc/apt/sources.list || sed -n 's/^deb /deb-src /p' /etc/apt/sources.list "
        ">> /etc/apt/sources.list",
        "apt-get update -q",
        "DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -q libvirt",
        "cd /src",
        "tar xf libvirt_%s.orig.tar.xz" % upstream,
        "cd libvirt-%s" % upstream,
        "tar xf ../libvirt_%s.debian.tar.xz" % version.split(":")[-1],
        "DEB_BUILD_OPTIONS='nocheck nodoc' make -f debian/rules override_dh_auto_configure",
        "ninja -C %s -j2 %s" % (BUILD_DIR, " ".join("src/" + d for d in DAEMONS)),
        "mkdir -p /out",
        "cd %s/src" % BUILD_DIR,
        "cp %s /out/" % " ".join(DAEMONS + UNITS + CONFS),
    ])


def ensure(release, image, mirror, log=print):
    """The cached artefacts for the libvirt of `image` (a built host image of `release`): built
    when missing. Returns their directory."""
    version = libvirt_version(image)
    target = artefacts_path(release, version)
    if (target / "build.json").exists():
        return target
    log("building libvirt %s's modular daemons from Debian's source package (about four minutes, once)" % version)
    started = time.monotonic()
    ARTEFACTS_DIR.mkdir(parents=True, exist_ok=True)
    work = ARTEFACTS_DIR / (".build-" + target.name)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    root = work / "root"
    run(["cp", "-a", "--reflink=auto", str(image), str(root)], host="image " + release, step="copy the image")
    (root / "src").mkdir()
    for url in source_files(version, mirror):
        _download(url, root / "src" / url.rsplit("/", 1)[1])
    cache = config.SHARED_CACHE / "apt" / ("%s-build" % release)
    cache.mkdir(parents=True, exist_ok=True)
    logfile = str(target) + ".log"
    cgroup = "virtlab-images/%s-modular" % release
    nspawn = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "-D", str(root),
              "--bind=%s:/var/cache/apt/archives" % cache, "--resolv-conf=replace-host", "--timezone=off",
              "sh", "-c", build_script(version)]
    try:
        run_logged(supervised(cgroup, nspawn), "image " + release, "build the modular daemons", logfile, timeout=3600,
                   env=supervisor_env())
    finally:
        remove_cgroup(cgroup)
    (root / "out" / "build.json").write_text(json.dumps({
        "release": release, "libvirt": version, "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "build_seconds": round(time.monotonic() - started), "sources": source_files(version, mirror)}, indent=1) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    os.rename(root / "out", target)
    shutil.rmtree(work, ignore_errors=True)
    log("modular daemons of libvirt %s built in %.0fs" % (version, time.monotonic() - started))
    return target


def _download(url, dest):
    try:
        with urllib.request.urlopen(url, timeout=300) as response, open(dest, "wb") as f:
            shutil.copyfileobj(response, f)
    except OSError as exc:
        raise LabError("lab", "download libvirt's source", "%s: %s" % (url, exc))


def install(root, artefacts, host_conf):
    """Put the daemons, units and configuration into an image root, each daemon's configuration
    with the lab's `host_conf` lines (libvirtd.conf's, e.g. the host UUID source), and switch the
    image from libvirtd to them: libvirtd's units disabled, the modular sockets enabled (socket
    activation, as Debian does for libvirtd)."""
    for name in DAEMONS:
        shutil.copy2(artefacts / name, root / "usr" / "sbin" / name)
        os.chmod(root / "usr" / "sbin" / name, 0o755)
    for name in UNITS:
        shutil.copy2(artefacts / name, root / "usr" / "lib" / "systemd" / "system" / name)
    for name in CONFS:
        text = (artefacts / name).read_text()
        (root / "etc" / "libvirt" / name).write_text(text + host_conf)
