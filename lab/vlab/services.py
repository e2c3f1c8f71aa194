"""The systemd units of a lab host that the lab starts, stops and checks: libvirt's, firewalld,
sshd. Everything goes through systemctl inside the machine, as an operator (or a role) would.

libvirt's daemons are socket activated in both layouts (daemons.py): Debian's monolithic libvirtd
(libvirtd.socket, -ro, -admin), or the modular virtqemud and virtproxyd (their own sockets); each
daemon exits after 120 s without guests or clients (`--timeout 120`) and the next connection
starts it again. "libvirt is stopped" therefore means the daemons AND their sockets are stopped:
with a socket still listening, the next connection would start a daemon again. `fault
stop-libvirtd` stops whichever layout the host runs: libvirt does not answer there at all, as
when libvirtd is down.
"""
from . import daemons
from .proc import wait_for
from .provision import set_unit_files, unit_file_enabled

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
    """libvirt's daemons and their sockets (the network ones only if enabled) started, and
    answering as this host; True if it was not answering before."""
    if _safe(lambda: lab.libvirt_answers(hv)):
        return False
    units = daemons.units_of(hv)
    wanted = list(units.sockets) + [s for s in units.network_sockets if enabled(hv, s)] + list(units.services)
    hv.systemctl("reset-failed", *wanted, check=False)
    hv.systemctl("start", *wanted, timeout=timeout)
    wait_for(lambda: lab.libvirt_answers(hv), timeout, "start libvirt", hv.name)
    return True


def stop_libvirt(lab, hv):
    """libvirt's daemons and every socket that would start them again stopped; the guests keep
    running (the daemons' services have KillMode=process)."""
    lab.drop_libvirt(hv)
    units = daemons.units_of(hv)
    hv.systemctl("stop", *(units.sockets + units.network_sockets + units.services))


def libvirt_stopped(hv):
    units = daemons.units_of(hv)
    return not any(hv.active(u) for u in units.sockets + units.services)


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
    """`up --tcp`: libvirt also listens on TCP 16509 without authentication (lab only), through
    its listener's socket unit (libvirtd-tcp.socket, or virtproxyd-tcp.socket with modular
    daemons); `--no-tcp` closes it. systemd refuses to start a socket whose service runs, so the
    listener stops first and starts again with the socket (the guests keep running)."""
    units = daemons.units_of(hv)
    conf = hv.file(units.listener_conf)
    text = conf.read_text()
    changed = False
    if on and 'auth_tcp = "none"' not in text:
        conf.write_text(text + '\n# virtlab up --tcp: no authentication on TCP (lab only)\nauth_tcp = "none"\n')
        changed = True
    socket = units.network_sockets[0]
    if enabled(hv, socket) != on or hv.active(socket) != on:
        running = hv.active(units.listener)
        hv.systemctl("stop", units.listener)
        hv.systemctl("enable" if on else "disable", "--now", socket)
        if running:
            hv.systemctl("start", units.listener)
        changed = True
    elif changed and hv.active(units.listener):
        hv.systemctl("restart", units.listener)
    return changed


def _safe(fn):
    try:
        return fn()
    except Exception:
        return False
