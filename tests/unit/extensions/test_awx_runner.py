# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure part of the AWX job harness (tests/support/awx.py): templates and answers to ansible-runner's
arguments, a run's artifacts to a verdict. The runs themselves are in tests/integration/test_awx_templates.py."""

from __future__ import annotations

import pytest

from support import awx

TEMPLATES = awx.load_templates()


def template(name):
    return next(t for t in TEMPLATES if t['name'] == name)


def test_every_template_of_configure_yml_is_there_with_its_dry_run_twins():
    names = [t['name'] for t in TEMPLATES]
    assert 'kvmops - rolling maintenance' in names
    for base in ('kvmops - evacuate a hypervisor', 'kvmops - rebalance hypervisors', 'kvmops - back up guest definitions'):
        assert base in names and base + ' (dry run)' in names
        assert template(base)['job_type'] == 'run' and template(base + ' (dry run)')['job_type'] == 'check'
    assert 'kvmops - migrate one guest (dry run)' not in names


def test_the_survey_defaults_become_typed_extra_vars():
    extra = awx.survey_extra_vars(template('kvmops - evacuate a hypervisor'))
    assert extra == {'evacuation_max_parallel': 2, 'evacuation_max_per_dest': 1,
                     'evacuation_tolerate_failures': 'false', 'evacuation_move_shutoff': 'false'}


def test_answers_win_and_are_typed_as_awx_types_them():
    extra = awx.survey_extra_vars(template('kvmops - rolling maintenance'),
                                  {'rolling_maintenance_batch_size': '2', 'rolling_maintenance_dry_run': 'true',
                                   'rolling_maintenance_round': '2026-12'})
    assert extra['rolling_maintenance_batch_size'] == 2 and extra['rolling_maintenance_dry_run'] == 'true'
    assert extra['rolling_maintenance_round'] == '2026-12'


def test_an_optional_question_without_answer_or_default_is_left_out():
    extra = awx.survey_extra_vars(template('kvmops - rolling maintenance'))
    assert 'rolling_maintenance_round' not in extra and 'rolling_maintenance_tasks' not in extra
    assert extra['rolling_maintenance_hosts'] == 'hypervisors' and extra['rolling_maintenance_batch_size'] == 1


@pytest.mark.parametrize('name,answers,words', [
    ('kvmops - migrate one guest', {}, 'guest is required and has no default'),
    ('kvmops - evacuate a hypervisor', {'evacuation_max_parallel': 9}, 'outside 1..8'),
    ('kvmops - evacuate a hypervisor', {'evacuation_max_parallel': 'two'}, 'not an integer'),
    ('kvmops - evacuate a hypervisor', {'evacuation_tolerate_failures': 'maybe'}, 'not one of'),
    ('kvmops - evacuate a hypervisor', {'evacuation_timeout': 5}, 'has no question for evacuation_timeout'),
    ('kvmops - rebalance hypervisors', {'evacuation_threshold': 2}, 'outside 0..1'),
])
def test_a_launch_awx_would_refuse_is_refused(name, answers, words):
    with pytest.raises(awx.SurveyError, match=words):
        awx.survey_extra_vars(template(name), answers)


def test_runner_arguments_of_a_run_and_of_a_dry_run(tmp_path):
    args = awx.runner_arguments(template('kvmops - evacuate a hypervisor'), tmp_path, limit='host-a')
    assert args['private_data_dir'] == str(tmp_path) and args['project_dir'] == str(tmp_path / 'project')
    assert args['playbook'] == 'playbooks/evacuate.yml' and args['limit'] == 'host-a'
    assert args['inventory'] == str(tmp_path / 'inventory' / 'hosts.yml')
    assert args['envvars']['ANSIBLE_COLLECTIONS_PATH'] == str(tmp_path / 'requirements_collections')
    assert args['extravars']['evacuation_max_parallel'] == 2 and 'cmdline' not in args
    dry = awx.runner_arguments(template('kvmops - evacuate a hypervisor (dry run)'), tmp_path, limit='host-a')
    assert dry['cmdline'] == '--check'


def test_a_limit_only_where_the_template_asks_for_it(tmp_path):
    assert 'limit' not in awx.runner_arguments(template('kvmops - back up guest definitions'), tmp_path)
    with pytest.raises(awx.SurveyError, match='does not ask for a limit'):
        awx.runner_arguments(template('kvmops - back up guest definitions'), tmp_path, limit='host-a')


STATS = {'ok': {'host-a': 5}, 'changed': {'host-a': 1}, 'failures': {}, 'dark': {}, 'skipped': {}}


def test_a_clean_run_has_no_problem():
    assert awx.problems('successful', 0, STATS, 'PLAY RECAP\nhost-a : ok=5 changed=1\n') == []


@pytest.mark.parametrize('status,rc,stats,stdout,words', [
    ('failed', 0, STATS, '', 'status failed'),
    ('successful', 4, STATS, '', 'return code 4'),
    ('successful', 0, None, '', 'did not run to its end'),
    ('successful', 0, dict(STATS, failures={'host-b': 1}), '', 'failed: host-b'),
    ('successful', 0, dict(STATS, dark={'host-c': 1}), '', 'unreachable: host-c'),
    ('successful', 0, dict(STATS, ok={}, changed={}), '', 'no task ran'),
    ('successful', 0, STATS, 'ok\n[WARNING]: Using a template for task args is unsafe\n', 'warnings: [WARNING]: Using'),
])
def test_each_problem_is_named(status, rc, stats, stdout, words):
    found = awx.problems(status, rc, stats, stdout)
    assert len(found) == 1 and words in found[0], found


def test_the_private_data_dir_has_the_project_the_inventory_and_the_collection(tmp_path):
    inventory = tmp_path / 'lab-inventory.yml'
    inventory.write_text('all: {}\n')
    root = awx.prepare(tmp_path / 'job', inventory)
    assert (root / 'project' / 'playbooks' / 'rolling_maintenance.yml').is_file()
    assert (root / 'inventory' / 'hosts.yml').read_text() == 'all: {}\n'
    collection = root / 'requirements_collections' / 'ansible_collections' / 'kvmops' / 'migration'
    assert (collection / 'galaxy.yml').is_file() and collection.resolve() == (root / 'project').resolve()
