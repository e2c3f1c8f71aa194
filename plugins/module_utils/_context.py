# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a manager needs from whoever runs it: the one contract between managers and their callers.

A manager (``MigrationManager``, ``BlockCopier``, the preflight runner...) reads its options from
``params``, talks to libvirt through ``client`` (a ``LibvirtClient``), changes nothing when
``check_mode`` is set, returns a diff only when ``diff_mode`` is set, and reports non-fatal
problems through ``warn``. ``can_detach`` says whether the manager may move its work to a
detached process (``_detach``): the Ansible module may; a per-guest job of an evacuation (one
thread among several in a process with open libvirt connections, which must not fork) may not.

``KvmopsModule`` (``_module_wrapper``) implements this contract for a module run; ``ManagerContext``
implements it for code that drives a manager itself.
"""

from __future__ import annotations


class ManagerContext:
    """A manager's context outside an Ansible module run (e.g. one migration of an evacuation)."""

    can_detach = False

    def __init__(self, params, client, check_mode=False, diff_mode=False):
        self.params = params
        self.client = client
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)
