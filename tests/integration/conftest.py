"""Fixtures for integration tests on the lab: a healthy lab, and guests that are removed
afterwards whatever happened."""
import os

import pytest

from support import invariant
from support.inprocess import run_in_process
from support.lab import INVENTORY, LabHandle, virtlab

# Every module run here is one Ansible task over SSH (lab_module in this process, run_module or
# run_playbook as an `ansible`/`ansible-playbook` subprocess): with pipelining each task
# takes one SSH round trip instead of four (2.6 s -> 1.7 s for one ad hoc module run on the lab),
# which keeps `make test` well inside its time. Operators choose it in their ansible.cfg
# (docs/operations.md "Speed"); the benchmark runs without it, as Ansible's defaults are.
os.environ.setdefault("ANSIBLE_PIPELINING", "True")
# run_module and run_playbook set it for their subprocesses; the in-process runs of `lab_module`
# read it from this process's environment (the lab's ssh options pin its known_hosts as well).
os.environ["ANSIBLE_HOST_KEY_CHECKING"] = "True"


@pytest.fixture(scope="session")
def labh():
    virtlab("up", "--firewall")
    return LabHandle()


@pytest.fixture
def lab_module(ansible_adhoc):
    """lab_module(host, module, args, check_mode=False, timeout=900) -> result dict: one of our
    modules (`virt_migrate`, i.e. kvmops.migration.virt_migrate) run on one lab host.

    Built on pytest-ansible's `ansible_adhoc` fixture (issue 19): pytest-ansible runs the module
    in-process through Ansible's API, so there is no `ansible` subprocess and no parsing of the
    JSON callback's stdout, as lab/vlab/control.py run_module does. The result is the dict
    run_module returns: `changed`, `msg`, the module's returns, and `failed: true` when the
    module failed (returned, not raised: tests assert on refusals). A task over `timeout`
    seconds raises, as run_module's subprocess timeout did. Main thread only (Ansible installs
    signal handlers): runs from a thread pool stay on run_module (tests/support/inprocess.py).
    Function scope, as `ansible_adhoc` is; each call reads the lab inventory afresh."""

    def run(host, module, args, check_mode=False, timeout=900):
        return run_in_process(ansible_adhoc, INVENTORY, host, module, args, check_mode=check_mode, timeout=timeout)

    return run


@pytest.fixture
def make_guest(labh):
    """make_guest(name, on, *virtlab guest create options) -> name; removed at teardown.

    Before a guest is removed, whatever the test did to it, the invariant that holds after every
    test is checked (tests/support/invariant.py final_check): at most one active copy, no job left
    anywhere, defined only where it runs, its memory never rolled back. A test that breaks it on
    purpose removes its guest itself."""
    made = []

    def make(name, on="host-a", *options):
        virtlab("guest", "rm", name, check=False)
        virtlab("guest", "create", name, "--on", on, *options)
        made.append(name)
        return name

    yield make
    problems = []
    for name in made:
        try:
            invariant.final_check(labh, name)
        except AssertionError as exc:
            problems.append(str(exc))
        virtlab("guest", "rm", name, check=False)
    assert not problems, "after the test: %s" % "; ".join(problems)


@pytest.fixture
def bridge_network_on_source(labh):
    """Network pf-net (a bridge pfbr0) on host-a only: a destination that lacks the guest's bridge."""
    virtlab("exec", "host-a", "--", "ip", "link", "add", "pfbr0", "type", "bridge", check=False)
    virtlab("exec", "host-a", "--", "ip", "link", "set", "pfbr0", "up")
    conn = labh.libvirt("host-a")
    if "pf-net" in conn.listNetworks() + conn.listDefinedNetworks():  # left by an interrupted run
        stale = conn.networkLookupByName("pf-net")
        if stale.isActive():
            stale.destroy()
        stale.undefine()
    net = conn.networkDefineXML("<network><name>pf-net</name><forward mode='bridge'/><bridge name='pfbr0'/></network>")
    try:
        net.create()
        yield "pf-net"
    finally:
        # Guests on the network go first (the make_guest fixture is torn down after this one).
        for host in labh.hypervisors:
            for dom in labh.libvirt(host).listAllDomains(0):
                if "<source network='pf-net'" in dom.XMLDesc(0):
                    virtlab("guest", "rm", dom.name(), check=False)
        try:
            if net.isActive():
                net.destroy()
        finally:
            net.undefine()
            virtlab("exec", "host-a", "--", "ip", "link", "del", "pfbr0", check=False)
