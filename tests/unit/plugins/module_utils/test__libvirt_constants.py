# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The libvirt constants the collection defines are libvirt's, and defined in one place only."""

from __future__ import annotations

import os
import re

import libvirt
import pytest

from ansible_collections.kvmops.migration.plugins.module_utils import _libvirt_constants

NAMES = sorted(name for name in vars(_libvirt_constants) if name.isupper())
PLUGINS = os.path.dirname(os.path.dirname(os.path.abspath(_libvirt_constants.__file__)))


def test_the_module_holds_only_libvirt_names():
    assert NAMES
    assert [name for name in NAMES if not name.startswith('VIR_')] == []


@pytest.mark.parametrize('name', NAMES)
def test_each_value_is_the_bindings_value(name):
    assert getattr(_libvirt_constants, name) == getattr(libvirt, name)


def test_no_other_plugin_file_defines_a_libvirt_constant():
    assignment = re.compile(r'^\s*VIR_[A-Z0-9_]+\s*=', re.M)
    offenders = []
    for folder, _dirs, files in os.walk(PLUGINS):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith('.py') and path != os.path.abspath(_libvirt_constants.__file__):
                with open(path) as handle:
                    if assignment.search(handle.read()):
                        offenders.append(os.path.relpath(path, PLUGINS))
    assert offenders == []
