"""Faults for the fault-injection tests: cut a host's link, shape or drop its traffic, make its
TCP give up on a silent peer in seconds, stop and start its libvirtd, fill its local image
directory, power a hypervisor off and on, reboot a host.

This kernel has no sch_netem, so there is no way to add delay here: `netem --delay` is
refused with that reason. Rate limits use tbf (both directions), loss uses nftables'
random number generator in the host's namespace.
"""
import signal

from . import config, net, services, storage
from .proc import LabError, run, stop, wait_for

FAULT_TABLE = "virtlab_fault"
# The kernel's default net.ipv4.tcp_retries2: 15 retransmissions of unanswered data (about 15
# minutes) before TCP gives up on a connection; `tcp-give-up` lowers it until `clear`.
TCP_RETRIES2_DEFAULT = 15
TCP_RETRIES2_GIVE_UP = 4
DISK_FULL_SOURCE = "virtlab-disk-full"  # the tmpfs' source name: how `disk-free` finds our mount


def link(lab, host, up):
    """link-down cuts the host off the lab network. link-up restores it and waits until the
    host's storage is back as it was: while the link was down, its GlusterFS mount answered
    "Transport endpoint is not connected", and libvirt stops a pool whose refresh fails then
    (a migration's storage check refreshes the destination's pools), so the lab's pools that
    stopped are started again. Without this wait the next test found host-b's shared pool
    stopped and every later migration to host-b was refused."""
    h = lab.host(host)
    net.set_link(h.name, up)
    if up and h.role == "hypervisor" and h.running():
        _reconnect_shared_mount(h)
        if not services.libvirt_stopped(h):
            _start_stopped_pools(lab, h, "link-up")


def _reconnect_shared_mount(h):
    """Wait for the host's GlusterFS client to reconnect; mount the share again if it does not."""
    try:
        wait_for(lambda: storage.shared_mount_healthy(h), 20, "shared storage reconnect", h.name, interval=1)
    except LabError:
        storage.mount_shared(h)


def _start_stopped_pools(lab, h, step):
    """Start the pools marked autostart that libvirt stopped, as a boot (or an operator) would."""
    for pool in lab.libvirt(h).listAllStoragePools(0):
        if pool.autostart() and not pool.isActive():
            try:
                pool.create(0)
            except Exception as exc:
                raise LabError(h.name, step, "storage pool %s does not start: %s" % (pool.name(), exc))


def netem(lab, host, delay_ms=0, loss_pct=0.0, rate_mbit=0.0):
    h = lab.host(host)
    if delay_ms:
        raise LabError(h.name, "fault netem", "--delay needs the kernel's sch_netem, which this kernel "
                       "does not have; --loss and --rate work")
    if not (0 <= loss_pct <= 100) or rate_mbit < 0:
        raise LabError(h.name, "fault netem", "--loss takes 0-100 and --rate a positive Mbit/s figure")
    clear(lab, host)
    if rate_mbit:
        rate = "%gmbit" % rate_mbit
        # Shape both directions: the root-side veth end carries traffic to the host, eth0 from it.
        for prefix, dev in (([], config.netns_name(h.name)), (["-n", config.netns_name(h.name)], "eth0")):
            run(["tc"] + prefix + ["qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate,
                                   "burst", "64kb", "latency", "200ms"], host=h.name, step="fault rate")
    if loss_pct:
        per_mille = int(round(loss_pct * 10))
        rules = "\n".join(
            "add chain inet %s %s { type filter hook %s priority -10; }\n"
            "add rule inet %s %s numgen random mod 1000 < %d drop" % (
                FAULT_TABLE, hook, hook, FAULT_TABLE, hook, per_mille)
            for hook in ("input", "output"))
        h.run(["nft", "-f", "-"], step="fault loss", input="add table inet %s\n%s\n" % (FAULT_TABLE, rules))


def stream_reset(lab, host):
    """The host answers QEMU's migration stream (libvirt's migration ports) with TCP resets, in
    both directions of an established stream, until `clear`: a broken stream with the link up."""
    h = lab.host(host, hypervisor=True)
    clear(lab, host)
    low, high = config.MIGRATION_PORTS
    h.run(["nft", "-f", "-"], step="fault stream-reset", input=(
        "add table inet %s\nadd chain inet %s input { type filter hook input priority -10; }\n"
        "add rule inet %s input tcp dport %d-%d reject with tcp reset\n" % (
            FAULT_TABLE, FAULT_TABLE, FAULT_TABLE, low, high)))


def tcp_retries(lab, host, retries):
    """net.ipv4.tcp_retries2 in the host's network namespace (set from outside it: the machine's
    /proc/sys is read-only inside).  With 4, a connection whose peer stops answering fails after a
    few seconds of retransmissions, as any connection does after a long outage (with the default 15,
    about 15 minutes): a post-copy stream cut off then dies on both hosts instead of resuming when
    the link is back, which is the case post-copy recovery is for."""
    h = lab.host(host)
    run(["ip", "netns", "exec", config.netns_name(h.name), "sysctl", "-q", "-w",
         "net.ipv4.tcp_retries2=%d" % retries], host=h.name, step="fault tcp-give-up")


