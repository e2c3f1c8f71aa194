"""Names, addresses and paths of the lab. One place, so every module agrees."""
import os
from pathlib import Path

STATE_ROOT = Path(os.environ.get("VIRTLAB_ROOT", "/var/lib/virtlab"))
STATE_FILE = STATE_ROOT / "state.json"
SSH_DIR = STATE_ROOT / "ssh"
CONTROL_KEY = SSH_DIR / "id_ed25519"
KNOWN_HOSTS = SSH_DIR / "known_hosts"
GUEST_ARTEFACTS = STATE_ROOT / "guest"
CACHE_DIR = STATE_ROOT / "cache"

REPO_ROOT = Path(__file__).resolve().parents[2]
INVENTORY = REPO_ROOT / ".lab" / "inventory.yml"

BRIDGE = "vlbr0"
SUBNET = "10.213.7"          # a private /24 that only exists on the lab bridge
GATEWAY = SUBNET + ".1"
PREFIX = 24
NETNS_PREFIX = "vl-"         # ip netns name and root-side veth name prefix

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
MIGRATION_PORTS = (49152, 49215)
LIBVIRT_TCP_PORT = 16509
LIBVIRT_TLS_PORT = 16514

DEFAULT_HYPERVISORS = 3
MAX_HYPERVISORS = 26


def hypervisor_names(count):
    """host-a, host-b, ... in a stable order."""
    return ["host-" + chr(ord("a") + i) for i in range(count)]


def host_ip(name):
    if name == STORAGE_HOST:
        return STORAGE_IP
    return "%s.%d" % (SUBNET, 11 + ord(name[-1]) - ord("a"))


def netns_name(host):
    return NETNS_PREFIX + host


def host_dir(host):
    """Per-host state: what is bind-mounted over /etc/libvirt, /var/lib/libvirt, ... inside it."""
    return STATE_ROOT / "hosts" / host
