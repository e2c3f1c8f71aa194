"""Guest boot artefacts (built from Debian packages) and heartbeat guests on the hypervisors."""
import hashlib
import json
import lzma
import os
import re
import shutil
import tempfile
import time
import zlib
from pathlib import Path

from . import config
from .proc import LabError, run, wait_for

SRC = Path(__file__).resolve().parent / "guest_src"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
HEARTBEAT_RE = re.compile(r"VLHB (\d+) ([0-9a-f-]{36}) ([0-9.]+)")
# The oops itself plus the lines that say where it happened (RIP, call-trace frames).
OOPS_RE = re.compile(r"(Oops|BUG:|Kernel panic|general protection fault|Call Trace:|RIP:|\+0x[0-9a-f]+/0x)")
OOPS_HEADER_RE = re.compile(r"(Oops|BUG:|Kernel panic|general protection fault|WARNING: CPU:)")
# An RCU stall report: the guest kernel saw that a CPU was not scheduled for 21 s or more, and dumps
# where it was (RIP, call trace, like an oops). It is the guest's view of a pause (e.g. its vCPU waited
# for post-copy pages across a cut link) and the kernel goes on; whether a pause was acceptable is for
# the heartbeat to judge, so its frames are not an oops. Anything that is an oops header ends it.
STALL_RE = re.compile(r"rcu: INFO: rcu_\w+ (self-)?detected (expedited )?stalls?|rcu: rcu_\w+ kthread (starved|timer)")


def kernel_reports(lines):
    """(oops lines, stall lines) in a guest's console lines: trace frames belong to the report they
    follow (a stall report's frames are not an oops)."""
    oops, stalls = [], []
    in_stall = False
    for line in lines:
        if HEARTBEAT_RE.search(line) or OOPS_HEADER_RE.search(line):
            in_stall = False
        if STALL_RE.search(line):
            in_stall = True
            stalls.append(line.strip())
        elif OOPS_RE.search(line) or OOPS_HEADER_RE.search(line):
            (stalls if in_stall else oops).append(line.strip())
    return oops, stalls


DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{boot}/vmlinux</kernel>
    <initrd>{boot}/initrd.img</initrd>
    <cmdline>console=ttyS0 loglevel=5 printk.devkmsg=on {extra}</cmdline>
  </os>
  {cpu}
  <features><acpi/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='none'/>
      <source file='{heartbeat_disk}'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    {interfaces}
    <serial type='file'>
      <source path='{heartbeat}' append='on'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='{heartbeat}' append='on'/>
      <target type='serial' port='0'/>
    </console>
    <memballoon model='none'/>
  </devices>
