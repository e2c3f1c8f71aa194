# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt doubles shared by the module_utils tests."""
from __future__ import annotations

import types

import pytest


class FakeLibvirtError(Exception):
    """A libvirtError with a given virErrorNumber (libvirt's own cannot be built with one)."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code

    def get_error_code(self):
        return self.code

    def get_error_domain(self):
        return 10  # VIR_FROM_QEMU

    def get_error_message(self):
        return str(self)


@pytest.fixture
def libvirt_error(monkeypatch):
    """Make ``_errors`` see FakeLibvirtError as libvirt's error class; returns the class."""
    # Imported here: the collection becomes importable only once pytest-ansible has set up
    # its path, after conftest files are loaded.
    from ansible_collections.kvmops.migration.plugins.module_utils import _bindings  # pylint: disable=import-outside-toplevel
    monkeypatch.setattr(_bindings, 'libvirt', types.SimpleNamespace(libvirtError=FakeLibvirtError))
    return FakeLibvirtError
