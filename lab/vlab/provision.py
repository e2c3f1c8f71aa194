"""What a new lab host gets on top of its image, written into its own layer before it first boots.

This is the lab's "installer": the host's identity (hostname, machine id, which libvirt also
takes as the host UUID, SSH host key), the lab's SSH trust, apt's proxy to the mirror
(aptproxy.py), the shared storage in /etc/fstab, the firewall zone, which of the image's
services this host's role runs, and on the storage host the iSCSI target's config. It runs once
per host (a marker records it); afterwards the files are the host's own, and the roles under
test may change them as on any machine. Only the SSH trust (keys, known_hosts, /etc/hosts) is
kept current on every `up`, since it lists the other hosts (inventory.py).
"""
import os
import uuid

from . import config, daemons
from .machine import HYPERVISOR
from .proc import run

MARKER = "/etc/virtlab-provisioned"

# Each role runs only its own services (Debian enables most of what it installs, not glusterd); a
# hypervisor runs the libvirt daemons of its layout (daemons.py), never both.
STORAGE_ONLY_UNITS = ["glusterd.service", "tgt.service"]


def hypervisor_units(m):
    """(units a hypervisor enables, units it disables): its layout's daemons and sockets and the
    common ones; the other layout's daemons (and the storage host's services) off."""
    units = daemons.units_of(m)
    enable = list(units.services + units.sockets + daemons.COMMON_UNITS)
    disable = [u for u in daemons.every_daemon_unit() if u not in enable] + STORAGE_ONLY_UNITS
    return enable, disable


SSHD_DROP_IN = """# virtlab: root by key only; the host key is the one the lab's known_hosts pins
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
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

FSTAB_SHARED = ("# virtlab: the shared guest images (GlusterFS volume on the storage host)\n"
                "{host}:/{volume} {path} glusterfs defaults,_netdev,log-level=WARNING 0 0\n")

TGT_TARGET = """# virtlab: the storage host's iSCSI target (tgt, userspace), loaded by tgt.service
<target {iqn}>
{luns}    initiator-address ALL
</target>
"""

APT_PROXY_CONF = ('// virtlab: the lab network is not routed out; apt reaches the mirror through the lab\'s proxy\n'
                  'Acquire::http::Proxy "http://%s:%d/";\n' % (config.GATEWAY, config.APT_PROXY_PORT))

SSH_CLIENT_CONFIG = "Host *\n    StrictHostKeyChecking yes\n    UserKnownHostsFile ~/.ssh/known_hosts\n"


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


def provisioned(m):
    return m.file(MARKER).exists()


def provision(m, all_hosts):
    """Make a freshly mounted host layer this host (idempotent; a no-op once done)."""
    if provisioned(m):
        return False
    write_if_changed(m.file("/etc/hostname"), m.name + "\n")
    write_if_changed(m.file("/etc/machine-id"), uuid.uuid4().hex + "\n", 0o444)
    _ssh_identity(m)
    write_if_changed(m.file("/etc/ssh/sshd_config.d/virtlab.conf"), SSHD_DROP_IN)
    write_if_changed(m.file("/etc/apt/apt.conf.d/90virtlab-proxy"), APT_PROXY_CONF)
    if m.role == HYPERVISOR:
        enable, disable = hypervisor_units(m)
        set_unit_files(m, "disable", disable)
        set_unit_files(m, "enable", enable)
        _hypervisor_files(m)
    else:
        set_unit_files(m, "disable", daemons.every_daemon_unit() + list(daemons.COMMON_UNITS) + ["firewalld.service"])
        set_unit_files(m, "enable", STORAGE_ONLY_UNITS)
        _storage_files(m)
    _mask_absent_kernel_features(m)
    refresh_trust_files(m, all_hosts)
    write_if_changed(m.file(MARKER), "provisioned by lab/virtlab up; see docs/lab.md\n")
    return True


# Units of packages the roles may install (nfs-common, with shared_storage's NFS support) that need a
# kernel feature this machine kind does not offer to the lab's machines: run-rpc_pipefs.mount fails
# ("unknown filesystem type 'rpc_pipefs'") and leaves the host 'degraded' for every later boot (seen
# after molecule). The lab uses no NFS; masked before the package exists, so it never starts.
MASKED_FOR_THE_LAB = ["run-rpc_pipefs.mount"]


def _mask_absent_kernel_features(m):
    for unit in MASKED_FOR_THE_LAB:
        link = m.file("/etc/systemd/system/" + unit)
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/dev/null")


def set_unit_files(m, verb, units):
    """systemctl enable/disable/mask on the host's file system while it is off: the unit files
    of its own release decide what the links are."""
    present = [u for u in units if _unit_file(m, u)]
    if present:
        run(["systemctl", "--root=%s" % m.root, "--quiet", verb] + present, host=m.name, step="systemctl " + verb)


def unit_file_enabled(m, unit):
    """Whether `unit` is enabled on the host's file system (the machine need not run)."""
    return run(["systemctl", "--root=%s" % m.root, "--quiet", "is-enabled", unit], host=m.name,
               check=False).returncode == 0