</domain>
"""


# Bumped when the way the artefacts are built changes (not only their sources).
# Bumped when the way the artefacts are built changes (not only their sources).
# 2: the guest boots the uncompressed ELF kernel. 3: ACPI power button modules and handler.
# 4, 5: the virtio block modules too (the guest writes its heartbeat to a disk), loaded in the order
#    the initramfs lists in /lib/modules/order.
ARTEFACTS_LAYOUT = b"5"
# Kernel modules the guest loads, in this order (each needs the ones before it): the kernel package's
# own, Debian builds these as modules. virtio block for the heartbeat disk, the power button and
# evdev for ACPI shutdown requests.
GUEST_MODULES = ("drivers/virtio/virtio_ring.ko", "drivers/virtio/virtio.ko", "drivers/virtio/virtio_pci_modern_dev.ko",
                 "drivers/virtio/virtio_pci_legacy_dev.ko", "drivers/virtio/virtio_pci.ko", "drivers/block/virtio_blk.ko",
                 "drivers/acpi/button.ko", "drivers/input/evdev.ko")

# How a compressed kernel starts inside a bzImage, and a decompressor for one stream of it
# (the bzImage has more data after the stream, which a decompressor object leaves alone).
KERNEL_PAYLOADS = ((b"\xfd7zXZ\x00", lambda: lzma.LZMADecompressor(format=lzma.FORMAT_XZ)),
                   (b"\x1f\x8b\x08", lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)))


def _sources_digest():
    h = hashlib.sha256(ARTEFACTS_LAYOUT)
    for f in sorted(SRC.iterdir()):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def _kernel_package():
    res = run(["apt-cache", "depends", "linux-image-amd64"], step="find kernel package", check=False)
    m = re.search(r"Depends: (linux-image-[0-9][^\s]*-amd64)", res.stdout)
    if not m:
        run(["apt-get", "update", "-q"], step="apt-get update", timeout=600)
        res = run(["apt-cache", "depends", "linux-image-amd64"], step="find kernel package")
        m = re.search(r"Depends: (linux-image-[0-9][^\s]*-amd64)", res.stdout)
    if not m:
        raise LabError("lab", "build guest", "no linux-image-*-amd64 package found by apt")
    return m.group(1)


def _download(packages, dest):
    dest.mkdir(parents=True, exist_ok=True)
    cmd = ["sh", "-c", 'cd "$0" && apt-get download "$@"', str(dest)] + packages
    if run(cmd, step="download guest packages", check=False, timeout=600).returncode != 0:
        run(["apt-get", "update", "-q"], step="apt-get update", timeout=600)
        run(cmd, step="download guest packages", timeout=600)


def build_artefacts(log=print):
    """Kernel + busybox initramfs with the heartbeat init and the dirtier; rebuilt only when
    our sources change. Nothing is downloaded except Debian packages."""
    out = config.GUEST_ARTEFACTS
    stamp = out / "stamp"
    digest = _sources_digest()
    if stamp.exists() and stamp.read_text() == digest and (out / "vmlinux").exists():
        return False
    log("building guest kernel + initramfs from Debian packages")
    kernel_pkg = _kernel_package()
    debs = config.CACHE_DIR / "debs"
    have = {p.name.split("_")[0] for p in debs.glob("*.deb")} if debs.exists() else set()
    need = [p for p in (kernel_pkg, "busybox-static") if p not in have]
    if need:
        _download(need, debs)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        kdeb = sorted(debs.glob(kernel_pkg + "_*.deb"))[-1]
        bdeb = sorted(debs.glob("busybox-static_*.deb"))[-1]
        run(["sh", "-c", 'dpkg-deb --fsys-tarfile "$0" | tar -x -C "$1" --wildcards "./boot/vmlinuz-*"',
             str(kdeb), str(tmp)], step="extract kernel")
        (out / "vmlinux").write_bytes(elf_kernel(next((tmp / "boot").glob("vmlinuz-*")).read_bytes()))
        root = tmp / "initramfs"
        for d in ("bin", "sbin", "proc", "sys", "dev", "tmp", "etc/acpi/PWRF", "etc/acpi/PWRB", "lib/modules"):
            (root / d).mkdir(parents=True)
        run(["sh", "-c", 'deb=$0 into=$1; shift; dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$into" --wildcards "$@"',
             str(kdeb), str(tmp)]
            + ["./lib/modules/*/kernel/" + m for m in GUEST_MODULES], step="extract kernel modules")
        for module in GUEST_MODULES:
            shutil.copy2(next(tmp.glob("lib/modules/*/kernel/" + module)), root / "lib" / "modules" / os.path.basename(module))
        (root / "lib" / "modules" / "order").write_text(
            "\n".join(os.path.basename(m)[:-len(".ko")] for m in GUEST_MODULES) + "\n")
        for event in ("PWRF", "PWRB"):
            shutil.copy2(SRC / "power-button", root / "etc" / "acpi" / event / "00000080")
            os.chmod(root / "etc" / "acpi" / event / "00000080", 0o755)
        run(["sh", "-c", 'dpkg-deb --fsys-tarfile "$0" | tar -x -C "$1" ./bin/busybox', str(bdeb), str(root)],
            step="extract busybox")
        run(["gcc", "-static", "-O2", "-o", str(root / "bin" / "dirtier"), str(SRC / "dirtier.c")],
            step="compile dirtier")
        os.symlink("busybox", root / "bin" / "sh")  # the init's interpreter, before --install
        shutil.copy2(SRC / "init", root / "init")
        os.chmod(root / "init", 0o755)
        run(["sh", "-c", 'cd "$0" && find . | cpio -o -H newc --quiet | gzip -1 > "$1"',
             str(root), str(out / "initrd.img")], step="pack initramfs")
    stamp.write_text(digest)
    return True


def elf_kernel(bzimage):
    """The uncompressed ELF kernel inside a bzImage. QEMU boots it directly through its PVH
    entry point: under TCG that skips the firmware's real-mode loader and the in-guest
    decompression, about 4 of the 6.5 s a guest took to its first heartbeat."""
    for magic, decompressor in KERNEL_PAYLOADS:
        start = bzimage.find(magic)
        while start >= 0:
            try:
                kernel = decompressor().decompress(bzimage[start:])
            except (lzma.LZMAError, zlib.error):
                kernel = b""
            if kernel.startswith(b"\x7fELF"):
                return kernel
            start = bzimage.find(magic, start + 1)
    raise LabError("lab", "build guest", "no xz or gzip ELF payload in the kernel image: "
                   "the guest kernel must be a Debian amd64 kernel")


def install_artefacts(hv):
    """Copy kernel and initramfs to the hypervisor's local boot dir (same path everywhere)."""
    changed = False
    for name in ("vmlinux", "initrd.img"):
        src, dst = config.GUEST_ARTEFACTS / name, hv.file(config.BOOT_DIR + "/" + name)
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            shutil.copy2(src, dst)
            changed = True
    return changed


