# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Roles and playbooks pass module options one by one: a task whose arguments are one template
(`module: "{{ some_dict }}"`) makes Ansible print "Using a template for task args is unsafe" on every
run. Where a variable holds a dict of further options, every option it may hold is passed on."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.parsing.mod_args import BUILTIN_TASKS, RAW_PARAM_MODULES

from ansible_collections.kvmops.migration.plugins.module_utils._migration_spec import ARGUMENT_SPEC as MIGRATE_SPEC
from ansible_collections.kvmops.migration.plugins.modules.virt_blockcopy import ARGUMENT_SPEC as BLOCKCOPY_SPEC
from ansible_collections.kvmops.migration.plugins.modules.virt_evacuate import ARGUMENT_SPEC as EVACUATE_SPEC

REPO = Path(__file__).resolve().parents[2]
TASK_DIRS = ('roles', 'playbooks', 'molecule', 'extensions')
# Keywords of a task or block that are not the module call.
TASK_KEYWORDS = {
    'name', 'when', 'register', 'loop', 'loop_control', 'vars', 'tags', 'become', 'become_user', 'delegate_to',
    'run_once', 'check_mode', 'diff', 'changed_when', 'failed_when', 'ignore_errors', 'no_log', 'async', 'poll',
    'until', 'retries', 'delay', 'notify', 'environment', 'listen', 'args', 'block', 'rescue', 'always',
    'module_defaults', 'any_errors_fatal', 'throttle', 'timeout', 'delegate_facts', 'ignore_unreachable',
}


def load(path):
    return yaml.safe_load((REPO / path).read_text())


def tasks_in(data):
    """Every task (blocks opened, plays' task lists included) in a parsed YAML file."""
    if isinstance(data, list):
        for item in data:
            yield from tasks_in(item)
    elif isinstance(data, dict):
        if any(key in data for key in ('tasks', 'pre_tasks', 'post_tasks', 'handlers', 'block', 'rescue', 'always')):
            for key in ('tasks', 'pre_tasks', 'post_tasks', 'handlers', 'block', 'rescue', 'always'):
                yield from tasks_in(data.get(key) or [])
        if 'name' in data or any('.' in key for key in data):
            yield data


def yaml_files():
    for top in TASK_DIRS:
        for path in sorted((REPO / top).rglob('*.yml')):
            yield path.relative_to(REPO)


def module_call(task):
    """(module name, its arguments) of a task, or None for a block or a play."""
    calls = [(key, value) for key, value in task.items() if key not in TASK_KEYWORDS and '.' in key]
    return calls[0] if len(calls) == 1 else None


def test_no_task_passes_its_arguments_as_one_template():
    offenders = []
    for path in yaml_files():
        data = load(path)
        for task in tasks_in(data):
            call = module_call(task)
            # A file name (include_tasks) or a command line (shell) is a free-form string, not arguments.
            free_form = call and call[0] in RAW_PARAM_MODULES | BUILTIN_TASKS
            if call and not free_form and isinstance(call[1], str) and '{{' in call[1]:
                offenders.append('%s: %s' % (path, task.get('name')))
            if isinstance(task.get('args'), str):
                offenders.append('%s: %s (args:)' % (path, task.get('name')))
    assert offenders == []


def the_task(path, name):
    return next(task for task in tasks_in(load(path)) if task.get('name') == name)


def set_fact_keys(path):
    """The options an action's arguments file of the evacuation role (<action>_args.yml) puts in evacuation_args."""
    return set(the_task(path, next(t['name'] for t in load(path) if 'ansible.builtin.set_fact' in t))
               ['ansible.builtin.set_fact']['evacuation_args'])


@pytest.mark.parametrize('action', ['evacuate', 'return', 'rebalance'])
def test_the_evacuation_role_passes_on_every_option_its_action_sets(action):
    run = load('roles/evacuation/tasks/run.yml')
    plan = next(t for t in run if t['name'] == 'Plan (check mode)')['kvmops.migration.virt_evacuate']
    start = next(t for t in run if t['name'] == 'Start the migrations')['kvmops.migration.virt_evacuate']
    assert plan == start, 'the check-mode plan and the real run must get the same options'
    keys = set_fact_keys('roles/evacuation/tasks/%s_args.yml' % action)
    assert keys <= set(plan), 'run.yml drops %s' % (keys - set(plan))
    assert set(plan) <= set(EVACUATE_SPEC), set(plan) - set(EVACUATE_SPEC)
    for option, value in plan.items():
        # An option one action does not set is left out, never passed as an undefined value.
        assert value == '{{ evacuation_args.%s | default(omit) }}' % option


def test_migrate_playbook_passes_every_option_of_virt_migrate():
    play = load('playbooks/migrate.yml')[0]
    names = play['vars']['migrate_option_names']
    set_by_playbook = {'name', 'dest', 'mode', 'copy_storage'}
    # uuid names the guest instead of name; the playbook always names it.
    assert set(names) == set(MIGRATE_SPEC) - set_by_playbook - {'uuid'}
    plan = the_task('playbooks/migrate.yml', 'Plan (where the guest is, what would be done; changes nothing)')
    migrate = the_task('playbooks/migrate.yml', 'Migrate')
    assert plan['kvmops.migration.virt_migrate'] == migrate['kvmops.migration.virt_migrate']
    args = plan['kvmops.migration.virt_migrate']
    assert set(args) == set(names) | set_by_playbook
    for option in names:
        assert args[option] == '{{ migrate_options.%s | default(omit) }}' % option


def test_storage_migrate_playbook_passes_every_option_of_virt_blockcopy():
    play = load('playbooks/storage_migrate.yml')[0]
    names = play['vars']['blockcopy_option_names']
    set_by_playbook = {'name', 'disk', 'dest', 'dest_pool', 'dest_volume'}
    assert set(names) == set(BLOCKCOPY_SPEC) - set_by_playbook
    args = the_task('playbooks/storage_migrate.yml', 'Copy the disk and pivot to the copy')['kvmops.migration.virt_blockcopy']
    assert set(args) == set(BLOCKCOPY_SPEC)
    for option in names:
        assert args[option] == '{{ blockcopy_options.%s | default(omit) }}' % option
