"""The lab driven from the control node, as the tests and the benchmark use it: the virtlab CLI
for commands that are contracts, reads of lab state without a subprocess per call, and Ansible
runs of the collection's modules and playbooks against the lab inventory.

(Shared by tests/support/lab.py and bench/: the benchmark does not import the test package.)
"""
import json
import os
import subprocess
import time

from . import config as lab_config
from . import guests as lab_guests
from .lab import Lab

REPO = lab_config.REPO_ROOT
VIRTLAB = str(REPO / "lab" / "virtlab")
INVENTORY = str(lab_config.INVENTORY)


def virtlab(*args, check=True, timeout=600):
    """Run lab/virtlab; return CompletedProcess (text)."""
    res = subprocess.run([VIRTLAB] + list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise AssertionError("virtlab %s failed (%d): %s%s" % (" ".join(args), res.returncode, res.stdout, res.stderr))
    return res


class LabReads:
    """Reads of lab state through the vlab package (no subprocess per call)."""

    def __init__(self):
        self.refresh()

    def refresh(self):
        self.lab = Lab(log=lambda *_: None)

    @property
    def hypervisors(self):
        return [h.name for h in self.lab.hypervisors()]

    def locate(self, name):
        """[(host, state, persistent)] on every hypervisor: the ground truth, from each libvirtd."""
        self.refresh()
        return lab_guests.locate(self.lab, name)

    def heartbeat(self, name):
        return lab_guests.heartbeat(self.lab, name)

    def libvirt(self, host):
        return self.lab.libvirt(self.lab.host(host, hypervisor=True))

    def domain(self, host, name):
        # A fresh lab handle: a libvirtd restarted by a fault test breaks cached connections.
        self.refresh()
        return self.libvirt(host).lookupByName(name)

    def host_path(self, host, path):
        """A file inside a lab host, readable from the control node."""
        return self.lab.host(host).root_path(path)

    def exists_on(self, host, path):
        """Whether `path` exists inside the host (its own mounts included)."""
        return os.path.exists(self.host_path(host, path))


def run_module(host, module, args, check_mode=False, timeout=900, extra_env=None):
    """Run one of our modules on a lab host with ansible (ad hoc) and return its result dict."""
    env = dict(os.environ)
    env.update({
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_COLLECTIONS_PATH": collections_path(),
        "ANSIBLE_NOCOLOR": "1",
    })
    env.update(extra_env or {})
    cmd = [ansible_bin("ansible"), host, "-i", INVENTORY, "-m", "kvmops.migration." + module,
           "-a", json.dumps(args)]
    if check_mode:
        cmd.append("--check")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=str(REPO), check=False)
    try:
        out = json.loads(res.stdout)
        result = out["plays"][0]["tasks"][0]["hosts"][host]
    except (ValueError, KeyError, IndexError):
        raise AssertionError("no result from ansible (%d):\n%s\n%s" % (res.returncode, res.stdout[-3000:], res.stderr[-3000:]))
    return result


def playbook_command(name, *args, limit=None, check_mode=False):
    """(argv, env) for ansible-playbook on one of playbooks/ (or a path) against the lab inventory."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_NOCOLOR="1",
               ANSIBLE_HOST_KEY_CHECKING="True")
    path = name if "/" in name else str(REPO / "playbooks" / name)
    cmd = [ansible_bin("ansible-playbook"), "-i", INVENTORY, path]
    if limit:
        cmd += ["-l", limit]
    if check_mode:
        cmd.append("--check")
    return cmd + list(args), env


def run_playbook(name, *args, limit=None, check_mode=False, timeout=900):
    """Run a playbook to the end: (CompletedProcess, seconds)."""
    cmd, env = playbook_command(name, *args, limit=limit, check_mode=check_mode)
    started = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO), timeout=timeout, check=False)
    return res, time.monotonic() - started


def ansible_bin(name):
    venv = REPO / ".venv" / "bin" / name
    return str(venv) if venv.exists() else name


def collections_path():
    """Where `ansible_collections/kvmops/migration` points at this checkout (made by make venv)."""
    return str(REPO / ".venv" / "collections")
