"""The lab as a whole: state, up (build or repair), down, status."""
import fcntl
import json
import os
import shutil
import socket
import sys
import urllib.parse

from . import config, guests, images, install, inventory, layout, net, provision, services, storage
from .machine import HYPERVISOR, STORAGE, Machine, remove_cgroup
from .proc import LabError, alive, run, spawn, stop, wait_for

APT_PROXY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "aptproxy.py")

# The directory pools every hypervisor has: name -> directory (config: shared and local images).
LAB_POOLS = {"images": config.SHARED_DIR, "local": config.LOCAL_DIR}


class Lab:
    def __init__(self, log=print):
        self.log = log
        self.state = {"hosts": {}, "hypervisors": 0, "firewall": False, "releases": {}, "daemons": {}}
        self._lock = None
        self._conns = {}
        self._machines = {}
        self._load()

    def _load(self):
        if config.STATE_FILE.exists():
            try:
                self.state.update(json.loads(config.STATE_FILE.read_text()))
            except ValueError:
                self.log("state file unreadable: treating the lab as absent")
        self._machines = {}

    # --- state and hosts ---------------------------------------------------------------
    def lock(self):
        config.STATE_ROOT.mkdir(parents=True, exist_ok=True)
        self._lock = open(config.STATE_ROOT / "lock", "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        # Another virtlab may have changed the state while we waited: read it again, or our
        # save() would overwrite its records (e.g. the supervisor of a machine it just booted).
        self._load()

    def save(self):
        config.STATE_ROOT.mkdir(parents=True, exist_ok=True)
        tmp = config.STATE_FILE.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True))
        os.replace(tmp, config.STATE_FILE)

    def names(self):
        return [config.STORAGE_HOST] + config.hypervisor_names(self.state["hypervisors"])

    def _host(self, name):
        """The host's Machine, one per name (it caches its PID 1), recorded in the state."""
        if name not in self._machines:
            role = STORAGE if name == config.STORAGE_HOST else HYPERVISOR
            self._machines[name] = Machine(name, role, self.state["hosts"].setdefault(name, {}))
        return self._machines[name]

    def hypervisors(self):
        return [self._host(n) for n in config.hypervisor_names(self.state["hypervisors"])]

    def storage_host(self):
        return self._host(config.STORAGE_HOST)

    def host(self, name, hypervisor=False):
        allowed = config.hypervisor_names(self.state["hypervisors"]) if hypervisor else self.names()
        if name not in allowed:
            raise LabError(name, "find host", "unknown %shost (lab hosts: %s)" % (
                "hypervisor " if hypervisor else "", ", ".join(allowed) or "none; run lab/virtlab up"))
        return self._host(name)

    def libvirt(self, hv):
        """A libvirt connection to the hypervisor's libvirtd through its socket (no SSH needed;
        the socket unit starts libvirtd if it is not running)."""
        import libvirt
        # libvirt prints every error to stderr by default; we report errors ourselves.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        conn = self._conns.get(hv.name)
        if conn is None or not conn.isAlive():
            uri = "qemu:///system?socket=%s" % hv.root_path("/run/libvirt/libvirt-sock")
            try:
                conn = libvirt.open(uri)
            except libvirt.libvirtError as exc:
                raise LabError(hv.name, "connect to libvirtd", exc.get_error_message())
            self._conns[hv.name] = conn
        return conn

    def drop_libvirt(self, hv):
        conn = self._conns.pop(hv.name, None)
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def libvirt_answers(self, hv):
        """libvirt on the hypervisor answers, as that host (a fresh connection)."""
        self.drop_libvirt(hv)
        return self.libvirt(hv).getHostname() == hv.name

    # --- up ---------------------------------------------------------------------------
    def up(self, hypervisors=None, firewall=None, tcp=None, releases=None, config_file=None, daemons=None):
        """Build the lab or repair what is missing. Returns the list of things changed."""
        if os.geteuid() != 0:
            raise LabError("lab", "up", "must run as root (namespaces, mounts, machines)")
        if not os.path.exists("/dev/fuse"):
            raise LabError("lab", "up", "/dev/fuse is missing: GlusterFS shared storage needs FUSE")
        settings = layout.load_config(config_file) if config_file else {}
        chosen = dict(settings.get("release", {}))
        chosen.update(releases or {})
        chosen_daemons = dict(settings.get("daemons", {}))
        chosen_daemons.update(daemons or {})
        hypervisors = hypervisors or settings.get("hypervisors")
        firewall = settings.get("firewall") if firewall is None else firewall
        tcp = settings.get("tcp") if tcp is None else tcp
        if hypervisors is not None and not 1 <= hypervisors <= config.MAX_HYPERVISORS:
            raise LabError("lab", "up", "--hypervisors takes 1-%d" % config.MAX_HYPERVISORS)
        changes = []
        changes += ensure_kernel_limits(self.log)
        self.lock()
        count = hypervisors or self.state.get("hypervisors") or layout.DEFAULT_HYPERVISORS
        wanted = [config.STORAGE_HOST] + config.hypervisor_names(count)
        # Bad input is refused here, before anything changes.
        host_releases = layout.releases(wanted, chosen, self.state.get("releases") or {})
        host_daemons = layout.daemon_layouts(wanted, chosen_daemons, self.state.get("daemons") or {})
        old_names = config.hypervisor_names(self.state.get("hypervisors") or 0)
        self.state["hypervisors"] = count
        for name in old_names[count:]:
            self.log("removing %s (beyond --hypervisors)" % name)
            self._remove_host(self._host(name))
            changes.append("removed " + name)
        if firewall is not None:
            self.state["firewall"] = firewall
        self.state["releases"] = host_releases
        self.state["daemons"] = host_daemons
        self.save()
        image_paths, prepared = prepare(self.image_keys().values(), log=self.log)
        changes += prepared
        if net.ensure_bridge():
            changes.append("bridge " + config.BRIDGE)
        if self._ensure_apt_proxy():
            changes.append("apt proxy")
        for h in [self.storage_host()] + self.hypervisors():
            changes += self._ensure_layer(h, image_paths[self.image_keys()[h.name]])
        hosts = [self.storage_host()] + self.hypervisors()   # (a host made again is a new Machine)
        if inventory.write_trust(hosts, self.hypervisors()):
            changes.append("ssh trust")
        for hv in self.hypervisors():
            changes += self._ensure(hv, "boot artefacts", lambda: guests.install_artefacts(hv))
            changes += self._ensure(hv, "firewall", lambda: services.set_firewall(hv, self.state["firewall"]))
        st = self.storage_host()
        # The storage host first: the hypervisors mount its volume while they boot.
        changes += self._ensure(st, "boot", st.boot)
        changes += self._ensure(st, "glusterfs volume", lambda: storage.ensure_glusterd(st))
        changes += self._ensure(st, "iscsi target", lambda: storage.ensure_iscsi(st))
        booting = [hv for hv in self.hypervisors() if hv.start()]
        for hv in booting:
            hv.wait_booted()
            changes.append("%s boot" % hv.name)
            self.log("%s: booted (%s)" % (hv.name, self.image_keys()[hv.name]))
        self.save()
        for hv in self.hypervisors():
            changes += self._ensure(hv, "sshd", lambda: services.ensure_active(hv, "ssh.service"))
            changes += self._ensure(hv, "shared storage mount", lambda: storage.mount_shared(hv))
            if tcp is not None:
                changes += self._ensure(hv, "libvirt tcp", lambda: services.set_libvirt_tcp(hv, tcp))
            changes += self._ensure(hv, "libvirtd", lambda: services.start_libvirt(self, hv))
            changes += self._ensure(hv, "storage pools", lambda: self._ensure_pools(hv))
        changes += self._ensure(st, "sshd", lambda: services.ensure_active(st, "ssh.service"))
        if inventory.write_inventory(hosts, [st], self.state["releases"]):
            changes.append("inventory")
        if inventory.write_ssh_config(hosts):
            changes.append("ssh config")
        if config.DEFAULT_INSTANCE and inventory.control_node_blocks(hosts):
            changes.append("control node /etc/hosts and ssh config")
        return changes

    def image_keys(self):
        """{host: the name of the image it boots} (release, and `-modular` for modular daemons)."""
        chosen = self.state.get("daemons") or {}
        return dict((host, images.image_key(release, chosen.get(host) or layout.default_daemons(host)))
                    for host, release in (self.state.get("releases") or {}).items())

    def _ensure_layer(self, h, image):
        """The host's network namespace, root file system on `image` and provisioning; a host
        on another image (a new release or a rebuilt image) is made again from scratch."""
        changes = []
        if "anchor" in h.record:
            # A host of the lab before issue 16 (namespaces, daemons started by the lab): its
            # processes would hold the address and ports the machine needs.
            remake = "a host of the namespace lab: removed, made again as a machine"
        elif h.record.get("image") and h.record.get("layer_generation") != config.LAYER_GENERATION:
            remake = "its layer is of an older lab (generation %s, now %d): the host is made again" % (
                h.record.get("layer_generation", 1), config.LAYER_GENERATION)
        elif h.record.get("image") and h.record["image"] != str(image):
            remake = "moving to image %s (was %s): the host is made again" % (
                image.name, os.path.basename(h.record["image"]))
        else:
            remake = None
        if remake:
            self.log("%s: %s" % (h.name, remake))
            self._remove_host(h)
            h = self._host(h.name)
            changes.append("%s made again" % h.name)
        h.record["image"] = str(image)
        h.record["layer_generation"] = config.LAYER_GENERATION
        h.record["release"] = self.state["releases"][h.name]
        if not net.netns_exists(h.name):
            if h.running():
                h.kill()     # a machine whose network namespace is gone: it must boot again
            net.create_netns(h.name)
            changes.append("%s network" % h.name)
        if h.mount_root(image):
            changes.append("%s root file system" % h.name)
        if provision.provision(h, self.names()):
            changes.append("%s provisioned" % h.name)
            self.log("%s: provisioned (%s)" % (h.name, h.record["release"]))
        if not h.running():
            net.set_link(h.name, up=True)   # after a power-off
        self.save()
        return changes

    def _ensure(self, host, what, action):
        try:
            changed = action()
        finally:
            self.save()
        if changed:
            self.log("%s: %s ready" % (host.name, what))
            return ["%s %s" % (host.name, what)]
        return []

    def _ensure_apt_proxy(self):
        """aptproxy.py on the gateway address, so apt inside the hosts reaches the mirror."""
        if alive(self.state.get("apt_proxy")):
            return False
        mirror = urllib.parse.urlsplit(images.MIRROR).hostname
        self.state["apt_proxy"] = spawn(
            [sys.executable, APT_PROXY, "--listen", "%s:%d" % (config.GATEWAY, config.APT_PROXY_PORT), "--allow", mirror],
            str(config.STATE_ROOT / "apt-proxy.log"))
        self.save()

        def listening():
            with socket.create_connection((config.GATEWAY, config.APT_PROXY_PORT), timeout=1):
                return True
        wait_for(listening, 10, "start the apt proxy", "lab")
        return True

    def _ensure_pools(self, hv):
        """Directory pools for shared and local images, active and autostarted on every host:
        storage-copy migration needs a pool at the disk's directory on the destination."""
        import libvirt
        conn = self.libvirt(hv)
        changed = False
        for pool_name, path in LAB_POOLS.items():
            try:
                pool = conn.storagePoolLookupByName(pool_name)
            except libvirt.libvirtError:
                xml = ("<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>"
                       % (pool_name, path))
                pool = conn.storagePoolDefineXML(xml, 0)
                changed = True
            if not pool.isActive():
                pool.create(0)
                changed = True
            if not pool.autostart():
                pool.setAutostart(1)
                changed = True
        return changed

    # --- down -------------------------------------------------------------------------
    def reset(self, names):
        """Hosts made again from their image: their own layer (packages installed, files
        written, an upgrade) is thrown away. Their guests are gone with it."""
        if os.geteuid() != 0:
            raise LabError("lab", "reset", "must run as root")
        self.lock()
        for name in names:
            self.host(name)   # refuses a name that is not a host of this lab
        for name in names:
            self.log("%s: reset to its image" % name)
            self._remove_host(self._host(name))
        self.save()
        return self.up()

    def _remove_host(self, h):
        self.drop_libvirt(h)
        h.teardown()  # empties h.record in place
        self.state["hosts"].pop(h.name, None)
        self._machines.pop(h.name, None)
        shutil.rmtree(h.dir, ignore_errors=True)

    def down(self):
        if os.geteuid() != 0:
            raise LabError("lab", "down", "must run as root")
        self.lock()
        names = set(self.names()) | set(self.state["hosts"])
        # Also hosts of ours that the state does not know (e.g. after a lost state file).
        res = run(["ip", "netns", "list"], check=False)
        names |= {line.split()[0][len(config.NETNS_PREFIX):] for line in res.stdout.splitlines()
                  if line.startswith(config.NETNS_PREFIX)}
        if (config.STATE_ROOT / "hosts").is_dir():
            names |= set(os.listdir(config.STATE_ROOT / "hosts"))
        for name in sorted(names):
            self._remove_host(self._host(name))
        stop(self.state.pop("apt_proxy", None))
        self._clear_stale_mounts()
        remove_cgroup(config.CGROUP)
        net.remove_bridge()
        if config.DEFAULT_INSTANCE:
            inventory.remove_control_node_blocks()
        for path in (config.STATE_ROOT / "hosts", config.STATE_ROOT / "guests", config.SSH_DIR, config.STATE_FILE,
                     config.INVENTORY, config.STATE_ROOT / "apt-proxy.log"):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
        # Guest artefacts and the host images stay: they are not lab state, and keep `up` fast.

    def _clear_stale_mounts(self):
        """Mounts left under the lab's state directory (a crashed run's overlay)."""
        root = str(config.STATE_ROOT)
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        for point in sorted((p for p in points if p.startswith(root + "/")), key=len, reverse=True):
            self.log("unmounting stale %s" % point)
            run(["umount", "-l", point], step="unmount stale mount", check=False)

    # --- status -------------------------------------------------------------------------
    def status(self):
        """[(host, address, release, {component: ok?})] and overall health."""
        rows = []
        for h in [self.storage_host()] + self.hypervisors():
            checks = {"machine": h.running()}
            if checks["machine"]:
                checks["sshd"] = h.active("ssh.service") and h.tcp_open(22)
                if h.role == STORAGE:
                    checks["glusterd"] = h.active("glusterd.service") and storage.volume_healthy(h)
                    checks["tgtd"] = h.active("tgt.service") and storage.iscsi_healthy(h)
                else:
                    checks["virtlogd"] = h.active("virtlogd.socket")
                    checks["libvirtd"] = _safe(lambda: self.libvirt_answers(h))
                    checks["pools"] = checks["libvirtd"] and self._pools_ok(h)
                    if self.state.get("firewall"):
                        checks["firewalld"] = h.active("firewalld.service")
                    checks["shared-mount"] = storage.shared_mount_healthy(h)
            rows.append((h.name, h.ip, self.state.get("releases", {}).get(h.name, "?"), checks))
        healthy = bool(self.state["hypervisors"]) and all(all(checks.values()) for *dummy, checks in rows)
        return rows, healthy

    def _pools_ok(self, hv):
        """The lab's own pools are running (libvirt stops a pool whose refresh failed)."""
        try:
            conn = self.libvirt(hv)
            return all(conn.storagePoolLookupByName(name).isActive() for name in LAB_POOLS)
        except Exception:
            return False


