# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._errors import DomainNotFoundError
from ansible_collections.kvmops.migration.plugins.module_utils._jobinfo import (
    VIR_DOMAIN_JOB_STATS_COMPLETED,
    describe_job,
    detached_migrations,
    migration_info,
    progress_percent,
)
from libvirt_doubles import FakeKvm, FakeLibvirtError


def test_progress_never_goes_backwards_when_remaining_grows():
    first = progress_percent({'type': 2, 'data_processed': 60, 'data_remaining': 40})
    assert first == 60.0
    # The guest dirtied more than was sent: the raw ratio falls to 50%, the report does not.
    assert progress_percent({'type': 2, 'data_processed': 80, 'data_remaining': 80}, previous=first) == 60.0


def test_completed_job_is_100_percent_and_figures_are_in_bytes_and_ms():
    job = describe_job({'type': 3, 'operation': 5, 'data_processed': 10, 'data_remaining': 0,
                        'memory_dirty_rate': 100, 'memory_page_size': 4096, 'downtime': 42})
    assert job['progress_percent'] == 100.0
    assert job['type'] == 'completed' and job['operation'] == 'migration_out'
    assert job['dirty_rate_bps'] == 409600 and job['expected_downtime_ms'] == 42


def test_no_job_reports_zero():
    assert describe_job({'type': 0})['progress_percent'] == 0.0


# -- the jobs of a host's domains and the detached migrations (virt_migrate_info) ------------

class FakeDomain:
    """A domain with a current job (`stats`) and, if given, the figures of its last completed one."""

    def __init__(self, name, stats=None, last=None, active=True):
        self._name, self.stats, self.last, self.active = name, stats or {'type': 0}, last, active

    def name(self):
        return self._name

    def isActive(self):  # noqa: N802
        return 1 if self.active else 0

    def jobStats(self, flags=0):  # noqa: N802
        if flags & VIR_DOMAIN_JOB_STATS_COMPLETED:
            if self.last is None:
                raise FakeLibvirtError('no completed job', 1)
            return self.last
        assert self.active, 'jobStats of a shut-off domain'
        return self.stats


class FakeConn:
    def __init__(self, *domains):
        self.domains = dict((dom.name(), dom) for dom in domains)

    def listAllDomains(self, flags=0):  # noqa: N802
        return list(self.domains.values())

    def lookupByName(self, name):  # noqa: N802
        if name not in self.domains:
            raise FakeLibvirtError("Domain not found: no domain with matching name '%s'" % name, 42)
        return self.domains[name]


MIGRATING = {'type': 2, 'operation': 5, 'data_processed': 30, 'data_remaining': 70, 'memory_iteration': 2}
DONE = {'type': 3, 'operation': 5, 'data_processed': 100, 'data_remaining': 0, 'downtime': 37}


def info(conn, state_dir, **given):
    params = dict(dict(name=None, completed=False, previous_progress=None, state_dir=str(state_dir)), **given)
    return migration_info(FakeKvm(conn, params))


def test_every_domain_lists_only_those_with_a_job(tmp_path):
    conn = FakeConn(FakeDomain('busy', MIGRATING), FakeDomain('idle'), FakeDomain('off', active=False))
    result = info(conn, tmp_path)
    assert result['changed'] is False and result['detached'] == []
    assert [job['name'] for job in result['jobs']] == ['busy']
    job = result['jobs'][0]
    assert job['type'] == 'unbounded' and job['progress_percent'] == 30.0 and job['pass'] == 2


def test_a_named_domain_is_reported_even_without_a_job_and_progress_keeps_the_previous_reading(tmp_path):
    conn = FakeConn(FakeDomain('busy', MIGRATING), FakeDomain('idle'))
    assert info(conn, tmp_path, name='idle')['jobs'][0]['type'] == 'none'
    assert info(conn, tmp_path, name='busy', previous_progress=45.0)['jobs'][0]['progress_percent'] == 45.0


def test_completed_adds_the_last_jobs_figures_or_none(tmp_path):
    conn = FakeConn(FakeDomain('moved', last=DONE), FakeDomain('never'), FakeDomain('off', active=False, last=DONE))
    jobs = dict((job['name'], job) for job in info(conn, tmp_path, completed=True)['jobs'])
    assert sorted(jobs) == ['moved', 'never', 'off'], 'with completed=true, domains without a job are listed'
    assert jobs['moved']['completed']['progress_percent'] == 100.0
    assert jobs['moved']['completed']['downtime_ms'] == 37
    assert jobs['never']['completed'] is None
    assert jobs['off']['type'] == 'none' and jobs['off']['completed']['type'] == 'completed'


def write_report(state_dir, uuid, **report):
    path = state_dir / 'migrations' / ('%s.json' % uuid)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(dict(report, uuid=uuid)))
    return str(path)


def dead_pid():
    child = subprocess.Popen(['true'])
    child.wait()
    return child.pid


def test_detached_migrations_newest_first_with_a_dead_process_shown_as_not_running(tmp_path):
    old = write_report(tmp_path, 'u1', name='web', destination='host-b', running=False, failed=True,
                       msg='stayed on host-a', started_at=10, finished_at=20)
    live = write_report(tmp_path, 'u2', name='db', destination='host-c', running=True, pid=os.getpid(), started_at=30)
    write_report(tmp_path, 'u3', name='gone', running=True, pid=dead_pid(), started_at=25)
    (tmp_path / 'migrations' / 'broken.json').write_text('{not json')
    found = detached_migrations(str(tmp_path))
    assert [entry['uuid'] for entry in found] == ['u2', 'u3', 'u1']
    assert found[0] == dict(name='db', uuid='u2', destination='host-c', running=True, failed=False, outcome_file=live)
    assert found[1]['running'] is False and 'msg' not in found[1]
    assert found[2] == dict(name='web', uuid='u1', destination='host-b', msg='stayed on host-a', running=False,
                            failed=True, outcome_file=old)
    assert [entry['uuid'] for entry in detached_migrations(str(tmp_path), 'web')] == ['u1']


def test_a_domain_that_left_with_a_detached_migration_is_news_not_an_error(tmp_path):
    write_report(tmp_path, 'u1', name='web', destination='host-b', running=False, failed=False, finished_at=5)
    result = info(FakeConn(), tmp_path, name='web')
    assert result['jobs'] == [] and [entry['uuid'] for entry in result['detached']] == ['u1']
    with pytest.raises(DomainNotFoundError):
        info(FakeConn(), tmp_path, name='other')
