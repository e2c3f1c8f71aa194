# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

import pytest

from ansible_collections.kvmops.migration.plugins.modules import virt_evacuate_watch


@pytest.mark.parametrize('args,words', [
    ({'offset': -1}, 'offset must be 0 or more'),
    ({'timeout': 7200}, 'timeout between 0 and 3600'),
])
def test_bad_numbers_are_refused(run_main, tmp_path, args, words):
    base = {'progress_file': str(tmp_path / 'p.log'), 'results_file': str(tmp_path / 'j')}
    result, failed = run_main(virt_evacuate_watch, dict(base, **args))
    assert failed and words in result['msg']


def test_a_missing_job_names_the_file_and_the_fix(run_main, tmp_path):
    result, failed = run_main(virt_evacuate_watch, {'progress_file': str(tmp_path / 'p.log'),
                                                    'results_file': str(tmp_path / 'no-job'), 'timeout': 0})
    assert failed and str(tmp_path / 'no-job') in result['msg'] and 'poll: 0' in result['remedy']


def test_an_ended_job_gives_its_lines_and_result_and_changes_nothing(run_main, tmp_path):
    (tmp_path / 'p.log').write_text('10:00:00 start a host-a -> host-b (live)\n10:00:02 === evacuate run ended\n')
    (tmp_path / 'j').write_text(json.dumps({'changed': True, 'msg': 'evacuate: 1 moved, 0 stayed'}))
    result, failed = run_main(virt_evacuate_watch, {'progress_file': str(tmp_path / 'p.log'),
                                                    'results_file': str(tmp_path / 'j')}, check_mode=True)
    assert not failed and result['changed'] is False and result['finished'] is True
    assert result['lines'] == ['10:00:00 start a host-a -> host-b (live)', '10:00:02 === evacuate run ended']
    assert result['result']['msg'] == 'evacuate: 1 moved, 0 stayed'
    assert result['offset'] == len((tmp_path / 'p.log').read_bytes())