def prepare(releases, log=print):
    """What hosts are made from, built where missing: the control node's packages, the host image of
    each release, the guests' kernel and initramfs. Returns ({release: image path}, changes).

    One process at a time (a lock in the shared cache): `make test` runs this in the background
    (`virtlab images --build`) while its first stages run, and `up` then waits for it rather than
    running apt beside it or building the same artefacts twice."""
    changes = []
    with prepare_lock():
        if install.ensure_packages(log=log):
            changes.append("installed packages")
        image_paths = images.ensure(releases, log=log)
        if guests.build_artefacts(log=log):
            changes.append("built guest artefacts")
    return image_paths, changes


class prepare_lock:
    """The lock `prepare` and the upgrade repository hold while they build into the caches."""

    def __enter__(self):
        config.SHARED_CACHE.mkdir(parents=True, exist_ok=True)
        self._file = open(config.SHARED_CACHE / "prepare.lock", "w")
        fcntl.flock(self._file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self._file.close()  # closing releases the lock


def _safe(fn):
    try:
        return fn()
    except Exception:
        return False


# Every machine's systemd, libvirtd, dbus, firewalld... takes inotify instances, all counted for root
# on the one kernel: Debian's default of 128 is used up by a lab or two (seen: trixie's libvirtd,
# started again by its socket after its idle timeout, failed with "Unable to find default local file
# monitor type" and the connection that started it hung). Raised, never lowered.
KERNEL_LIMITS = {"/proc/sys/fs/inotify/max_user_instances": 8192, "/proc/sys/fs/inotify/max_user_watches": 1048576}


def ensure_kernel_limits(log):
    changed = []
    for path, wanted in KERNEL_LIMITS.items():
        with open(path) as handle:
            current = int(handle.read().split()[0])
        if current < wanted:
            with open(path, "w") as handle:
                handle.write(str(wanted))
            log("raised %s from %d to %d" % (os.path.basename(path), current, wanted))
            changed.append("raised " + os.path.basename(path))
    return changed