def check_name(name):
    if not NAME_RE.match(name or ""):
        raise LabError("lab", "guest name", "%r is not a valid guest name (letters, digits, . _ -)" % name)


def domain_xml(name, memory, dirty, storage, cpu_model, networks=(), fill_mib=0):
    extra = " ".join(arg for arg in ("vl.dirty=%s" % dirty if dirty else "",
                                     "vl.fill=%d" % fill_mib if fill_mib else "") if arg)
    cpu = ""
    if cpu_model:
        cpu = ("<cpu mode='custom' match='exact' check='full'><model fallback='forbid'>%s</model></cpu>"
               % cpu_model)
    disk_dir = config.SHARED_DIR if storage == "shared" else config.LOCAL_DIR
    interfaces = "\n    ".join(
        "<interface type='network'><source network='%s'/><model type='virtio'/></interface>" % n
        for n in networks)
    return DOMAIN_XML.format(
        name=name, memory=memory, boot=config.BOOT_DIR, extra=extra, cpu=cpu,
        disk="%s/%s.qcow2" % (disk_dir, name), heartbeat="%s/%s.log" % (config.HEARTBEAT_DIR, name),
        heartbeat_disk="%s/%s" % (config.SHARED_DIR, heartbeat_disk_name(name)), interfaces=interfaces)


def locate(lab, name):
    """[(host, state, persistent)] for every hypervisor that knows the domain."""
    import libvirt
    found = []
    for hv in lab.hypervisors():
        conn = lab.libvirt(hv)
        try:
            dom = conn.lookupByName(name)
        except libvirt.libvirtError:
            continue
        state = dom.state()[0]
        found.append((hv.name, STATE_NAMES.get(state, str(state)), bool(dom.isPersistent())))
    return found


STATE_NAMES = {0: "nostate", 1: "running", 2: "blocked", 3: "paused", 4: "shutdown",
               5: "shutoff", 6: "crashed", 7: "pmsuspended"}


