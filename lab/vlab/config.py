"""Names, addresses and paths of the lab. One place, so every module agrees.

An *instance* (environment variable VIRTLAB_INSTANCE) is a second, separate lab on the same
machine: everything it creates has other names (namespaces, veths, bridge, subnet, state
root), and it never writes the control node's /etc/hosts or /root/.ssh/config. Only the
host images are shared between instances: they are a cache, keyed by their contents.
The default instance (variable unset) is the lab `make test` and `make demo` use.
"""
import os
import re
from pathlib import Path

INSTANCE = os.environ.get("VIRTLAB_INSTANCE", "")
# Interface names have at most 15 characters: "vl" + instance + "-storage-1" must fit.
if INSTANCE and not re.match(r"^[a-z0-9]{1,3}$", INSTANCE):
    raise SystemExit("virtlab: VIRTLAB_INSTANCE=%r: use 1-3 lowercase letters or digits (e.g. dev)" % INSTANCE)
DEFAULT_INSTANCE = not INSTANCE

STATE_ROOT = Path(os.environ.get("VIRTLAB_ROOT", "/var/lib/virtlab" + ("-" + INSTANCE if INSTANCE else "")))
STATE_FILE = STATE_ROOT / "state.json"
SSH_DIR = STATE_ROOT / "ssh"
CONTROL_KEY = SSH_DIR / "id_ed25519"
KNOWN_HOSTS = SSH_DIR / "known_hosts"
SSH_CONFIG = SSH_DIR / "config"        # `ssh -F` this file to reach the hosts by name
GUEST_ARTEFACTS = STATE_ROOT / "guest"
CACHE_DIR = STATE_ROOT / "cache"

# Shared by every instance: host images and the .deb files they were built from.
SHARED_CACHE = Path(os.environ.get("VIRTLAB_CACHE", "/var/cache/virtlab"))

REPO_ROOT = Path(__file__).resolve().parents[2]
# The default lab's inventory is part of the project's interface (make demo, docs); another
# instance keeps its own under its state root.
INVENTORY = REPO_ROOT / ".lab" / "inventory.yml" if DEFAULT_INSTANCE else STATE_ROOT / "inventory.yml"

BRIDGE = "vlbr0" if DEFAULT_INSTANCE else "vl%sbr0" % INSTANCE
# A private /24 that only exists on the lab bridge (VIRTLAB_SUBNET: its first three octets).
SUBNET = os.environ.get("VIRTLAB_SUBNET", "10.213.7" if DEFAULT_INSTANCE else "10.213.8")
GATEWAY = SUBNET + ".1"
PREFIX = 24
NETNS_PREFIX = "vl%s-" % INSTANCE   # ip netns name and root-side veth name prefix
# Each lab machine lives in its own cgroup below this one (name=systemd hierarchy).
CGROUP = "virtlab" + ("-" + INSTANCE if INSTANCE else "")

STORAGE_HOST = "storage-1"
STORAGE_IP = SUBNET + ".10"
GLUSTER_VOLUME = "vmstore"
GLUSTER_BRICK = "/srv/bricks/" + GLUSTER_VOLUME   # on the storage host
ISCSI_IQN = "iqn.2026-11.lab.virtlab:storage-1.luns"
ISCSI_LUNS = 2
ISCSI_LUN_MIB = 256

SHARED_DIR = "/var/lib/libvirt/images"    # GlusterFS mount on every hypervisor
LOCAL_DIR = "/var/lib/libvirt/local"      # per-host local storage
BOOT_DIR = "/var/lib/libvirt/boot"        # kernel + initramfs, copied to every host
HEARTBEAT_DIR = "/var/lib/libvirt/heartbeat"
# Bump when hosts' own layers from earlier lab code can hold what breaks the lab now (2: a rolling
# upgrade test of before left an apt source that no longer exists in host-b; 3: provisioning masks
# run-rpc_pipefs.mount, which molecule's nfs-common left failed): every host is then made again from
# its image once, at the next `up`.
LAYER_GENERATION = 3
APT_PROXY_PORT = 3142                     # the hosts' way to the Debian mirror, on the gateway (aptproxy.py)
MIGRATION_PORTS = (49152, 49215)
LIBVIRT_TCP_PORT = 16509
LIBVIRT_TLS_PORT = 16514

MAX_HYPERVISORS = 26


def hypervisor_names(count):
    """host-a, host-b, ... in a stable order."""
    return ["host-" + chr(ord("a") + i) for i in range(count)]


def mac_address(ip):
    """A fixed, locally administered MAC for a lab address (02:00 and the address's four octets).

    Each boot makes a host's network namespace anew (net.fresh_netns); with the kernel's random
    MACs a host came back with a new MAC on every reboot or remake, and the bridge, which takes its
    lowest port's MAC, changed its own as hosts came and went. Every neighbour cache then pointed
    at a MAC that was gone until it expired (up to a minute): connections to the rebooted host or
    to the gateway (its apt proxy) timed out meanwhile. A real host's NIC keeps its MAC."""
    return "02:00:" + ":".join("%02x" % int(octet) for octet in ip.split("."))


def host_ip(name):
    if name == STORAGE_HOST:
        return STORAGE_IP
    return "%s.%d" % (SUBNET, 11 + ord(name[-1]) - ord("a"))


def netns_name(host):
    return NETNS_PREFIX + host


def host_dir(host):
    """Per-host state: the machine's writable layer, its mount point, logs."""
    return STATE_ROOT / "hosts" / host
