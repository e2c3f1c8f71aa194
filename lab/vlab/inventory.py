"""SSH trust and the Ansible inventory the lab writes for the control node."""
import os
import re

from . import config
from .provision import client_public_key, host_public_key, refresh_trust_files, write_if_changed
from .proc import run

BEGIN, END = "# BEGIN virtlab (managed by lab/virtlab; removed by virtlab down)", "# END virtlab"


def ensure_control_key():
    config.SSH_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(config.SSH_DIR, 0o700)
    if not config.CONTROL_KEY.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "virtlab-control",
             "-f", str(config.CONTROL_KEY)], step="generate control ssh key")
    return config.CONTROL_KEY.with_suffix(".pub").read_text().strip()


def known_hosts_text(hosts):
    """Pinned host keys of every lab host, by name and address."""
    return "".join("%s,%s %s %s\n" % ((h.name, h.ip) + tuple(host_public_key(h))) for h in hosts)


def write_trust(hosts, hypervisors):
    """Every host trusts the control key; hypervisors trust each other (qemu+ssh p2p);
    everyone pins everyone's host key and resolves everyone's name. Written into each host's
    own files (running or not). Returns True if a file changed."""
    control = ensure_control_key()
    known = known_hosts_text(hosts)
    changed = write_if_changed(config.KNOWN_HOSTS, known, 0o644)
    peer_keys = [client_public_key(hv) for hv in hypervisors]
    hypervisor_names = {hv.name for hv in hypervisors}
    names = [h.name for h in hosts]
    for h in hosts:
        keys = [control] + (peer_keys if h.name in hypervisor_names else [])
        changed |= refresh_trust_files(h, names, known_hosts=known, authorized="\n".join(keys) + "\n")
    return changed


def ssh_config_text(hosts):
    """Host entries with the lab's key and pinned host keys (host key checking always stays on)."""
    return "".join("Host %s\n    HostName %s\n    User root\n    IdentityFile %s\n    IdentitiesOnly yes\n"
                   "    UserKnownHostsFile %s\n    StrictHostKeyChecking yes\n" % (
                       h.name, h.ip, config.CONTROL_KEY, config.KNOWN_HOSTS) for h in hosts)


def write_ssh_config(hosts):
    """`ssh -F <state root>/ssh/config host-a` reaches a host of this lab instance by name."""
    return write_if_changed(config.SSH_CONFIG, ssh_config_text(hosts), 0o600)


def _managed_block(path, body):
    """Replace (or remove, with body None) our marked block in a system file."""
    try:
        text = open(path).read()
    except FileNotFoundError:
        text = ""
    text = re.sub(r"\n?%s\n.*?%s\n" % (re.escape(BEGIN), re.escape(END)), "\n", text, flags=re.S)
    text = text.rstrip("\n") + "\n" if text.strip() else ""
    if body:
        text += "%s\n%s%s\n" % (BEGIN, body, END)
    old = open(path).read() if os.path.exists(path) else None
    if old == text:
        return False
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # /etc/hosts may be a bind mount (containers): write in place, do not rename over it.
    with open(path, "w") as f:
        f.write(text)
    return True


def control_node_blocks(hosts):
    """Make `ssh host-a` and `virsh -c qemu+ssh://host-a/system` work from the control node,
    with the lab's key and pinned host keys (host key checking always stays on). Only the
    default lab instance does this (config.py)."""
    changed = _managed_block("/etc/hosts", "".join("%s %s\n" % (h.ip, h.name) for h in hosts))
    os.makedirs("/root/.ssh", mode=0o700, exist_ok=True)
    changed |= _managed_block("/root/.ssh/config", ssh_config_text(hosts))
    return changed


def remove_control_node_blocks():
    _managed_block("/etc/hosts", None)
    if os.path.exists("/root/.ssh/config"):
        _managed_block("/root/.ssh/config", None)


def inventory_text(hosts, storage_hosts, releases):
    ssh_args = "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes" % config.KNOWN_HOSTS
    lines = [
        "# Written by lab/virtlab up: the lab's hosts for Ansible. Do not edit.",
        "all:",
        "  vars:",
        "    ansible_user: root",
        "    ansible_python_interpreter: /usr/bin/python3",
        "    ansible_ssh_private_key_file: %s" % config.CONTROL_KEY,
        "    ansible_ssh_common_args: \"%s\"" % ssh_args,
        "    virtlab_shared_dir: %s" % config.SHARED_DIR,
        "    virtlab_local_dir: %s" % config.LOCAL_DIR,
        "    virtlab_gluster_volume: %s:/%s" % (config.STORAGE_HOST, config.GLUSTER_VOLUME),
        "    virtlab_iscsi_target: %s" % config.ISCSI_IQN,
        "    virtlab_iscsi_portal: %s" % config.STORAGE_IP,
        "  children:",
    ]
    storage_names = {h.name for h in storage_hosts}
    for group, members in (("hypervisors", [h for h in hosts if h.name not in storage_names]),
                           ("storage", storage_hosts)):
        lines += ["    %s:" % group, "      hosts:"]
        for h in members:
            lines += ["        %s:" % h.name, "          ansible_host: %s" % h.ip,
                      "          virtlab_role: %s" % h.role,
                      "          virtlab_release: %s" % releases[h.name]]
    return "\n".join(lines) + "\n"


def write_inventory(hosts, storage_hosts, releases):
    return write_if_changed(config.INVENTORY, inventory_text(hosts, storage_hosts, releases))
