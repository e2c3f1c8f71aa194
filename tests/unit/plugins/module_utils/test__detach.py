# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The detached runner for wait: false, with real forks (no libvirt involved)."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError, KvmopsError
from ansible_collections.kvmops.migration.plugins.module_utils._detach import (
    pid_alive,
    run_detached,
    unpack,
)
from ansible_collections.kvmops.migration.plugins.module_utils._jobinfo import detached_migrations
from ansible_collections.kvmops.migration.plugins.module_utils._statefile import read_json, write_json


def wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_started_returns_at_once_and_the_work_goes_on_to_write_its_result(tmp_path):
    report = str(tmp_path / 'migrations' / 'u1.json')
    gate = tmp_path / 'go-on'

    def work(run):
        run.report_to(report, {'name': 'web1', 'uuid': 'u1'})
        run.announce({'changed': True, 'started': True, 'pid': os.getpid()})
        while not gate.exists():  # the module has returned by now; this is still running
            time.sleep(0.05)
        return {'changed': True, 'msg': 'Migrated web1'}

    kind, result = run_detached(work)
    assert kind == 'started' and result['started'] is True
    running = read_json(report)
    assert running['running'] is True and running['pid'] == result['pid'] and pid_alive(result['pid'])
    assert detached_migrations(str(tmp_path), 'web1')[0]['running'] is True
    gate.touch()
    assert wait_for(lambda: read_json(report).get('running') is False)
    final = read_json(report)
    assert final['msg'] == 'Migrated web1' and 'failed' not in final
    assert wait_for(lambda: not pid_alive(result['pid']))
    entry = detached_migrations(str(tmp_path), 'web1')[0]
    assert entry['running'] is False and entry['msg'] == 'Migrated web1' and entry['outcome_file'] == report


def test_an_error_before_the_start_fails_the_task_with_its_message_and_remedy():
    def work(dummy_run):
        raise InvalidInputError('dest=x is the source host itself', remedy='Name another hypervisor as dest.')

    with pytest.raises(KvmopsError) as caught:
        run_detached(work)
    assert caught.value.msg == 'dest=x is the source host itself'
    assert caught.value.remedy == 'Name another hypervisor as dest.'


def test_work_that_ends_before_announcing_returns_its_final_result():
    assert run_detached(lambda run: {'changed': False, 'msg': 'already there'}) == (
        'finished', {'changed': False, 'msg': 'already there'})


def test_a_failure_after_the_start_is_written_to_the_report(tmp_path):
    report = str(tmp_path / 'r.json')

    def work(run):
        run.report_to(report, {'name': 'g'})
        run.announce({'started': True})
        raise KvmopsError('Migration failed: aborted. The guest now runs on host-a.', details={'location': {'x': 1}})

    assert run_detached(work)[0] == 'started'
    assert wait_for(lambda: read_json(report).get('running') is False)
    final = read_json(report)
    assert final['failed'] is True and final['msg'].startswith('Migration failed') and final['location'] == {'x': 1}


def test_an_unexpected_crash_is_reported_not_lost():
    def work(dummy_run):
        raise ZeroDivisionError('boom')

    with pytest.raises(KvmopsError, match='unexpected error: ZeroDivisionError'):
        run_detached(work)


def test_unpack_and_the_json_helpers(tmp_path):
    with pytest.raises(KvmopsError) as caught:
        unpack({'kind': 'failed', 'result': {'msg': 'm', 'remedy': 'r', 'failed': True, 'location': 'l'}})
    assert (caught.value.msg, caught.value.remedy, caught.value.details) == ('m', 'r', {'location': 'l'})
    assert unpack({'kind': 'started', 'result': {'a': 1}}) == ('started', {'a': 1})
    path = str(tmp_path / 'd' / 'x.json')
    write_json(path, {'a': 1})
    assert read_json(path) == {'a': 1} and read_json(str(tmp_path / 'missing.json')) is None
    (tmp_path / 'bad.json').write_text('[1]')
    assert read_json(str(tmp_path / 'bad.json')) is None
    assert not pid_alive(None)


def test_detached_migrations_filters_by_name_and_sorts_newest_first(tmp_path):
    write_json(str(tmp_path / 'migrations' / 'a.json'), {'name': 'a', 'running': False, 'finished_at': 10})
    write_json(str(tmp_path / 'migrations' / 'b.json'),
               {'name': 'b', 'running': False, 'finished_at': 20, 'failed': True, 'msg': 'no'})
    # A report that says running but whose process is gone is not running.
    write_json(str(tmp_path / 'migrations' / 'c.json'),
               {'name': 'c', 'running': True, 'pid': 2 ** 22 + 7, 'started_at': 5})
    assert [e['name'] for e in detached_migrations(str(tmp_path))] == ['b', 'a', 'c']
    assert detached_migrations(str(tmp_path), 'c')[0]['running'] is False
    assert detached_migrations(str(tmp_path), 'b')[0]['failed'] is True
    assert detached_migrations(str(tmp_path / 'nowhere')) == []
