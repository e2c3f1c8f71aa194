"""One lab host: its namespaces (anchored by a sleeping process), private mounts and daemons.

A host is a network namespace (`ip netns`) plus a mount and UTS namespace held open by an
"anchor" process. Every daemon of the host is started with nsenter into the anchor's
namespaces, so it sees the host's own /run, /etc/libvirt, /var/lib/libvirt, /etc/ssh, ...
"""
import glob
import os
import shutil
import socket
import sys
import uuid

from . import config, net
from .proc import LabError, alive, identity, run, spawn, stop, wait_for

HYPERVISOR = "hypervisor"
STORAGE = "storage"
QEMU_PID_DIR = "/run/libvirt/qemu"  # libvirtd's pid file of each running guest's QEMU, inside the host
REAPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reaper.py")

# Per-host directory (under config.host_dir) -> path it is bind-mounted over inside the host.
COMMON_BINDS = [
    ("etc-ssh", "/etc/ssh"),
    ("root-ssh", "/root/.ssh"),
    ("hosts", "/etc/hosts"),
    ("hostname", "/etc/hostname"),
]
HYPERVISOR_BINDS = [
    ("etc-libvirt", "/etc/libvirt"),
    ("var-lib-libvirt", "/var/lib/libvirt"),
    ("var-log-libvirt", "/var/log/libvirt"),
    ("etc-firewalld", "/etc/firewalld"),
]
STORAGE_BINDS = [
    ("var-lib-glusterd", "/var/lib/glusterd"),
    ("var-log-glusterfs", "/var/log/glusterfs"),
    ("srv", "/srv"),
]

QEMU_CONF = """# virtlab: QEMU driver settings for a host inside namespaces (see docs/lab.md)
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ ]
migration_port_min = %d
migration_port_max = %d
""" % config.MIGRATION_PORTS

SSHD_CONFIG = """# virtlab sshd: root by key only, host key pinned by the lab's known_hosts
Port 22
ListenAddress {ip}
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile .ssh/authorized_keys
PidFile /run/sshd.pid
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
"""

FIREWALLD_ZONE = """<?xml version="1.0" encoding="utf-8"?>
<zone>
  <short>Public</short>
  <description>virtlab hypervisor: ssh, libvirt and the migration port range open.</description>
  <service name="ssh"/>
  <port protocol="tcp" port="%d"/>
  <port protocol="tcp" port="%d"/>
  <port protocol="tcp" port="%d-%d"/>
</zone>
""" % ((config.LIBVIRT_TCP_PORT, config.LIBVIRT_TLS_PORT) + config.MIGRATION_PORTS)


def write_if_changed(path, content, mode=0o644):
    path = str(path)
    try:
        with open(path) as f:
            if f.read() == content:
                return False
    except OSError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(content)
    os.chmod(path, mode)
    return True


def hosts_file(all_hosts):
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    lines += ["%s %s" % (config.host_ip(h), h) for h in all_hosts]
    return "\n".join(lines) + "\n"


