"""The lab, as tests see it: the virtlab CLI for commands that are contracts, the vlab
package for fast reads, and Ansible ad-hoc runs of our modules on lab hosts."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VIRTLAB = str(REPO / "lab" / "virtlab")
sys.path.insert(0, str(REPO / "lab"))

from vlab import config as lab_config  # noqa: E402
from vlab import guests as lab_guests  # noqa: E402
from vlab.lab import Lab  # noqa: E402

INVENTORY = str(lab_config.INVENTORY)


class GuestKernelOops(AssertionError):
    """The guest's kernel oopsed: its heartbeat log shows Oops/BUG/panic lines.

    On this machine kind QEMU's TCG live migration sometimes delivers a guest whose kernel memory
    is corrupt (timers, anon_vma lists): reproduced with plain libvirt migrateToURI3 and no
    kvmops code at all, mostly in long, bandwidth-capped pre-copies (docs/lab.md, "Known
    limits"). It is an emulator fault, not a location or lifecycle fault, so `make integration`
    reruns a test that fails with this error once (pytest-rerunfailures, --only-rerun); a
    second oops fails the run. Every other invariant failure fails at once.
    """


class GuestStalled(AssertionError):
    """The guest's heartbeat stopped while libvirt reports it running on exactly one host (the
    invariant checks state and location first): the same TCG memory corruption, when it hangs
    the guest kernel instead of oopsing it. Rerun once like GuestKernelOops."""


def virtlab(*args, check=True, timeout=600):
    """Run lab/virtlab; return CompletedProcess (text)."""
    res = subprocess.run([VIRTLAB] + list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise AssertionError("virtlab %s failed (%d): %s%s" % (" ".join(args), res.returncode, res.stdout, res.stderr))
    return res


class LabHandle:
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

    def wait_heartbeat_after(self, name, counter, timeout=60):
        """Wait until the guest's heartbeat counter passes `counter`; return the heartbeat."""
        deadline = time.monotonic() + timeout
        hb = self.heartbeat(name)
        while time.monotonic() < deadline:
            hb = self.heartbeat(name)
            if hb["oops"]:
                raise GuestKernelOops("guest %s: kernel oops: %s" % (name, hb["oops_lines"]))
            if hb["counter"] > counter:
                return hb
            time.sleep(0.5)
        raise GuestStalled("guest %s: heartbeat stuck at %s (last %s)" % (name, counter, hb))

    def wait_new_boot(self, name, old_boot, timeout=90):
        """Wait until the guest's newest heartbeat comes from a boot other than `old_boot`; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hb = self.heartbeat(name)
            if hb.get("boot_id") and hb["boot_id"] != old_boot:
                return hb
            time.sleep(0.5)
        raise AssertionError("guest %s did not boot again within %ss" % (name, timeout))

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