def create(lab, name, on, memory=128, dirty=None, storage="shared", cpu_model=None,
           networks=(), disk_mib=64, disk_fill_mib=0, fill_mib=0, wait=True):
    check_name(name)
    hv = lab.host(on, hypervisor=True)
    if memory < 64 or memory > 16384:
        raise LabError(on, "guest create", "--memory %d MiB is out of range (64-16384)" % memory)
    if dirty and not re.match(r"^\d+(,\d+(\.\d+)?(,\d+,\d+(\.\d+)?)?)?$", dirty):
        raise LabError(on, "guest create", "--dirty takes MiB[,MiBps[,after_s,MiBps]], e.g. 96,20 or 96,5,10,40")
    if dirty and int(dirty.split(",")[0]) >= memory - 48:
        raise LabError(on, "guest create", "--dirty working set must leave 48 MiB of the guest's %d MiB" % memory)
    # The guest's kernel and its unpacked initramfs need about 100 MiB beside a fill (a 384 MiB
    # guest filling 300 MiB was killed by its OOM killer).
    if fill_mib and (fill_mib < 0 or (int(dirty.split(",")[0]) if dirty else 0) + fill_mib > memory - 128):
        raise LabError(on, "guest create", "--fill plus the --dirty working set must leave 128 MiB of the guest's "
                       "%d MiB" % memory)
    if not 0 <= disk_fill_mib <= disk_mib:
        raise LabError(on, "guest create", "--disk-fill takes 0 to --disk-mib (%d) MiB" % disk_mib)
    if locate(lab, name):
        raise LabError(on, "guest create", "a guest named %s already exists (lab/virtlab guest rm %s)" % (name, name))
    conn = lab.libvirt(hv)
    disk_dir = config.SHARED_DIR if storage == "shared" else config.LOCAL_DIR
    disk = "%s/%s.qcow2" % (disk_dir, name)
    _remove_guest_files(lab, name)
    hv.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "%dM" % disk_mib], step="create guest disk")
    # The heartbeat disk, always on shared storage: the guest writes its counter there too, so a copy
    # that ran from older memory shows on the disk (tests/support/invariant.py, no rollback).
    hv.run(["qemu-img", "create", "-q", "-f", "raw", "%s/%s" % (config.SHARED_DIR, heartbeat_disk_name(name)), "1M"],
           step="create heartbeat disk")
    if disk_fill_mib:
        # Real data (not zeroes, which qcow2 and NBD skip) before QEMU opens the image: a disk
        # whose copy needs that much room on the destination.
        hv.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 %dM" % disk_fill_mib, disk], step="fill guest disk")
    dom = None
    try:
        dom = conn.defineXML(domain_xml(name, memory, dirty, storage, cpu_model, networks, fill_mib))
        dom.create()
    except Exception as exc:
        if dom is not None:
            try:
                dom.undefine()
            except Exception:
                pass
        _remove_guest_files(lab, name)
        raise LabError(on, "guest create", str(exc))
    _record_path(name).parent.mkdir(parents=True, exist_ok=True)
    _record_path(name).write_text(json.dumps({"home": on, "storage": storage}))
    if wait:
        wait_for(lambda: heartbeat(lab, name).get("counter", 0) > 0, 90, "guest %s heartbeat" % name, on, 0.2)
    return name


def _remove_guest_files(lab, name):
    for hv in lab.hypervisors():
        files = ["%s/%s.qcow2" % (config.LOCAL_DIR, name), "%s/%s.log" % (config.HEARTBEAT_DIR, name)]
        if hv.running():
            hv.run(["rm", "-f", "%s/%s.qcow2" % (config.SHARED_DIR, name),
                    "%s/%s" % (config.SHARED_DIR, heartbeat_disk_name(name))] + files,
                   step="remove guest files", check=False)
        else:  # a host that is off: its own files only (the shared ones go through a running host)
            for path in files:
                if hv.file(path).exists():
                    hv.file(path).unlink()
    try:
        _record_path(name).unlink()
    except OSError:
        pass


def remove(lab, name):
    check_name(name)
    import libvirt
    found = False
    for hv in lab.hypervisors():
        conn = lab.libvirt(hv)
        try:
            dom = conn.lookupByName(name)
        except libvirt.libvirtError:
            continue
        found = True
        if dom.isActive():
            dom.destroy()
        if dom.isPersistent():
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
    _remove_guest_files(lab, name)
    return found


