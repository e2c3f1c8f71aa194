# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The AWX surveys ask only for variables the playbooks read, with defaults they accept (no AWX needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
SURVEYS = yaml.safe_load((REPO / 'extensions' / 'awx' / 'surveys.yml').read_text())['awx_job_templates']
ROLE_DEFAULTS = yaml.safe_load((REPO / 'roles' / 'evacuation' / 'defaults' / 'main.yml').read_text())
AWX_TYPES = {'text', 'textarea', 'password', 'integer', 'float', 'multiplechoice', 'multiselect'}


def variables_read(playbook):
    """Variables a playbook (and the evacuation role task files it includes) refers to."""
    text = (REPO / playbook).read_text()
    if 'kvmops.migration.evacuation' in text:
        for path in (REPO / 'roles' / 'evacuation' / 'tasks').glob('*.yml'):
            text += path.read_text()
    return set(re.findall(r'\b([a-z_][a-z0-9_]*)\b', text))


@pytest.mark.parametrize('template', SURVEYS, ids=lambda t: t['name'])
def test_survey_matches_playbook(template):
    assert (REPO / template['playbook']).is_file()
    names = variables_read(template['playbook'])
    for question in template['survey']:
        var = question['variable']
        assert question['type'] in AWX_TYPES
        assert var in names, '%s asks for %s, which %s never reads' % (template['name'], var, template['playbook'])
        if var.startswith('evacuation_'):
            assert var in ROLE_DEFAULTS, '%s is not a variable of the evacuation role' % var
            default = ROLE_DEFAULTS[var]
            if question['type'] == 'integer':
                assert isinstance(default, int) and question['min'] <= default <= question['max']
            if question['type'] == 'multiplechoice' and isinstance(default, bool):
                assert str(default).lower() in question['choices']
        if 'default' in question and question['type'] == 'multiplechoice':
            assert str(question['default']) in [str(c) for c in question['choices']]


def test_evacuate_template_asks_for_the_limit():
    evacuate = next(t for t in SURVEYS if t['playbook'] == 'playbooks/evacuate.yml')
    assert evacuate['ask_limit_on_launch'], 'the host to drain is given with --limit'
