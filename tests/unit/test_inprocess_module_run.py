# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The integration tests' `lab_module` fixture without the lab: tests/support/inprocess.py runs a
module through pytest-ansible's `ansible_adhoc` on localhost (connection local). A module that
refuses its input comes back as a plain dict with failed: true (not raised), in check mode too,
and check mode really reaches the task."""

from __future__ import annotations

import sys

import pytest

from support.inprocess import run_in_process

BAD_DEST = "qemu+ssh://host;rm -rf /"


@pytest.fixture
def local_inventory(tmp_path):
    path = tmp_path / "inventory.yml"
    path.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                    "      ansible_python_interpreter: %s\n" % sys.executable)
    return str(path)


@pytest.mark.parametrize("check_mode", [False, True])
def test_refused_input_comes_back_as_a_failed_result(ansible_adhoc, local_inventory, check_mode):
    res = run_in_process(ansible_adhoc, local_inventory, "localhost", "virt_migrate",
                         {"name": "g1", "dest": BAD_DEST}, check_mode=check_mode)
    # A plain dict, as run_module's json.loads gave, not one of Ansible's tagged dict subclasses.
    assert type(res) is dict, type(res)  # pylint: disable=unidiomatic-typecheck
    assert res["failed"] is True and res["changed"] is False, res
    assert res["msg"] == "dest=%r is refused: a URI has no spaces or control characters" % BAD_DEST
    assert res["action"] == "kvmops.migration.virt_migrate"


def test_check_mode_reaches_the_task(ansible_adhoc, local_inventory, tmp_path):
    path = tmp_path / "touched"
    res = run_in_process(ansible_adhoc, local_inventory, "localhost", "ansible.builtin.file",
                         {"path": str(path), "state": "touch"}, check_mode=True)
    assert res["changed"] is True and not res.get("failed") and not path.exists(), res
