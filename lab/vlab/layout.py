"""Which Debian release each lab host runs: the layout.

The default lab is a cluster in the middle of an upgrade: host-a and host-b on bookworm
(libvirt 9.0, QEMU 7.2), host-c and host-d on trixie (libvirt 11.3, QEMU 10.0), host-d with
libvirt's modular daemons (virtqemud, virtproxyd) and the others with the monolithic libvirtd,
the storage host on bookworm. `up --release host-b=trixie`, `up --daemons host-c=modular` or a
config file (`up --config FILE`) choose otherwise; what `up` was last given stays until it is
given something else.

Config file (TOML):

    hypervisors = 3
    firewall = true
    [release]
    host-b = "trixie"
    [daemons]
    host-c = "modular"
"""
try:
    import tomllib
except ImportError:  # Python < 3.11: the lab needs Debian 12's python3 (3.11) anyway
    tomllib = None

from . import config, daemons, images
from .proc import LabError

DEFAULT_HYPERVISORS = 4
DEFAULT_RELEASES = {"host-a": "bookworm", "host-b": "bookworm", "host-c": "trixie", "host-d": "trixie"}
OTHER_RELEASE = "bookworm"          # hypervisors beyond host-d
STORAGE_RELEASE = "bookworm"
# One trixie host of each daemon layout: the same libvirt serves both, and migrations between
# host-c and host-d cross from the monolithic daemon to the modular ones.
DEFAULT_DAEMONS = {"host-d": daemons.MODULAR}
CONFIG_KEYS = {"hypervisors", "firewall", "tcp", "release", "daemons"}


def default_release(host):
    if host == config.STORAGE_HOST:
        return STORAGE_RELEASE
    return DEFAULT_RELEASES.get(host, OTHER_RELEASE)


def default_daemons(host):
    if host == config.STORAGE_HOST:
        return daemons.MONOLITHIC   # (it runs no libvirt)
    return DEFAULT_DAEMONS.get(host, daemons.MONOLITHIC)


def parse_releases(items, option="--release", example="host-b=trixie"):
    """['host-b=trixie', ...] from the command line -> {'host-b': 'trixie'}."""
    chosen = {}
    for item in items or ():
        host, sep, value = item.partition("=")
        if not sep or not host or not value:
            raise LabError("lab", "up " + option, "%r is not HOST=%s (e.g. %s)" % (
                item, option.lstrip("-").upper(), example))
        chosen[host.strip()] = value.strip()
    return chosen


def parse_daemons(items):
    """['host-c=modular', ...] from the command line -> {'host-c': 'modular'}."""
    return parse_releases(items, "--daemons", "host-c=modular")


def load_config(path):
    """The settings of a config file: {hypervisors, firewall, tcp, release: {host: release}}."""
    if tomllib is None:
        raise LabError("lab", "read config", "reading %s needs Python 3.11 (tomllib)" % path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise LabError("lab", "read config", "%s: %s" % (path, exc.strerror))
    except tomllib.TOMLDecodeError as exc:
        raise LabError("lab", "read config", "%s is not valid TOML: %s" % (path, exc))
    unknown = sorted(set(data) - CONFIG_KEYS)
    if unknown:
        raise LabError("lab", "read config", "%s: unknown setting(s) %s (known: %s)" % (
            path, ", ".join(unknown), ", ".join(sorted(CONFIG_KEYS))))
    for table in ("release", "daemons"):
        if not isinstance(data.get(table, {}), dict):
            raise LabError("lab", "read config", "%s: [%s] must be a table of HOST = \"%s\"" % (
                path, table, "RELEASE" if table == "release" else "LAYOUT"))
    # (a bool is an int to isinstance: `hypervisors = true` is not a number of hosts)
    if "hypervisors" in data and (not isinstance(data["hypervisors"], int) or isinstance(data["hypervisors"], bool)):
        raise LabError("lab", "read config", "%s: hypervisors must be a number" % path)
    for key in ("firewall", "tcp"):
        if key in data and not isinstance(data[key], bool):
            raise LabError("lab", "read config", "%s: %s must be true or false" % (path, key))
    return data


def releases(hosts, chosen, previous):
    """{host: release} for `hosts`: chosen now, else as before, else the default layout."""
    unknown = sorted(set(chosen) - set(hosts))
    if unknown:
        raise LabError("lab", "up --release", "no host %s in this lab (hosts: %s)" % (
            ", ".join(unknown), ", ".join(hosts)))
    result = {}
    for host in hosts:
        release = chosen.get(host) or previous.get(host) or default_release(host)
        images.check_release(release)
        result[host] = release
    return result


def daemon_layouts(hosts, chosen, previous):
    """{host: daemon layout} for `hosts`: chosen now, else as before, else the default layout."""
    unknown = sorted(set(chosen) - set(hosts))
    if unknown:
        raise LabError("lab", "up --daemons", "no host %s in this lab (hosts: %s)" % (
            ", ".join(unknown), ", ".join(hosts)))
    if chosen.get(config.STORAGE_HOST, daemons.MONOLITHIC) != daemons.MONOLITHIC:
        raise LabError("lab", "up --daemons", "%s is the storage host: it runs no libvirt" % config.STORAGE_HOST)
    result = {}
    for host in hosts:
        layout = chosen.get(host) or previous.get(host) or default_daemons(host)
        if layout not in daemons.LAYOUTS:
            raise LabError("lab", "up --daemons", "unknown daemon layout %r for %s (known: %s)" % (
                layout, host, ", ".join(daemons.LAYOUTS)))
        result[host] = layout
    return result
