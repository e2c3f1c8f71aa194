"""The lab, as tests see it: the virtlab CLI for commands that are contracts, the vlab
package for fast reads, and Ansible ad-hoc runs of our modules on lab hosts (those three live in
lab/vlab/control.py, which the benchmark uses too), plus the waits on a guest's heartbeat that
tell an emulator fault apart."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lab"))

from vlab.control import (  # noqa: E402
    INVENTORY,
    REPO,
    VIRTLAB,
    LabReads,
    ansible_bin,
    collections_path,
    playbook_command,
    run_module,
    run_playbook,
    virtlab,
)

__all__ = [
    "INVENTORY", "REPO", "VIRTLAB", "GuestKernelOops", "GuestStalled", "LabHandle", "LabReads", "ansible_bin",
    "collections_path", "playbook_command", "run_module", "run_playbook", "virtlab",
]


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


class LabHandle(LabReads):
    """Reads of lab state, and waits on a guest's heartbeat that tell an emulator fault apart."""

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