def heartbeat(lab, name):
    """The guest's last heartbeat across all hypervisors' serial logs.

    Returns {counter, host, boot_id, uptime, boots, oops, oops_lines, stall_lines, age_s}: `boots` lists the
    distinct boot ids seen (more than one means the guest rebooted), `host` is where the newest
    line was written (the host it runs on), `age_s` how long ago that file was last written.
    """
    check_name(name)
    best = None
    boots = []
    oops = []
    stalls = []
    for hv in lab.hypervisors():
        path = hv.file("%s/%s.log" % (config.HEARTBEAT_DIR, name))
        try:
            data = path.read_text(errors="replace")
            mtime = path.stat().st_mtime
        except OSError:
            continue
        last = None
        lines = data.splitlines()
        for line in lines:
            m = HEARTBEAT_RE.search(line)
            if m:
                last = (int(m.group(1)), m.group(2), float(m.group(3)))
                if m.group(2) not in boots:
                    boots.append(m.group(2))
        host_oops, host_stalls = kernel_reports(lines)
        oops += ["%s: %s" % (hv.name, line) for line in host_oops]
        stalls += ["%s: %s" % (hv.name, line) for line in host_stalls]
        if last and (best is None or mtime > best[0] or (mtime == best[0] and last[0] > best[1][0])):
            best = (mtime, last, hv.name)
    if best is None:
        return {"name": name, "counter": 0, "host": None, "boots": boots, "oops": bool(oops), "oops_lines": oops,
                "stall_lines": stalls[:40]}
    mtime, (counter, boot_id, uptime), host = best
    return {"name": name, "counter": counter, "host": host, "boot_id": boot_id, "uptime": uptime,
            "boots": boots, "oops": bool(oops), "oops_lines": oops[:40], "stall_lines": stalls[:40],
            "age_s": round(time.time() - mtime, 2)}


def history(lab, name):
    """{host: [(boot_id, counter), ...]} in the order each host's serial log holds them: what every
    copy of the guest ever printed there. A copy that ran from older memory shows in it (a counter
    printed again, on the same host or another)."""
    check_name(name)
    found = {}
    for hv in lab.hypervisors():
        path = hv.file("%s/%s.log" % (config.HEARTBEAT_DIR, name))
        try:
            data = path.read_text(errors="replace")
        except OSError:
            continue
        found[hv.name] = [(m.group(2), int(m.group(1))) for m in HEARTBEAT_RE.finditer(data)]
    return found


def disk_heartbeat(lab, name):
    """(boot_id, counter) the guest last wrote to its heartbeat disk on shared storage, read from the
    storage host's brick (no client cache in between); None when there is none (yet)."""
    check_name(name)
    path = lab.host(config.STORAGE_HOST).root_path("%s/%s" % (config.GLUSTER_BRICK, heartbeat_disk_name(name)))
    try:
        with open(path, "rb") as handle:
            block = handle.read(512)
    except OSError:
        return None
    m = HEARTBEAT_RE.search(block.decode("ascii", "replace"))
    return (m.group(2), int(m.group(1))) if m else None


def heartbeat_disk_name(name):
    return "%s.hb" % name


def local_volumes(lab, name):
    """Hypervisors whose local image directory holds a disk image of the guest."""
    check_name(name)
    return [hv.name for hv in lab.hypervisors() if hv.running()
            and os.path.exists(hv.root_path("%s/%s.qcow2" % (config.LOCAL_DIR, name)))]


def _record_path(name):
    return config.STATE_ROOT / "guests" / ("%s.json" % name)


def home(lab, name):
    """The hypervisor the guest was created on (None if the lab did not create it)."""
    try:
        return json.loads(_record_path(name).read_text())["home"]
    except (OSError, ValueError, KeyError):
        return None


def jobs(lab, name):
    """['host: job'] for every migration or block job active on the guest, on every hypervisor.
    libvirt 9.0 refuses job statistics on the destination of an incoming migration: that refusal
    is how an incoming job shows."""
    import libvirt
    found = []
    for hv in lab.hypervisors():
        if not hv.running():
            continue
        try:
            dom = lab.libvirt(hv).lookupByName(name)
            if not dom.isActive():
                continue
        except libvirt.libvirtError:
            continue
        try:
            if dom.jobStats(0).get("type", 0) != 0:
                found.append("%s: migration or other domain job" % hv.name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_OPERATION_UNSUPPORTED:
                found.append("%s: incoming migration" % hv.name)
        for target in re.findall(r"<target dev='([^']+)'", dom.XMLDesc(0)):
            try:
                if dom.blockJobInfo(target, 0):
                    found.append("%s: block job on %s" % (hv.name, target))
            except libvirt.libvirtError:
                continue
    return found
