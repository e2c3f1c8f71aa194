"""The lab, as tests see it: the virtlab CLI for commands that are contracts, the vlab
package for fast reads, and Ansible ad-hoc runs of our modules on lab hosts (those three live in
lab/vlab/control.py, which the benchmark uses too), plus the waits on a guest's heartbeat that
tell an emulator fault apart."""
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lab"))

from vlab import guests as lab_guests  # noqa: E402
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
    "collections_path", "lab_guests", "lab_jobs", "playbook_command", "run_module", "run_playbook", "unknown_oops",
    "virtlab",
]


class GuestKernelOops(AssertionError):
    """The guest's kernel oopsed with the known QEMU TCG signature.

    On this machine kind QEMU 7.2's TCG live migration sometimes delivers a guest whose kernel
    memory is corrupt: reproduced with plain libvirt migrateToURI3 and no kvmops code at all, mostly
    in long, bandwidth-capped pre-copies (docs/lab.md, "Known limits"); the guest oopses in kernel
    data it wrote during the pre-copy (its timers, anon_vma lists). That signature, and only that
    one, is what `make lab-test`/`make integration` rerun a test for (once; the run's summary
    counts it). Any other oops is a plain failure (see ``unknown_oops``).
    """


class GuestStalled(AssertionError):
    """The guest's heartbeat stopped while libvirt reports it running on exactly one host. Never
    retried: a double writer, a copy resumed from stale memory and a guest frozen by its own
    missing pages all look like this; each stall is a finding to explain."""


# Where the kernel oopsed when QEMU's TCG migration corrupted its memory (docs/lab.md): timer and
# anon_vma code, whose data the guest rewrites all the time.
KNOWN_TCG_OOPS = re.compile(r"(__run_timers|run_timer_softirq|call_timer_fn|expire_timers|__hrtimer_run_queues|"
                            r"hrtimer_interrupt|anon_vma)")


def unknown_oops(name, lines):
    """The error for a guest kernel oops: GuestKernelOops when its lines carry the known TCG
    signature, a plain AssertionError (never retried) otherwise."""
    text = "\n".join(lines)
    if KNOWN_TCG_OOPS.search(text):
        return GuestKernelOops("guest %s: kernel oops with the known TCG signature: %s" % (name, lines))
    return AssertionError("guest %s: kernel oops (not the known TCG signature): %s" % (name, lines))


def lab_jobs(lab, name):
    """['host: job'] active on the guest anywhere (lab/vlab/guests.py)."""
    return lab_guests.jobs(lab, name)


class LabHandle(LabReads):
    """Reads of lab state, and waits on a guest's heartbeat that tell an emulator fault apart."""

    def wait_heartbeat_after(self, name, counter, timeout=60, boot_id=None):
        """Wait until the guest's heartbeat counter passes `counter` (in boot `boot_id`, or a newer
        boot, when given); return the heartbeat."""
        deadline = time.monotonic() + timeout
        hb = self.heartbeat(name)
        while time.monotonic() < deadline:
            hb = self.heartbeat(name)
            if hb["oops"]:
                raise unknown_oops(name, hb["oops_lines"])
            if hb["counter"] > counter or (boot_id and hb.get("boot_id") not in (None, boot_id)):
                return hb
            time.sleep(0.5)
        raise GuestStalled("guest %s: heartbeat stuck at %s (last %s); %s" % (name, counter, hb, self.diagnose(name)))

    def diagnose(self, name):
        """What a stalled guest is doing, for the report: where libvirt says it runs, QEMU's own
        status there, and three samples of its vCPU (RIP, interrupts enabled, halted). A vCPU that
        runs kernel code while the heartbeat stopped is the guest's own state gone wrong (e.g. the
        TCG corruption, docs/lab.md); a paused or halted-forever one is something else."""
        import libvirt_qemu
        found = self.locate(name)
        lines = ["where: %s" % found]
        for host, state, dummy in found:
            if state not in ("running", "paused"):
                continue
            try:
                dom = self.domain(host, name)

                def hmp(command, dom=dom):
                    return libvirt_qemu.qemuMonitorCommand(dom, command, libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
                lines.append("%s: %s" % (host, hmp("info status").strip()))
                for dummy_sample in range(3):
                    regs = hmp("info registers")
                    rip = re.search(r"RIP=([0-9a-f]+) RFL=([0-9a-f]+).*HLT=(\d)", regs)
                    if rip:
                        interrupts = (int(rip.group(2), 16) >> 9) & 1
                        lines.append("%s: RIP=%s IF=%d HLT=%s" % (host, rip.group(1), interrupts, rip.group(3)))
                    time.sleep(0.3)
            except Exception as exc:  # pylint: disable=broad-except
                lines.append("%s: no diagnosis (%s)" % (host, exc))
        return "; ".join(lines)

    def wait_new_boot(self, name, old_boot, timeout=90):
        """Wait until the guest's newest heartbeat comes from a boot other than `old_boot`; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hb = self.heartbeat(name)
            if hb.get("boot_id") and hb["boot_id"] != old_boot:
                return hb
            time.sleep(0.5)
        raise AssertionError("guest %s did not boot again within %ss" % (name, timeout))
