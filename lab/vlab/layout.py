"""Which Debian release each lab host runs: the layout.

The default lab is a cluster in the middle of an upgrade: host-a and host-b on bookworm
(libvirt 9.0, QEMU 7.2), host-c and host-d on trixie (libvirt 11.3, QEMU 10.0), the storage
host on bookworm. `up --release host-b=trixie` or a config file (`up --config FILE`) choose
otherwise; what `up` was last given stays until it is given something else.

Config file (TOML):

    hypervisors = 3
    firewall = true
    [release]
    host-b = "trixie"
"""
try:
    import tomllib
except ImportError:  # Python < 3.11: the lab needs Debian 12's python3 (3.11) anyway
    tomllib = None

from . import config, images
from .proc import LabError

DEFAULT_HYPERVISORS = 4
DEFAULT_RELEASES = {"host-a": "bookworm", "host-b": "bookworm", "host-c": "trixie", "host-d": "trixie"}
OTHER_RELEASE = "bookworm"          # hypervisors beyond host-d
STORAGE_RELEASE = "bookworm"
CONFIG_KEYS = {"hypervisors", "firewall", "tcp", "release"}


def default_release(host):
    if host == config.STORAGE_HOST:
        return STORAGE_RELEASE
    return DEFAULT_RELEASES.get(host, OTHER_RELEASE)


def parse_releases(items):
    """['host-b=trixie', ...] from the command line -> {'host-b': 'trixie'}."""
    chosen = {}
    for item in items or ():
        host, sep, release = item.partition("=")
        if not sep or not host or not release:
            raise LabError("lab", "up --release", "%r is not HOST=RELEASE (e.g. host-b=trixie)" % item)
        chosen[host.strip()] = release.strip()
    return chosen


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
    if not isinstance(data.get("release", {}), dict):
        raise LabError("lab", "read config", "%s: [release] must be a table of HOST = \"RELEASE\"" % path)
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
