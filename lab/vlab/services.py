"""The systemd units of a lab host that the lab starts, stops and checks: libvirt's, firewalld,
sshd. Everything goes through systemctl inside the machine, as an operator (or a role) would.

Debian's libvirt (bookworm 9.0 and trixie 11.3 alike) is the monolithic libvirtd, socket
activated: libvirtd.socket, libvirtd-ro.socket and libvirtd-admin.socket start it on the first
connection and it exits after 120 s without guests or clients (`--timeout 120`). Debian builds
no modular daemons (no virtqemud or virtproxyd in any release's packages), so a lab host has
none either. "libvirtd is stopped" therefore means the service AND its sockets are stopped:
with a socket still listening, the next connection would start it again.
"""
from .proc import wait_for
from .provision import set_unit_files, unit_file_enabled

LIBVIRT_SERVICE = "libvirtd.service"
LIBVIRT_SOCKETS = ["libvirtd.socket", "libvirtd-ro.socket", "libvirtd-admin.socket"]
LIBVIRT_NETWORK_SOCKETS = ["libvirtd-tcp.socket", "libvirtd-tls.socket"]
FIREWALL_UNIT = "firewalld.service"


def ensure_active(h, unit, timeout=60):
    """Start `unit` unless it is active; True if it had to be started."""
    if h.active(unit):
        return False
    h.systemctl("reset-failed", unit, check=False)
    h.systemctl("start", unit, timeout=timeout)
    wait_for(lambda: h.active(unit), timeout, "start " + unit, h.name)
    return True


def enabled(h, unit):
    return h.systemctl("is-enabled", "--quiet", unit, check=False).returncode == 0


def start_libvirt(lab, hv, timeout=60):
    """libvirtd and its sockets (the network ones only if enabled) started, and answering as
    this host; True if it was not answering before."""
    if _safe(lambda: lab.libvirt_answers(hv)):
        return False
    units = LIBVIRT_SOCKETS + [s for s in LIBVIRT_NETWORK_SOCKETS if enabled(hv, s)] + [LIBVIRT_SERVICE]
    hv.systemctl("reset-failed", *units, check=False)
    hv.systemctl("start", *units, timeout=timeout)
    wait_for(lambda: lab.libvirt_answers(hv), timeout, "start libvirtd", hv.name)
    return True


def stop_libvirt(lab, hv):
    """libvirtd and every socket that would start it again stopped; its guests keep running
    (libvirtd.service has KillMode=process)."""
    lab.drop_libvirt(hv)
    hv.systemctl("stop", *(LIBVIRT_SOCKETS + LIBVIRT_NETWORK_SOCKETS + [LIBVIRT_SERVICE]))


def libvirt_stopped(hv):
    return not any(hv.active(u) for u in LIBVIRT_SOCKETS + [LIBVIRT_SERVICE])


def set_firewall(hv, on):
    """firewalld enabled and running, or disabled and stopped. On a machine that is not running
    only the unit's links change (it then boots that way). True if anything changed."""
    if not hv.running():
        if unit_file_enabled(hv, FIREWALL_UNIT) == on:
            return False
        set_unit_files(hv, "enable" if on else "disable", [FIREWALL_UNIT])
        return True
    if enabled(hv, FIREWALL_UNIT) == on and hv.active(FIREWALL_UNIT) == on:
        return False
    hv.systemctl("enable" if on else "disable", "--now", FIREWALL_UNIT, timeout=90)
    if on:
        wait_for(lambda: hv.run(["firewall-cmd", "--state"], check=False).stdout.strip() == "running",
                 60, "start firewalld", hv.name)
    return True


def set_libvirt_tcp(hv, on):
    """`up --tcp`: libvirtd also listens on TCP 16509 without authentication (lab only), through
    its socket unit; `--no-tcp` closes it. systemd refuses to start a socket whose service runs,
    so libvirtd stops first and starts again with the socket (its guests keep running)."""
    conf = hv.file("/etc/libvirt/libvirtd.conf")
    text = conf.read_text()
    changed = False
    if on and 'auth_tcp = "none"' not in text:
        conf.write_text(text + '\n# virtlab up --tcp: no authentication on TCP (lab only)\nauth_tcp = "none"\n')
        changed = True
    socket = "libvirtd-tcp.socket"
    if enabled(hv, socket) != on or hv.active(socket) != on:
        running = hv.active(LIBVIRT_SERVICE)
        hv.systemctl("stop", LIBVIRT_SERVICE)
        hv.systemctl("enable" if on else "disable", "--now", socket)
        if running:
            hv.systemctl("start", LIBVIRT_SERVICE)
        changed = True
    elif changed and hv.active(LIBVIRT_SERVICE):
        hv.systemctl("restart", LIBVIRT_SERVICE)
    return changed


def _safe(fn):
    try:
        return fn()
    except Exception:
        return False
