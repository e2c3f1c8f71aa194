# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The progress file of an evacuation run, written by ProgressLog and followed by watch(), which
hands the asynchronous job's result over as soon as the job has ended."""

from __future__ import annotations

import json
import pathlib

import pytest
import yaml

from ansible_collections.kvmops.migration.plugins.module_utils._progress import (
    RUN_ENDED,
    NoSuchJobError,
    ProgressLog,
    complete_lines,
    job_outcome,
    watch,
)

RUNNING = json.dumps({'started': 1, 'finished': 0, 'ansible_job_id': 'j1', 'results_file': '/x/j1'})


class Clock:
    def __init__(self):
        self.now = 0.0
        self.on_sleep = []  # callables run at each sleep (the job writing meanwhile)

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        if self.on_sleep:
            self.on_sleep.pop(0)()


@pytest.mark.parametrize('text, expected', [
    ('', (False, None)),                                   # not written yet
    ('{"started": 1, "fin', (False, None)),                # being written
    (RUNNING, (False, None)),
    ('{"changed": true, "msg": "evacuate: 2 moved, 0 stayed"}',
     (True, {'changed': True, 'msg': 'evacuate: 2 moved, 0 stayed', 'finished': True})),
    ('{"started": 1, "finished": 1, "failed": 1, "msg": "Timeout exceeded"}',  # async_wrapper's own
     (True, {'failed': 1, 'msg': 'Timeout exceeded', 'finished': True})),
])
def test_job_outcome_reads_the_results_file_as_async_status_does(text, expected):
    assert job_outcome(text) == expected


def test_only_whole_lines_are_taken():
    assert complete_lines(b'a\nb\npart') == (['a', 'b'], 4)
    assert complete_lines(b'part') == ([], 0)


def test_watch_returns_the_new_lines_after_the_timeout_while_the_job_runs(tmp_path):
    results, progress = tmp_path / 'j1', tmp_path / 'evacuate.log'
    results.write_text(RUNNING)
    log = ProgressLog(str(progress))
    log('start web1 host-a -> host-b (live)')
    clock = Clock()
    first = watch(str(progress), str(results), 0, timeout=3, clock=clock, sleep=clock.sleep)
    assert first['finished'] is False and 'result' in first and first['result'] is None
    assert [line.split(' ', 1)[1] for line in first['lines']] == ['start web1 host-a -> host-b (live)']
    assert clock.now >= 3
    log('moved web1 host-a -> host-b in 1.2 s, downtime 40 ms')
    second = watch(str(progress), str(results), first['offset'], timeout=0, clock=clock, sleep=clock.sleep)
    assert [line.split(' ', 1)[1] for line in second['lines']] == ['moved web1 host-a -> host-b in 1.2 s, downtime 40 ms']
    log.close()


def test_watch_returns_as_soon_as_the_job_ends_with_its_last_lines_and_result(tmp_path):
    results, progress = tmp_path / 'j1', tmp_path / 'evacuate.log'
    results.write_text(RUNNING)
    log = ProgressLog(str(progress))
    clock = Clock()

    def the_job_ends():
        log(RUN_ENDED % 'evacuate')
        results.write_text(json.dumps({'changed': True, 'report': ['guest  from'], 'summary': {'stayed': []}}))
    clock.on_sleep = [lambda: None, the_job_ends]
    seen = watch(str(progress), str(results), 0, timeout=30, clock=clock, sleep=clock.sleep)
    assert clock.now < 1, 'it waited out the timeout instead of returning when the job ended'
    assert seen['finished'] is True and seen['result']['summary'] == {'stayed': []}
    assert seen['lines'][-1].endswith('=== evacuate run ended')
    log.close()


def test_watch_without_the_job_says_so(tmp_path):
    with pytest.raises(NoSuchJobError):
        watch(str(tmp_path / 'none.log'), str(tmp_path / 'no-such-job'), 0, timeout=0)


def test_the_role_watches_with_virt_evacuate_watch_and_the_results_file_of_the_async_start():
    role = pathlib.Path(__file__).resolve().parents[4] / 'roles' / 'evacuation' / 'tasks'
    start = next(task for task in yaml.safe_load((role / 'run.yml').read_text())
                 if task.get('name') == 'Start the migrations')
    assert start['poll'] == 0 and start['register'] == 'evacuation_job'
    watch_task = yaml.safe_load((role / 'watch.yml').read_text())[0]['kvmops.migration.virt_evacuate_watch']
    assert watch_task['results_file'] == '{{ evacuation_job.results_file }}'
    assert watch_task['progress_file'] == '{{ evacuation_args.progress_file }}'