def _unit_file(m, unit):
    return any(m.file(d + "/" + unit).exists() for d in ("/lib/systemd/system", "/usr/lib/systemd/system"))


def _ssh_identity(m):
    for key, step in (("/etc/ssh/ssh_host_ed25519_key", "ssh host key"), ("/root/.ssh/id_ed25519", "ssh client key")):
        path = m.file(key)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@" + m.name, "-f", str(path)],
                host=m.name, step="generate " + step)
    os.chmod(m.file("/root/.ssh"), 0o700)


def _hypervisor_files(m):
    for sub in ("images", "local", "boot", "heartbeat"):
        m.file("/var/lib/libvirt/" + sub).mkdir(parents=True, exist_ok=True)
    m.file("/var/log/libvirt/qemu").mkdir(parents=True, exist_ok=True)
    fstab = m.file("/etc/fstab")
    text = fstab.read_text() if fstab.exists() else ""
    write_if_changed(fstab, text + FSTAB_SHARED.format(host=config.STORAGE_HOST, volume=config.GLUSTER_VOLUME,
                                                       path=config.SHARED_DIR))
    write_if_changed(m.file("/etc/firewalld/zones/public.xml"), FIREWALLD_ZONE)


def _storage_files(m):
    for sub in ("bricks", "iscsi"):
        (m.dir / "srv" / sub).mkdir(parents=True, exist_ok=True)
    luns = ""
    for lun in range(1, config.ISCSI_LUNS + 1):
        backing = m.dir / "srv" / "iscsi" / ("lun%d.img" % lun)
        if not backing.exists():
            with open(backing, "wb") as f:
                f.truncate(config.ISCSI_LUN_MIB << 20)
        luns += "    backing-store /srv/iscsi/lun%d.img\n" % lun
    write_if_changed(m.file("/etc/tgt/conf.d/virtlab.conf"), TGT_TARGET.format(iqn=config.ISCSI_IQN, luns=luns))


def host_public_key(m):
    return m.file("/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2]


def client_public_key(m):
    return m.file("/root/.ssh/id_ed25519.pub").read_text().strip()


def refresh_trust_files(m, all_hosts, known_hosts=None, authorized=None):
    """/etc/hosts, and when given, the host's known_hosts and authorized_keys (inventory.py)."""
    changed = write_if_changed(m.file("/etc/hosts"), hosts_file(all_hosts))
    if known_hosts is not None:
        changed |= write_if_changed(m.file("/root/.ssh/known_hosts"), known_hosts)
        changed |= write_if_changed(m.file("/root/.ssh/config"), SSH_CLIENT_CONFIG, 0o600)
    if authorized is not None:
        changed |= write_if_changed(m.file("/root/.ssh/authorized_keys"), authorized, 0o600)
    return changed
