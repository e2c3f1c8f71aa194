"""Which libvirt daemons a lab hypervisor runs, and their systemd units.

- monolithic: libvirtd, socket activated (libvirtd.socket, -ro, -admin; -tcp and -tls when
  enabled), configured in libvirtd.conf. What Debian ships, bookworm and trixie alike.
- modular: virtqemud for QEMU and virtproxyd for clients (virtproxyd.socket serves libvirt's usual
  socket, /run/libvirt/libvirt-sock, and -tcp/-tls; it forwards each connection to virtqemud),
  both socket activated; virtproxyd.conf holds the listener's settings. Built from Debian's own
  source package (modular.py), on the hosts `up --daemons HOST=modular` chooses.

The host's file system says which it is (the modular image has virtqemud's unit), so the lab's
commands, its provisioning and its health checks need no record of it.
"""
from dataclasses import dataclass

MONOLITHIC = "monolithic"
MODULAR = "modular"
LAYOUTS = (MONOLITHIC, MODULAR)


# virtqemud for QEMU, virtproxyd for clients, and the daemon of each other driver Debian's libvirt
# packages hold (storage pools, networks, node devices, network filters, secrets).
MODULAR_DAEMONS = ("virtqemud", "virtproxyd", "virtstoraged", "virtnetworkd", "virtnodedevd", "virtnwfilterd",
                   "virtsecretd")


@dataclass(frozen=True)
class Units:
    services: tuple           # the daemons' services
    sockets: tuple            # the local sockets that start them
    network_sockets: tuple    # TCP and TLS listeners (off unless enabled)
    listener: str             # the service that listens on the network sockets
    listener_conf: str        # its configuration file


UNITS = {
    MONOLITHIC: Units(("libvirtd.service",), ("libvirtd.socket", "libvirtd-ro.socket", "libvirtd-admin.socket"),
                      ("libvirtd-tcp.socket", "libvirtd-tls.socket"), "libvirtd.service", "/etc/libvirt/libvirtd.conf"),
    MODULAR: Units(tuple(d + ".service" for d in MODULAR_DAEMONS),
                   tuple(d + suffix for d in MODULAR_DAEMONS for suffix in (".socket", "-ro.socket", "-admin.socket")),
                   ("virtproxyd-tcp.socket", "virtproxyd-tls.socket"), "virtproxyd.service",
                   "/etc/libvirt/virtproxyd.conf"),
}
# What every hypervisor runs whatever the layout: QEMU's log and lock daemons, and the guests'
# start and stop at boot.
COMMON_UNITS = ("virtlogd.socket", "virtlogd-admin.socket", "virtlockd.socket", "virtlockd-admin.socket",
                "libvirt-guests.service")


def layout_of(host):
    """MODULAR if the host's file system has virtqemud's unit (the modular image), else MONOLITHIC."""
    modular = any(host.file(d + "/virtqemud.service").exists() for d in ("/lib/systemd/system", "/usr/lib/systemd/system"))
    return MODULAR if modular else MONOLITHIC


def units_of(host):
    return UNITS[layout_of(host)]


def every_daemon_unit():
    """All the units of both layouts (what a storage host disables, what a switch disables first)."""
    return sorted({u for units in UNITS.values() for u in units.services + units.sockets + units.network_sockets})
