"""The lab bridge in the root namespace and one veth per host into its network namespace."""
import os

from . import config
from .proc import LabError, run


def link_exists(name, netns=None):
    cmd = ["ip", "link", "show", name]
    if netns:
        cmd = ["ip", "-n", netns] + cmd[1:]
    return run(cmd, check=False).returncode == 0


def ensure_bridge():
    """Create the lab bridge with the gateway address; True if anything changed."""
    changed = False
    if not link_exists(config.BRIDGE):
        run(["ip", "link", "add", config.BRIDGE, "type", "bridge"], step="create bridge")
        changed = True
    addr = "%s/%d" % (config.GATEWAY, config.PREFIX)
    if addr not in run(["ip", "-o", "addr", "show", "dev", config.BRIDGE]).stdout:
        taken = run(["ip", "-o", "addr", "show"]).stdout
        if (" %s/" % config.GATEWAY) in taken:
            raise LabError("lab", "create bridge", "address %s is already used by another interface" % config.GATEWAY)
        run(["ip", "addr", "add", addr, "dev", config.BRIDGE], step="bridge address")
        changed = True
    mac = config.mac_address(config.GATEWAY)
    if "link/ether %s " % mac not in run(["ip", "link", "show", config.BRIDGE]).stdout:
        # Set, the bridge keeps it instead of following its lowest port (config.mac_address).
        run(["ip", "link", "set", config.BRIDGE, "address", mac], step="bridge MAC")
        changed = True
    if "state DOWN" in run(["ip", "link", "show", config.BRIDGE]).stdout:
        run(["ip", "link", "set", config.BRIDGE, "up"], step="bridge up")
        changed = True
    return changed


def remove_bridge():
    if link_exists(config.BRIDGE):
        run(["ip", "link", "del", config.BRIDGE], step="remove bridge")


def netns_exists(host):
    return os.path.exists("/run/netns/" + config.netns_name(host))


def create_netns(host):
    """A fresh network namespace with lo up and eth0 wired to the lab bridge."""
    ns = config.netns_name(host)
    veth = ns  # root-side end, e.g. vl-host-a (<= 15 chars)
    run(["ip", "netns", "add", ns], host=host, step="create network namespace")
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "address",
         config.mac_address(config.host_ip(host)), "netns", ns],
        host=host, step="create veth")
    run(["ip", "link", "set", veth, "master", config.BRIDGE, "up"], host=host, step="attach veth")
    run(["ip", "-n", ns, "link", "set", "lo", "up"], host=host, step="lo up")
    run(["ip", "-n", ns, "addr", "add", "%s/%d" % (config.host_ip(host), config.PREFIX), "dev", "eth0"],
        host=host, step="address eth0")
    run(["ip", "-n", ns, "link", "set", "eth0", "up"], host=host, step="eth0 up")


def fresh_netns(host):
    """The network namespace of a machine about to boot, made anew, as a machine's network stack
    is after a power cycle: the firewall rules, routes, bridges and settings of its last boot
    would otherwise stay (the namespace outlives the machine), e.g. a firewalld ruleset twice.
    The cable keeps its state: a host whose link was cut boots with its link cut."""
    ns = config.netns_name(host)
    cut = link_exists(ns) and "UP" not in _link_flags(ns)
    delete_netns(host)
    create_netns(host)
    if cut:
        set_link(host, up=False)


def _link_flags(name):
    out = run(["ip", "-o", "link", "show", "dev", name], check=False).stdout
    return out.split("<", 1)[1].split(">", 1)[0].split(",") if "<" in out else []


def delete_netns(host):
    ns = config.netns_name(host)
    if link_exists(ns):
        run(["ip", "link", "del", ns], host=host, step="remove veth", check=False)
    if netns_exists(host):
        run(["ip", "netns", "del", ns], host=host, step="remove network namespace")


def netns_pids(host):
    """Every process in the host's network namespace (what down must end, ours or spawned by ours)."""
    if not netns_exists(host):
        return []
    res = run(["ip", "netns", "pids", config.netns_name(host)], host=host, check=False)
    return [int(p) for p in res.stdout.split()]


def set_link(host, up):
    """The host's cable: the root-side end of its veth up or down."""
    run(["ip", "link", "set", config.netns_name(host), "up" if up else "down"],
        host=host, step="link-up" if up else "link-down")