def disk_full(lab, host, size_mib):
    """Mount a `size_mib` tmpfs over the host's local image directory, in its own mount namespace:
    a destination whose disk is (nearly) full for storage-copy faults. It hides what is there until
    `disk-free`; a new qcow2 volume still fits, the data copied into it does not."""
    h = lab.host(host, hypervisor=True)
    if not 1 <= size_mib <= 4096:
        raise LabError(h.name, "fault disk-full", "--size takes 1-4096 MiB")
    disk_free(lab, host)
    h.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0711" % size_mib, DISK_FULL_SOURCE, config.LOCAL_DIR],
          step="fault disk-full")


def _disk_full_mounts(h):
    """How many of our tmpfs are stacked on the local image directory inside the host."""
    mounts = h.run(["findmnt", "-n", "-r", "-o", "SOURCE", "--mountpoint", config.LOCAL_DIR], check=False).stdout
    return sum(1 for line in mounts.splitlines() if line.strip() == DISK_FULL_SOURCE)


def disk_free(lab, host):
    h = lab.host(host, hypervisor=True)
    for dummy in range(_disk_full_mounts(h)):
        h.run(["umount", config.LOCAL_DIR], step="fault disk-free")


def clear(lab, host):
    h = lab.host(host)
    if h.role == "hypervisor":
        disk_free(lab, host)
    for prefix, dev in (([], config.netns_name(h.name)), (["-n", config.netns_name(h.name)], "eth0")):
        run(["tc"] + prefix + ["qdisc", "del", "dev", dev, "root"], host=h.name, check=False)
    h.run(["nft", "delete", "table", "inet", FAULT_TABLE], check=False)
    tcp_retries(lab, host, TCP_RETRIES2_DEFAULT)
    link(lab, host, up=True)


def libvirtd(lab, host, start):
    """start: libvirt's daemons and their sockets; stop: the daemons and the sockets that would
    start them again: libvirtd, or virtqemud, virtproxyd and the other modular daemons
    (services.py, daemons.py). Guests keep running either way."""
    h = lab.host(host, hypervisor=True)
    if start:
        services.start_libvirt(lab, h)
    else:
        services.stop_libvirt(lab, h)


def power(lab, host, on):
    """power-off: the hypervisor dies as in a power loss. Every process of the machine gets
    SIGKILL at once (QEMU included: the guests get no shutdown, nothing is flushed) and its link
    goes down, so nothing answers at its address; its guests stay defined there, shut off.
    power-on: the link comes back and the machine boots: systemd mounts the shared storage from
    /etc/fstab and starts its services; libvirtd starts its autostart pools and guests (the
    lab's guests are not marked autostart, so none starts). Returns once the host is whole again."""
    h = lab.host(host, hypervisor=True)
    lab.drop_libvirt(h)
    if not on:
        h.kill()
        net.set_link(h.name, up=False)
        lab.save()
        return
    net.set_link(h.name, up=True)
    h.boot()
    lab.save()
    wait_whole(lab, h, "power-on")


def reboot(lab, host):
    """`systemctl reboot` inside the host, as an operator or ansible.builtin.reboot does; the
    supervisor boots it again. Returns once the host is whole again."""
    h = lab.host(host)
    lab.drop_libvirt(h)
    h.reboot()
    if h.role == "hypervisor":
        wait_whole(lab, h, "reboot")


def wait_whole(lab, h, step):
    """What a booted hypervisor has: its shared storage mounted, libvirtd answering, and the
    pools marked autostart running."""
    _reconnect_shared_mount(h)
    services.start_libvirt(lab, h)
    _start_stopped_pools(lab, h, step)


def kill_qemu(lab, host, guest):
    """The QEMU of one guest dies (SIGKILL) on a host: a crash of that process alone. libvirtd sees
    its monitor close and marks the domain shut off (crashed); nothing else on the host changes."""
    h = lab.host(host, hypervisor=True)
    ident = h.qemu_process(guest)
    if not ident:
        raise LabError(host, "fault kill-qemu", "no running QEMU of guest %s on %s" % (guest, host))
    stop(ident, timeout=10, sig=signal.SIGKILL)


def shared_storage(lab, up):
    """storage-down stops the GlusterFS volume's brick process on the storage host: every
    hypervisor's shared mount then fails its I/O (a storage outage). storage-up starts it again and
    waits until every hypervisor's mount answers and the pools libvirt stopped meanwhile run."""
    s = lab.host(config.STORAGE_HOST)
    if not up:
        res = s.run(["pkill", "-KILL", "-f", "glusterfsd.*%s" % config.GLUSTER_VOLUME], step="storage-down", check=False)
        if res.returncode not in (0, 1):
            raise LabError(s.name, "storage-down", "could not stop the brick: %s" % res.stderr.strip())
        return
    storage.gluster(s, "volume", "start", config.GLUSTER_VOLUME, "force")
    wait_for(lambda: storage.volume_healthy(s), 30, "brick up", s.name, interval=1)
    for h in lab.hypervisors():
        if not h.running():
            continue
        _reconnect_shared_mount(h)
        if not services.libvirt_stopped(h):
            _start_stopped_pools(lab, h, "storage-up")
