"""The lab as a whole: state, up (build or repair), down, status."""
import fcntl
import json
import os
import shutil

from . import config, guests, install, inventory, net, storage
from .hosts import HYPERVISOR, STORAGE, Host
from .proc import LabError, run

# The directory pools every hypervisor has: name -> directory (config: shared and local images).
LAB_POOLS = {"images": config.SHARED_DIR, "local": config.LOCAL_DIR}


class Lab:
    def __init__(self, log=print):
        self.log = log
        self.state = {"hosts": {}, "hypervisors": 0, "firewall": False, "tcp": False}
        self._lock = None
        self._conns = {}
        self._load()

    def _load(self):
        if config.STATE_FILE.exists():
            try:
                self.state.update(json.loads(config.STATE_FILE.read_text()))
            except ValueError:
                self.log("state file unreadable: treating the lab as absent")

    # --- state and hosts ---------------------------------------------------------------
    def lock(self):
        config.STATE_ROOT.mkdir(parents=True, exist_ok=True)
        self._lock = open(config.STATE_ROOT / "lock", "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        # Another virtlab may have changed the state while we waited: read it again, or our
        # save() would overwrite its records (e.g. the PID of a libvirtd it just started).
        self._load()

    def save(self):
        config.STATE_ROOT.mkdir(parents=True, exist_ok=True)
        tmp = config.STATE_FILE.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True))
        os.replace(tmp, config.STATE_FILE)

    def names(self):
        return [config.STORAGE_HOST] + config.hypervisor_names(self.state["hypervisors"])

    def _host(self, name):
        role = STORAGE if name == config.STORAGE_HOST else HYPERVISOR
        return Host(name, role, self.state["hosts"].setdefault(name, {}))

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
        """A libvirt connection to the hypervisor's libvirtd through its socket (no SSH needed)."""
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

    # --- up ---------------------------------------------------------------------------
    def up(self, hypervisors=None, firewall=None, tcp=None):
        """Build the lab or repair what is missing. Returns the list of things changed."""
        if os.geteuid() != 0:
            raise LabError("lab", "up", "must run as root (namespaces, mounts, daemons)")
        if not os.path.exists("/dev/fuse"):
            raise LabError("lab", "up", "/dev/fuse is missing: GlusterFS shared storage needs FUSE")
        changes = []
        if install.ensure_packages(log=self.log):
            changes.append("installed packages")
        self.lock()
        if hypervisors is not None:
            if not 1 <= hypervisors <= config.MAX_HYPERVISORS:
                raise LabError("lab", "up", "--hypervisors takes 1-%d" % config.MAX_HYPERVISORS)
        old_names = config.hypervisor_names(self.state.get("hypervisors") or 0)
        self.state["hypervisors"] = hypervisors or self.state.get("hypervisors") or config.DEFAULT_HYPERVISORS
        for name in old_names[self.state["hypervisors"]:]:
            self.log("removing %s (beyond --hypervisors)" % name)
            self._remove_host(self._host(name))
            changes.append("removed " + name)
        if firewall is not None:
            self.state["firewall"] = firewall
        if tcp is not None:
            self.state["tcp"] = tcp
        if guests.build_artefacts(log=self.log):
            changes.append("built guest artefacts")
        self._clear_stale_mounts()
        if net.ensure_bridge():
            changes.append("bridge " + config.BRIDGE)
        all_names = self.names()
        hosts = [self.storage_host()] + self.hypervisors()
        for h in hosts:
            if not h.anchor_alive():
                if h.record or net.netns_exists(h.name):
                    self.log("%s: leftovers of a dead host found; rebuilding it" % h.name)
                    self._remove_host(h, keep_files=True)
                h.prepare_files(all_names)
                h.start_anchor()
                changes.append("%s namespaces" % h.name)
                self.save()
            else:
                h.prepare_files(all_names)
        if inventory.write_trust(hosts, self.hypervisors()):
            changes.append("ssh trust")
        st = self.storage_host()
        changes += self._ensure(st, "sshd", lambda: self._start_sshd(st))
        changes += self._ensure(st, "glusterfs volume", lambda: storage.ensure_glusterd(st))
        changes += self._ensure(st, "iscsi target", lambda: storage.ensure_iscsi(st))
        for hv in self.hypervisors():
            changes += self._ensure(hv, "boot artefacts", lambda: guests.install_artefacts(hv))
            changes += self._ensure(hv, "virtlogd", lambda: hv.start_daemon(
                "virtlogd", ["virtlogd"], lambda: os.path.exists(hv.root_path("/run/libvirt/virtlogd-sock"))))
            changes += self._ensure(hv, "firewall", lambda: self._ensure_firewall(hv))
            changes += self._ensure(hv, "sshd", lambda: self._start_sshd(hv))
            changes += self._ensure(hv, "shared storage mount", lambda: storage.mount_shared(hv))
            changes += self._ensure(hv, "libvirtd", lambda: self.start_libvirtd(hv))
            changes += self._ensure(hv, "storage pools", lambda: self._ensure_pools(hv))
        if inventory.write_inventory(hosts, [st]):
            changes.append("inventory")
        if inventory.control_node_blocks(hosts):
            changes.append("control node /etc/hosts and ssh config")
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

    def _start_sshd(self, h):
        return h.start_daemon("sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config"],
                              lambda: h.tcp_open(22))

    def start_libvirtd(self, hv):
        cmd = ["libvirtd"] + (["--listen"] if self.state.get("tcp") else [])

        def ready():
            if not os.path.exists(hv.root_path("/run/libvirt/libvirt-sock")):
                return False
            self.drop_libvirt(hv)
            return self.libvirt(hv).getHostname() == hv.name
        # Below the lab's reaper: the QEMUs libvirtd daemonizes are reaped as soon as they end.
        return hv.start_daemon("libvirtd", cmd, ready, timeout=60, pidfile="/run/libvirtd.pid", reap_orphans=True)

    def _ensure_firewall(self, hv):
        if not self.state.get("firewall"):
            changed = hv.daemon_alive("firewalld") or hv.daemon_alive("dbus")
            hv.stop_daemon("firewalld")
            hv.stop_daemon("dbus")
            if changed:
                # firewalld leaves its nftables ruleset behind; without it the host is open again.
                hv.run(["nft", "flush", "ruleset"], check=False)
            return changed
        changed = hv.start_daemon("dbus", ["dbus-daemon", "--system", "--nofork", "--nopidfile"],
                                  lambda: os.path.exists(hv.root_path("/run/dbus/system_bus_socket")))
        changed |= hv.start_daemon(
            "firewalld", ["firewalld", "--nofork", "--nopid"],
            lambda: hv.run(["firewall-cmd", "--state"], check=False).stdout.strip() == "running", timeout=60)
        return changed

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

    def _clear_stale_mounts(self):
        """Mounts under the lab's state dir in the root namespace (none should be there, but a
        crashed run may leave a dead FUSE mount: 'Transport endpoint is not connected')."""
        root = str(config.STATE_ROOT)
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        for point in sorted((p for p in points if p.startswith(root + "/")), key=len, reverse=True):
            self.log("unmounting stale %s" % point)
            run(["umount", "-l", point], step="unmount stale mount", check=False)

    # --- down -------------------------------------------------------------------------
    def _remove_host(self, h, keep_files=False):
        self.drop_libvirt(h)
        h.teardown()  # empties h.record in place: the dict stays the host's entry in the state
        if not keep_files:
            self.state["hosts"].pop(h.name, None)
            shutil.rmtree(h.dir, ignore_errors=True)

    def down(self):
        if os.geteuid() != 0:
            raise LabError("lab", "down", "must run as root")
        self.lock()
        names = set(self.names()) | set(self.state["hosts"])
        # Also namespaces of ours that the state does not know (e.g. after a lost state file).
        res = run(["ip", "netns", "list"], check=False)
        names |= {line.split()[0][len(config.NETNS_PREFIX):] for line in res.stdout.splitlines()
                  if line.startswith(config.NETNS_PREFIX)}
        for name in sorted(names):
            role = STORAGE if name == config.STORAGE_HOST else HYPERVISOR
            self._remove_host(Host(name, role, self.state["hosts"].setdefault(name, {})))
        self._clear_stale_mounts()
        net.remove_bridge()
        inventory.remove_control_node_blocks()
        for path in (config.STATE_ROOT / "hosts", config.SSH_DIR, config.STATE_FILE, config.INVENTORY):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
        # Guest artefacts and the package cache stay: they are not lab state, and keep `up` fast.

    # --- status -------------------------------------------------------------------------
    def status(self):
        """[(host, address, {component: ok?})] and overall health."""
        rows = []
        for h in [self.storage_host()] + self.hypervisors():
            checks = {"namespaces": h.anchor_alive()}
            if checks["namespaces"]:
                checks["sshd"] = h.daemon_alive("sshd") and h.tcp_open(22)
                if h.role == STORAGE:
                    checks["glusterd"] = h.daemon_alive("glusterd") and storage.volume_healthy(h)
                    checks["tgtd"] = h.daemon_alive("tgtd") and storage.iscsi_healthy(h)
                else:
                    checks["virtlogd"] = h.daemon_alive("virtlogd")
                    checks["libvirtd"] = h.daemon_alive("libvirtd") and self._libvirt_ok(h)
                    checks["pools"] = checks["libvirtd"] and self._pools_ok(h)
                    if self.state.get("firewall"):
                        checks["firewalld"] = h.daemon_alive("firewalld")
                    checks["shared-mount"] = storage.shared_mount_healthy(h)
            rows.append((h.name, h.ip, checks))
        healthy = bool(self.state["hypervisors"]) and all(all(checks.values()) for dummy_name, dummy_ip, checks in rows)
        return rows, healthy

    def _pools_ok(self, hv):
        """The lab's own pools are running (libvirt stops a pool whose refresh failed)."""
        try:
            conn = self.libvirt(hv)
            return all(conn.storagePoolLookupByName(name).isActive() for name in LAB_POOLS)
        except Exception:
            return False

    def _libvirt_ok(self, hv):
        try:
            return self.libvirt(hv).getHostname() == hv.name
        except Exception:
            return False
