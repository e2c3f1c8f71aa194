"""Every AWX job template's playbook, run on the lab the way AWX runs a job (tests/support/awx.py:
ansible-runner, a private data directory with the project and the lab's inventory, the survey's defaults and
answers as extra vars, the template's limit, --check for the dry-run templates). Each run must end
`successful` with return code 0, no host failed or unreachable, some task run and no [WARNING] in its output;
then the effect is checked on the lab, from libvirt and the guests' heartbeats.

Every template extensions/awx/configure.yml creates must have a launch here (test_every_template_is_launched).
"""
import os
import time

import pytest

from support import awx, invariant
from support.lab import INVENTORY, ansible_bin, run_playbook

TEMPLATES = dict((template["name"], template) for template in awx.load_templates())
GUEST = "awx-g1"
STATE_DIR = "/var/lib/libvirt/kvmops"


def evacuated(labh):
    """Before a template that needs host-a drained: drain it with the playbook itself."""
    res, dummy = run_playbook("evacuate.yml", limit="host-a")
    assert res.returncode == 0, res.stdout[-3000:]
    assert invariant.check(labh, GUEST)[0] != "host-a"


def returned(labh):
    """After a template that leaves host-a drained: bring its guests back (and clear its mark)."""
    res, dummy = run_playbook("return.yml", limit="host-a")
    assert res.returncode == 0, res.stdout[-3000:]


# name -> (answers, limit, prepare(labh) or None, where the guest runs after it, clean up(labh) or None)
LAUNCHES = {
    "kvmops - evacuate a hypervisor": ({}, "host-a", None, "elsewhere", returned),
    "kvmops - evacuate a hypervisor (dry run)": ({}, "host-a", None, "host-a", None),
    "kvmops - return guests to a hypervisor": ({}, "host-a", evacuated, "host-a", None),
    "kvmops - migrate one guest": ({"guest": GUEST, "source": "host-a", "dest": "host-b"}, None, None, "host-b", None),
    "kvmops - rebalance hypervisors": ({}, None, None, "anywhere", None),
    "kvmops - rebalance hypervisors (dry run)": ({}, None, None, "host-a", None),
    "kvmops - back up guest definitions": ({}, None, None, "host-a", None),
    "kvmops - back up guest definitions (dry run)": ({}, None, None, "host-a", None),
    # The project's test maintenance step (it records its runs, reboots nothing), on host-a only.
    "kvmops - rolling maintenance": ({"rolling_maintenance_hosts": "host-a",
                                      "rolling_maintenance_tasks": "../tests/integration/files/rolling_maintenance_test.yml"},
                                     None, None, "host-a", None),
}
DRY_RUN_ANSWERS = {"rolling_maintenance_hosts": "host-a", "rolling_maintenance_dry_run": "true"}


def test_every_template_is_launched():
    assert sorted(LAUNCHES) == sorted(TEMPLATES)


def launch(labh, tmp_path, template, answers, limit):
    root = awx.prepare(tmp_path / "job", INVENTORY)
    bin_dir = os.path.dirname(ansible_bin("ansible-playbook")) or None
    runner, stdout, problems = awx.run(template, root, answers=answers, limit=limit, bin_dir=bin_dir)
    assert problems == [], "%s: %s\n%s" % (template["name"], problems, stdout[-6000:])
    return runner, stdout


@pytest.fixture
def no_round_state(labh):
    """The rolling maintenance template leaves its record on host-a: gone before and after."""
    def clean():
        for name in ("rolling.json", "test-maintenance.log"):
            try:
                os.remove(labh.host_path("host-a", os.path.join(STATE_DIR, name)))
            except OSError:
                pass
    clean()
    yield
    clean()


@pytest.mark.parametrize("name", sorted(LAUNCHES))
def test_template_runs_as_awx_runs_it(labh, make_guest, tmp_path, no_round_state, name):
    answers, limit, prepare, expect, clean_up = LAUNCHES[name]
    if name == "kvmops - rolling maintenance":
        answers = dict(answers, rolling_maintenance_round="awx-%d" % time.time())
    make_guest(GUEST, "host-a")
    snap = invariant.Snapshot(labh, GUEST)
    if prepare:
        prepare(labh)
    try:
        runner, stdout = launch(labh, tmp_path, TEMPLATES[name], answers, limit)
        where, dummy = invariant.check(labh, GUEST, snapshot=snap,
                                       expect_on=None if expect in ("elsewhere", "anywhere") else expect)
        if expect == "elsewhere":
            assert where != "host-a", "%s left %s on host-a" % (name, GUEST)
        if name == "kvmops - back up guest definitions":
            backup = "/var/lib/libvirt/images/.kvmops/definitions/host-a/%s.xml" % GUEST
            assert labh.exists_on("host-a", backup), "no backup of %s in %s" % (GUEST, backup)
        if name == "kvmops - rolling maintenance":
            assert "host-a: done in round %s" % answers["rolling_maintenance_round"] in stdout
            assert runner.stats["changed"].get("host-a"), "the round changed nothing on host-a"
    finally:
        if clean_up:
            clean_up(labh)


def test_rolling_maintenance_dry_run_answer_changes_nothing(labh, make_guest, tmp_path, no_round_state):
    make_guest(GUEST, "host-a")
    snap = invariant.Snapshot(labh, GUEST)
    runner, stdout = launch(labh, tmp_path, TEMPLATES["kvmops - rolling maintenance"], DRY_RUN_ANSWERS, None)
    assert "expected: about" in stdout and not runner.stats["changed"], stdout[-4000:]
    invariant.check(labh, GUEST, expect_on="host-a", snapshot=snap)
    assert not labh.exists_on("host-a", os.path.join(STATE_DIR, "rolling.json"))
