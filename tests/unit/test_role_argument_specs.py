# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A role's meta/argument_specs.yml and its defaults/main.yml agree: every default is documented by one of
its entry points, with the same value wherever an entry point states one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = sorted(path.parent.parent for path in (Path(__file__).resolve().parents[2] / 'roles').glob('*/meta/argument_specs.yml')
               if (path.parent.parent / 'defaults' / 'main.yml').is_file())


@pytest.mark.parametrize('role', ROLES, ids=lambda path: path.name)
def test_argument_specs_and_defaults_agree(role):
    defaults = yaml.safe_load((role / 'defaults' / 'main.yml').read_text()) or {}
    entries = yaml.safe_load((role / 'meta' / 'argument_specs.yml').read_text())['argument_specs']
    documented = set()
    for entry, spec in entries.items():
        for name, option in (spec.get('options') or {}).items():
            documented.add(name)
            if 'default' in option and name in defaults:
                assert option['default'] == defaults[name], '%s: %s documents %s=%r, defaults say %r' % (
                    role.name, entry, name, option['default'], defaults[name])
    assert sorted(set(defaults) - documented) == [], '%s: defaults no entry point documents' % role.name
