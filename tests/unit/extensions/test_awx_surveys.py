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
# {role: its defaults} of the collection's roles.
ROLE_DEFAULTS = dict((path.parent.parent.name, yaml.safe_load(path.read_text()))
                     for path in (REPO / 'roles').glob('*/defaults/main.yml'))
AWX_TYPES = {'text', 'textarea', 'password', 'integer', 'float', 'multiplechoice', 'multiselect'}


def roles_used(text):
    """The collection's roles ``text`` names (kvmops.migration.<role>), and the roles their tasks name, and so on."""
    found, todo = set(), [text]
    while todo:
        for role in re.findall(r'kvmops\.migration\.([a-z_]+)', todo.pop()):
            if role in ROLE_DEFAULTS and role not in found:
                found.add(role)
                todo.extend(path.read_text() for path in (REPO / 'roles' / role / 'tasks').glob('*.yml'))
    return found


def variables_read(playbook):
    """Variables a playbook and the task files of the roles it uses refer to."""
    text = (REPO / playbook).read_text()
    for role in roles_used(text):
        for path in (REPO / 'roles' / role / 'tasks').glob('*.yml'):
            text += path.read_text()
    return set(re.findall(r'\b([a-z_][a-z0-9_]*)\b', text))


@pytest.mark.parametrize('template', SURVEYS, ids=lambda t: t['name'])
def test_survey_matches_playbook(template):
    assert (REPO / template['playbook']).is_file()
    names = variables_read(template['playbook'])
    playbook_text = (REPO / template['playbook']).read_text()
    roles = roles_used(playbook_text)
    for question in template['survey']:
        var = question['variable']
        assert question['type'] in AWX_TYPES
        assert var in names, '%s asks for %s, which %s never reads' % (template['name'], var, template['playbook'])
        owner = next((role for role in roles if var.startswith(role + '_')), None)
        if owner and var not in ROLE_DEFAULTS[owner]:
            # A variable named after a role but read by the playbook only (e.g. the hosts of its play).
            assert var in playbook_text, '%s is not a variable of the %s role' % (var, owner)
        elif owner:
            default = ROLE_DEFAULTS[owner][var]
            if question['type'] == 'integer':
                assert isinstance(default, int) and question['min'] <= default <= question['max']
            if question['type'] == 'multiplechoice':
                assert (str(default).lower() if isinstance(default, bool) else default) in question['choices']
            if 'default' in question:
                # Launched with the survey's defaults, the role runs as its own defaults say.
                assert str(question['default']).lower() == str(default).lower(), (var, question['default'], default)
        if 'default' in question and question['type'] == 'multiplechoice':
            assert str(question['default']) in [str(c) for c in question['choices']]


def test_evacuate_template_asks_for_the_limit():
    evacuate = next(t for t in SURVEYS if t['playbook'] == 'playbooks/evacuate.yml')
    assert evacuate['ask_limit_on_launch'], 'the host to drain is given with --limit'


def test_rolling_maintenance_template_asks_what_the_issue_lists():
    rolling = next(t for t in SURVEYS if t['playbook'] == 'playbooks/rolling_maintenance.yml')
    asked = {question['variable'] for question in rolling['survey']}
    assert {'rolling_maintenance_hosts', 'rolling_maintenance_tasks', 'rolling_maintenance_batch_size',
            'rolling_maintenance_unmovable', 'rolling_maintenance_dry_run'} <= asked
    assert rolling['ask_limit_on_launch']