class Host:
    """A lab host and its entry in the lab state (anchor and daemon identities)."""

    def __init__(self, name, role, record):
        self.name = name
        self.role = role
        self.record = record          # dict in state.json: mutated in place
        self.dir = config.host_dir(name)
        self.ip = config.host_ip(name)

    # --- namespaces -------------------------------------------------------------------
    @property
    def anchor(self):
        return self.record.get("anchor")

    def anchor_alive(self):
        return alive(self.anchor) and net.netns_exists(self.name)

    def enter(self):
        """Command prefix that runs a command inside this host's namespaces."""
        if not self.anchor_alive():
            raise LabError(self.name, "enter host", "host is not running (run: lab/virtlab up)")
        return ["nsenter", "-t", str(self.anchor[0]), "-m", "-u", "-n", "--"]

    def run(self, cmd, step=None, **kw):
        return run(self.enter() + cmd, host=self.name, step=step or cmd[0], **kw)

    def root_path(self, path):
        """A path inside the host as seen from the root namespace (through the anchor's /proc root)."""
        if not self.anchor_alive():
            raise LabError(self.name, "enter host", "host is not running (run: lab/virtlab up)")
        return "/proc/%d/root%s" % (self.anchor[0], path)

    def binds(self):
        extra = HYPERVISOR_BINDS if self.role == HYPERVISOR else STORAGE_BINDS
        return COMMON_BINDS + extra

    def prepare_files(self, all_hosts, host_uuid=None):
        """Create this host's state directories and configuration (idempotent)."""
        d = self.dir
        for sub, dummy_target in self.binds():
            if sub not in ("hosts", "hostname"):
                (d / sub).mkdir(parents=True, exist_ok=True)
        write_if_changed(d / "hosts", hosts_file(all_hosts))
        write_if_changed(d / "hostname", self.name + "\n")
        self._prepare_ssh()
        if self.role == HYPERVISOR:
            self._prepare_libvirt(host_uuid)
            self._prepare_firewalld()
        else:
            for sub in ("srv/bricks", "srv/iscsi"):
                (d / sub).mkdir(parents=True, exist_ok=True)

    def _prepare_ssh(self):
        etc = self.dir / "etc-ssh"
        if not (etc / "ssh_config").exists():
            shutil.copy2("/etc/ssh/ssh_config", etc / "ssh_config")
            if os.path.isdir("/etc/ssh/ssh_config.d"):
                shutil.copytree("/etc/ssh/ssh_config.d", etc / "ssh_config.d", dirs_exist_ok=True)
            shutil.copy2("/etc/ssh/moduli", etc / "moduli")
        key = etc / "ssh_host_ed25519_key"
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@" + self.name, "-f", str(key)],
                host=self.name, step="generate ssh host key")
        write_if_changed(etc / "sshd_config", SSHD_CONFIG.format(ip=self.ip))
        rssh = self.dir / "root-ssh"
        rssh.chmod(0o700)
        ckey = rssh / "id_ed25519"
        if not ckey.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@" + self.name, "-f", str(ckey)],
                host=self.name, step="generate ssh client key")

    def host_public_key(self):
        return (self.dir / "etc-ssh" / "ssh_host_ed25519_key.pub").read_text().split()[:2]

    def client_public_key(self):
        return (self.dir / "root-ssh" / "id_ed25519.pub").read_text().strip()

    def _prepare_libvirt(self, host_uuid):
        etc = self.dir / "etc-libvirt"
        if not (etc / "libvirtd.conf").exists():
            shutil.copytree("/etc/libvirt", etc, dirs_exist_ok=True, symlinks=True)
            # The distribution's NAT network would start dnsmasq in every host: not wanted.
            auto = etc / "qemu" / "networks" / "autostart" / "default.xml"
            if auto.is_symlink() or auto.exists():
                auto.unlink()
        conf = etc / "libvirtd.conf"
        text = conf.read_text()
        if "host_uuid" not in text or "# virtlab" not in text:
            # A distinct host UUID per host: libvirt refuses to "migrate to the same host" otherwise.
            text += "\n# virtlab\nhost_uuid = \"%s\"\nlisten_tls = 0\nlisten_tcp = 1\nauth_tcp = \"none\"\n" % (
                host_uuid or uuid.uuid4())
            write_if_changed(conf, text)
        write_if_changed(etc / "qemu.conf", QEMU_CONF)
        lib = self.dir / "var-lib-libvirt"
        for sub in ("images", "local", "boot", "heartbeat", "qemu"):
            (lib / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "var-log-libvirt" / "qemu").mkdir(parents=True, exist_ok=True)

    def _prepare_firewalld(self):
        etc = self.dir / "etc-firewalld"
        if not (etc / "firewalld.conf").exists() and os.path.isdir("/etc/firewalld"):
            shutil.copytree("/etc/firewalld", etc, dirs_exist_ok=True)
        write_if_changed(etc / "zones" / "public.xml", FIREWALLD_ZONE)

    def start_anchor(self):
        """Create the namespaces and private mounts of this host (from scratch)."""
        net.create_netns(self.name)
        self.record["anchor"] = spawn(
            ["ip", "netns", "exec", config.netns_name(self.name),
             "unshare", "--mount", "--uts", "--propagation", "private", "sleep", "infinity"],
            str(self.dir / "logs" / "anchor.log"))
        pid = self.anchor[0]
        own_mnt = os.readlink("/proc/self/ns/mnt")
        wait_for(lambda: os.readlink("/proc/%d/ns/mnt" % pid) != own_mnt
                 and open("/proc/%d/comm" % pid).read().strip() == "sleep",
                 10, "start namespace anchor", self.name, interval=0.05)
        self.record["anchor"] = identity(pid)
        script = ["set -e", "mount -t tmpfs -o mode=755 tmpfs /run",
                  "mkdir -p /run/sshd /run/libvirt /run/dbus /run/lock /run/gluster",
                  "mkdir -p /root/.ssh"]
        for sub, target in self.binds():
            script.append("mount --bind '%s' '%s'" % (self.dir / sub, target))
        script.append("hostname '%s'" % self.name)
        run(["nsenter", "-t", str(pid), "-m", "-u", "-n", "--", "sh", "-c", "\n".join(script)],
            host=self.name, step="private mounts")

    def mounts(self):
        """Mount points inside the host (from the anchor's mountinfo)."""
        with open("/proc/%d/mountinfo" % self.anchor[0]) as f:
            return {line.split()[4]: line.split(" - ")[1].split()[0] for line in f}

    # --- daemons ---------------------------------------------------------------------
    def daemon_alive(self, name):
        return alive(self.record.setdefault("daemons", {}).get(name))

    def start_daemon(self, name, cmd, ready, timeout=30, pidfile=None, reap_orphans=False):
        """Start a foreground daemon inside the host unless it runs; wait until ready().

        With `pidfile`, a daemon of this host that runs under its pid file but is not the
        one we recorded (started by someone else) is adopted rather than fought with.
        With `reap_orphans`, the daemon runs below reaper.py (recorded in its place), which
        reaps the processes it daemonizes as soon as they end, as systemd would (libvirtd's QEMUs)."""
        if self.daemon_alive(name) and _safe(ready):
            return False
        adopted = self.pidfile_process(pidfile) if pidfile else None
        if adopted:
            self.record["daemons"][name] = adopted
            if _safe(ready):
                return True
        stop(self.record["daemons"].get(name))
        if reap_orphans:
            cmd = [sys.executable, REAPER, "--"] + list(cmd)
        self.record["daemons"][name] = spawn(self.enter() + cmd, str(self.dir / "logs" / (name + ".log")))
        ident = self.record["daemons"][name]

        def up():
            if not alive(ident):
                raise LabError(self.name, "start " + name, "exited at once; see %s" % (
                    self.dir / "logs" / (name + ".log")))
            return ready()
        wait_for(up, timeout, "start " + name, self.name)
        return True

    def pidfile_process(self, pidfile):
        """Identity of the live process named by a pid file inside this host, if it is in
        this host's network namespace."""
        try:
            pid = int(open(self.root_path(pidfile)).read().split()[0])
            same_ns = os.readlink("/proc/%d/ns/net" % pid) == os.readlink("/proc/%d/ns/net" % self.anchor[0])
        except (OSError, ValueError, IndexError):
            return None
        ident = identity(pid)
        return ident if same_ns and alive(ident) else None

    def qemu_processes(self):
        """Identities of the QEMU processes (and their helpers) libvirtd runs in this host, from
        the pid files it keeps for them in the host's /run (its own `driver.pid` names libvirtd,
        a daemon of ours, which is left out)."""
        ours = list(self.record.get("daemons", {}).values())
        found = []
        for path in sorted(glob.glob(self.root_path(QEMU_PID_DIR) + "/*.pid")):
            ident = self.pidfile_process("%s/%s" % (QEMU_PID_DIR, os.path.basename(path)))
            if ident and ident not in ours:
                found.append(ident)
        return found

    def stop_daemon(self, name):
        stop(self.record.setdefault("daemons", {}).get(name))
        self.record["daemons"].pop(name, None)

    def tcp_open(self, port, timeout=1.0):
        try:
            with socket.create_connection((self.ip, port), timeout=timeout):
                return True
        except OSError:
            return False

    def teardown(self):
        """End every process of the host (recorded ones first, then anything left in its
        network namespace, e.g. QEMU or the FUSE client), then remove its namespace."""
        for ident in list(self.record.get("daemons", {}).values()):
            stop(ident, timeout=5)
        for pid in net.netns_pids(self.name):
            stop(identity(pid), timeout=5)
        stop(self.anchor, timeout=2)
        net.delete_netns(self.name)
        self.record.clear()


def _safe(fn):
    try:
        return fn()
    except Exception:
        return False
