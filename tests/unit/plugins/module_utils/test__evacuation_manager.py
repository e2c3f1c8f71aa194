# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_evacuate's backup and rejoin actions against fake libvirt hosts: what is written, removed,
destroyed and undefined, and that check mode touches nothing."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils import _evacuation_backup, _evacuation_base, _evacuation_moves
from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    InvalidInputError,
    LibvirtCallError,
    LibvirtConnectionError,
)
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_manager import ARGUMENT_SPEC, Evacuation
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_recovery import UNDEFINE_STALE

RUNNING, PAUSED, SHUTOFF = 1, 3, 5


class FakeDomain:
    def __init__(self, conn, name, state=RUNNING, persistent=True, autostart=False, job=0):
        self.conn = conn
        self._name = name
        self._state = state
        self.persistent = persistent
        self._autostart = autostart
        self.job = job
        self.calls = []

    def name(self):
        return self._name

    def UUIDString(self):
        return 'uuid-' + self._name

    def info(self):
        return [self._state, 131072, 131072, 1, 0]

    def state(self, flags=0):
        return [self._state, 1]

    def isActive(self):
        return self._state != SHUTOFF

    def isPersistent(self):
        return self.persistent

    def XMLDesc(self, flags=0):
        return ("<domain type='qemu'><name>%s</name><uuid>%s</uuid><memory unit='KiB'>131072</memory>"
                "<devices><disk type='file' device='disk'><source file='/var/lib/libvirt/images/%s.qcow2'/>"
                "<target dev='vda'/></disk></devices><!-- flags %d --></domain>" % (
                    self._name, self.UUIDString(), self._name, flags))

    def autostart(self):
        return self._autostart

    def jobInfo(self):
        return [self.job, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]

    def setAutostart(self, value):
        self.calls.append(('setAutostart', value))
        self._autostart = bool(value)

    def destroy(self):
        self.calls.append(('destroy',))
        self._state = SHUTOFF
        if not self.persistent:
            self.conn.domains.remove(self)

    def undefineFlags(self, flags):
        self.calls.append(('undefineFlags', flags))
        if self.isActive():
            self.persistent = False
        else:
            self.conn.domains.remove(self)


class FakeConn:
    def __init__(self, hostname):
        self.hostname = hostname
        self.domains = []

    def add(self, name, **kwargs):
        dom = FakeDomain(self, name, **kwargs)
        self.domains.append(dom)
        return dom

    def getHostname(self):
        return self.hostname

    def isAlive(self):
        return 1

    def getInfo(self):
        return ['x86_64', 8192, 4, 2000, 1, 1, 4, 1]

    def getFreeMemory(self):
        return 4096 * 1024 * 1024

    def listAllDomains(self, flags=0):
        return list(self.domains)

    def lookupByUUIDString(self, uuid):
        return next(dom for dom in self.domains if dom.UUIDString() == uuid)


@pytest.fixture
def lab(monkeypatch):
    """host-a (this host, reached as qemu:///system), host-b and host-c; a host missing from the dict
    does not answer."""
    hosts = {'host-a': FakeConn('host-a'), 'host-b': FakeConn('host-b'), 'host-c': FakeConn('host-c')}

    class FakeClient:
        on_open = None  # called with the URI at every connection opened (a test may block there)
        made = []

        def __init__(self, uri=None, **kwargs):
            self.uri = uri
            self.open_uris = []
            self.borrowed = {}
            FakeClient.made.append(self)

        @property
        def conn(self):
            name = 'host-a' if self.uri == 'qemu:///system' else self.uri.split('://')[1].split('/')[0]
            if self.uri not in self.open_uris and FakeClient.on_open:
                FakeClient.on_open(self.uri)
            if name not in hosts:
                raise LibvirtConnectionError('Connecting to libvirt at %s failed: no route to host' % self.uri)
            self.open_uris = [self.uri]
            return hosts[name]

        def share(self, uri, conn):
            self.borrowed[uri] = conn

        def close(self):
            return []

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

    monkeypatch.setattr(_evacuation_base, 'LibvirtClient', FakeClient)
    hosts['client_class'] = FakeClient
    # Files of the hosts as read_host_file reads them: {(host, path): bytes, or an exception to raise}.
    files = hosts['files'] = {}

    def read_host_file(conn, path, host):
        content = files.get((conn.hostname, path))
        if isinstance(content, Exception):
            raise content
        return content
    monkeypatch.setattr(_evacuation_base, 'read_host_file', read_host_file)
    return hosts


class FakeModule:
    def __init__(self, params, check_mode):
        self.params = params
        self.check_mode = check_mode
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)


def run(tmp_path, check_mode=False, **params):
    full = dict((key, spec.get('default')) for key, spec in ARGUMENT_SPEC.items())
    full.update(uri='qemu:///system', host='host-a', state_dir=str(tmp_path / 'state'),
                definitions_dir=str(tmp_path / 'definitions'))
    full.update(params)
    evacuation = Evacuation(FakeModule(full, check_mode))
    try:
        return evacuation.run()
    finally:
        evacuation.close()


def backup_dir(tmp_path):
    return tmp_path / 'definitions' / 'host-a'


def test_backup_writes_every_persistent_definition_of_this_host_atomically(lab, tmp_path):
    lab['host-a'].add('web1')
    lab['host-a'].add('db1', state=SHUTOFF)
    lab['host-a'].add('scratch', persistent=False)
    lab['host-b'].add('elsewhere')
    result = run(tmp_path, action='backup')
    assert result['changed'] is True
    assert result['definitions']['written'] == ['db1', 'web1'] and result['definitions']['removed'] == []
    assert sorted(os.listdir(backup_dir(tmp_path))) == ['db1.xml', 'web1.xml']  # no temporary file left
    text = (backup_dir(tmp_path) / 'web1.xml').read_text()
    assert '<uuid>uuid-web1</uuid>' in text and '<!-- flags 3 -->' in text  # VIR_DOMAIN_XML_SECURE | INACTIVE
    assert stat.S_IMODE(os.stat(backup_dir(tmp_path) / 'web1.xml').st_mode) == 0o600  # definitions may hold secrets
    assert 'backup of host-a' in result['msg'] and '2 written' in result['msg']
    assert not os.path.exists(tmp_path / 'state' / 'operation.lock'), 'a backup never takes the lock'

    again = run(tmp_path, action='backup')
    assert again['changed'] is False and again['definitions']['unchanged'] == ['db1', 'web1']


def test_backup_removes_the_backup_of_a_guest_that_left_and_check_mode_writes_nothing(lab, tmp_path):
    lab['host-a'].add('web1')
    moved = lab['host-a'].add('moved')
    run(tmp_path, action='backup')
    lab['host-a'].domains.remove(moved)
    lab['host-b'].domains.append(moved)
    before = sorted(os.listdir(backup_dir(tmp_path)))
    planned = run(tmp_path, check_mode=True, action='backup')
    assert planned['changed'] is True and planned['definitions']['removed'] == ['moved']
    assert sorted(os.listdir(backup_dir(tmp_path))) == before == ['moved.xml', 'web1.xml']
    assert any('would remove the backup of moved' in line for line in planned['report'])
    done = run(tmp_path, action='backup')
    assert done['changed'] is True and done['definitions']['removed'] == ['moved']
    assert sorted(os.listdir(backup_dir(tmp_path))) == ['web1.xml']


def test_backup_in_check_mode_on_a_new_host_creates_nothing(lab, tmp_path):
    lab['host-a'].add('web1')
    result = run(tmp_path, check_mode=True, action='backup')
    assert result['changed'] is True and result['definitions']['written'] == ['web1']
    assert not os.path.exists(tmp_path / 'definitions') and not os.path.exists(tmp_path / 'state')


def test_backup_that_cannot_write_is_an_error_naming_the_directory(lab, tmp_path):
    lab['host-a'].add('web1')
    (tmp_path / 'definitions').write_text('not a directory')
    with pytest.raises(_evacuation_backup.BackupError) as err:
        run(tmp_path, action='backup')
    assert str(tmp_path / 'definitions') in err.value.msg and 'shared storage' in err.value.remedy


def test_rejoin_removes_stale_copies_of_guests_running_elsewhere_only(lab, tmp_path):
    recovered = lab['host-a'].add('recovered', state=SHUTOFF, autostart=True)
    twice = lab['host-a'].add('twice')
    alone = lab['host-a'].add('alone')
    incoming = lab['host-a'].add('incoming')
    lab['host-b'].add('recovered')
    lab['host-c'].add('twice')
    lab['host-c'].add('incoming', state=PAUSED)
    result = run(tmp_path, action='rejoin', dead_host='host-a', hosts=['host-a', 'host-b', 'host-c'])
    assert recovered.calls == [('setAutostart', 0), ('undefineFlags', UNDEFINE_STALE)]
    assert twice.calls == [('destroy',), ('undefineFlags', UNDEFINE_STALE)]
    assert alone.calls == [] and incoming.calls == []
    assert [dom.name() for dom in lab['host-a'].domains] == ['alone', 'incoming']
    rows = dict((row['guest'], row) for row in result['table'])
    assert (rows['recovered']['result'], rows['recovered']['to']) == ('removed', 'host-b')
    assert rows['twice']['reason'] == 'runs on host-c; here: destroy, undefine'
    assert rows['alone']['result'] == 'skipped' and rows['incoming']['result'] == 'stayed'
    assert result['changed'] is True and result['summary']['stayed'] == ['incoming']
    assert result['msg'].startswith('rejoin of host-a: 2 stale copies removed')
    # Again: the stale copies are gone, nothing changes.
    again = run(tmp_path, action='rejoin', hosts=['host-a', 'host-b', 'host-c'])
    assert again['changed'] is False and sorted(row['result'] for row in again['table']) == ['skipped', 'stayed']


def test_rejoin_in_check_mode_reports_and_touches_nothing(lab, tmp_path):
    stale = lab['host-a'].add('recovered', autostart=True)
    lab['host-b'].add('recovered')
    result = run(tmp_path, check_mode=True, action='rejoin', hosts=['host-b', 'host-c'])
    assert stale.calls == [] and result['changed'] is True
    assert result['table'][0]['result'] == 'planned'
    assert result['table'][0]['reason'] == 'runs on host-b; here it would: disable autostart, destroy, undefine'
    assert not os.path.exists(tmp_path / 'state')


def test_rejoin_with_an_unreachable_host_cleans_what_it_can_prove_and_says_what_it_could_not_see(lab, tmp_path):
    stale = lab['host-a'].add('on-b', state=SHUTOFF)
    unknown = lab['host-a'].add('maybe-on-d', state=SHUTOFF)
    lab['host-b'].add('on-b')
    result = run(tmp_path, action='rejoin', hosts=['host-b', 'host-d'])
    assert stale.calls and not unknown.calls
    assert any('host-d left out' in note for note in result['plan']['notes'])


def test_rejoin_refuses_to_run_on_another_host_than_the_dead_one(lab, tmp_path):
    lab['host-a'].add('web1')
    with pytest.raises(InvalidInputError) as err:
        run(tmp_path, action='rejoin', dead_host='host-b', hosts=['host-b'])
    assert 'dead_host=host-b' in err.value.msg and 'Run it on host-b' in err.value.remedy
    assert lab['host-a'].domains[0].calls == []


def test_rejoin_reports_a_failed_step_with_what_was_done(lab, tmp_path):
    stale = lab['host-a'].add('recovered', autostart=True)
    lab['host-b'].add('recovered')

    def refuse():
        raise RuntimeError('Requested operation is not valid: domain is not running')
    stale.destroy = refuse
    result = run(tmp_path, action='rejoin', hosts=['host-b'])
    row = result['table'][0]
    assert row['result'] == 'failed' and result['changed'] is True
    assert row['reason'].startswith('destroy here failed (done: disable autostart): Requested operation')
    assert result['summary']['stayed'] == ['recovered']


def test_run_preflights_checks_every_destination_at_once_and_an_unreachable_one_takes_no_guest(lab, tmp_path,
                                                                                               monkeypatch):
    from ansible_collections.kvmops.migration.plugins.module_utils._evacuation import preflight_verdicts
    from ansible_collections.kvmops.migration.plugins.module_utils._progress import ProgressLog

    both_running = threading.Barrier(2, timeout=10)  # a serial loop would never get both here at once
    seen_params = []

    class FakePreflight:
        def __init__(self, client, params):
            self.params = params
            seen_params.append(params)

        def run(self):
            both_running.wait()
            if self.params['dest'] == 'host-c':
                raise LibvirtConnectionError('Connecting to libvirt at qemu+ssh://host-c/system failed',
                                             remedy='Check that libvirtd runs on host-c.')
            checks = [{'name': 'cpu', 'guest': 'web1', 'status': 'fail', 'detail': 'missing avx512f'},
                      {'name': 'memory', 'status': 'ok', 'detail': 'enough'}]
            return {'checks': checks, 'summary': {'verdict': 'fail', 'ok': 1, 'warn': 0, 'fail': 1,
                                                  'failed_checks': ['cpu(web1)']}}

    monkeypatch.setattr(_evacuation_moves, 'PreflightRunner', FakePreflight)
    full = dict((key, spec.get('default')) for key, spec in ARGUMENT_SPEC.items())
    full.update(uri='qemu:///system', host='host-a', guests=['web1'], transport='tls')
    evacuation = Evacuation(FakeModule(full, False))
    evacuation.me, evacuation.log = 'host-a', ProgressLog(None)
    results = evacuation.run_preflights(['host-b', 'host-c'])

    assert [r['item'] for r in results] == ['host-b', 'host-c']
    assert all(p['fail_on'] == 'never' and p['transport'] == 'tls' and p['guests'] == ['web1'] for p in seen_params)
    assert seen_params[0]['memory_margin_mib'] == 256  # the preflight's own defaults, not the evacuation's
    verdicts = preflight_verdicts(results)
    assert verdicts['host-b'] == {'host_fail': [], 'guests': {'web1': ['cpu: missing avx512f']}}
    assert 'failed' in verdicts['host-c']['host_fail'][0] and 'libvirtd runs on host-c' in verdicts['host-c']['host_fail'][0]
    lines = evacuation.log.lines
    assert any('preflight host-a -> host-b: fail (1 ok, 0 warn, 1 fail: cpu(web1))' in line for line in lines)
    assert any('preflight host-a -> host-c did not run' in line for line in lines)


def test_hosts_are_connected_at_once_and_the_preflights_borrow_those_connections(lab, tmp_path, monkeypatch):
    """Each remote connection is an SSH handshake: the evacuation opens them all at once, then lends
    them to the preflights (and the migrations) instead of each opening its own."""
    from ansible_collections.kvmops.migration.plugins.module_utils._progress import ProgressLog

    fake_client = lab.pop('client_class')
    lab.pop('files')
    del lab['host-c']  # does not answer
    opening = threading.Barrier(3, timeout=10)  # a serial loop would never get all three here at once
    fake_client.on_open = lambda uri: opening.wait()
    lent = []

    class FakePreflight:
        def __init__(self, client, params):
            lent.append((params['dest'], dict(client.borrowed)))

        def run(self):
            return {'checks': [], 'summary': {'verdict': 'pass', 'ok': 0, 'warn': 0, 'fail': 0, 'failed_checks': []}}

    monkeypatch.setattr(_evacuation_moves, 'PreflightRunner', FakePreflight)
    full = dict((key, spec.get('default')) for key, spec in ARGUMENT_SPEC.items())
    full.update(uri='qemu:///system', host='host-a', guests=['web1'])
    evacuation = Evacuation(FakeModule(full, False))
    evacuation.me, evacuation.log = 'host-a', ProgressLog(None)
    evacuation.clients['host-a'] = fake_client(uri='qemu:///system')
    hosts, dummy_guests, notes = evacuation.gather(['host-a', 'host-b', 'host-c'])
    fake_client.on_open = None

    assert [h.name for h in hosts] == ['host-a', 'host-b']
    assert len(notes) == 1 and notes[0].startswith('host host-c left out: Connecting to libvirt')
    assert evacuation.shared_connections() == {'qemu+ssh://host-b/system': lab['host-b']}
    evacuation.run_preflights(['host-b', 'host-c'])
    assert sorted(lent, key=lambda item: item[0]) == [('host-b', {'qemu+ssh://host-b/system': lab['host-b']}),
                                                      ('host-c', {})]


def mark_path(tmp_path):
    return str(tmp_path / 'state' / 'maintenance.json')


def plan_of(result):
    return dict((row['guest'], row['to']) for row in result['table'] if row['result'] == 'planned')


def test_a_host_whose_mark_says_maintenance_gets_no_guest_and_the_marks_are_read_at_once(lab, tmp_path):
    """The candidates' marks are read inside the module, over its connections, all hosts at once."""
    for name in ('web1', 'web2'):
        lab['host-a'].add(name)
    reading = threading.Barrier(2, timeout=10)  # host-b and host-c: one after the other never gets here
    lab['files'][('host-b', mark_path(tmp_path))] = json.dumps({'host': 'host-b', 'maintenance': True}).encode()

    def read_at_once(conn, path, host):
        reading.wait()
        return lab['files'].get((conn.hostname, path))
    _evacuation_base.read_host_file, real = read_at_once, _evacuation_base.read_host_file
    try:
        result = run(tmp_path, check_mode=True, action='evacuate', hosts=['host-b', 'host-c'])
    finally:
        _evacuation_base.read_host_file = real
    assert plan_of(result) == {'web1': 'host-c', 'web2': 'host-c'}
    assert 'host-b is in maintenance: no guest goes there' in ' '.join(result['progress'])
    assert 'host host-b is in maintenance (its mark): no guest goes there' in result['plan']['notes']


def test_a_mark_that_cannot_be_read_counts_as_set_and_says_so(lab, tmp_path, monkeypatch):
    monkeypatch.setattr(_evacuation_base, 'MARK_READ_RETRY_S', 0)
    lab['host-a'].add('web1')
    lab['files'][('host-c', mark_path(tmp_path))] = LibvirtCallError('Reading it failed: busy')
    result = run(tmp_path, check_mode=True, action='evacuate', hosts=['host-b', 'host-c'])
    assert plan_of(result) == {'web1': 'host-b'}
    assert any(note.startswith('host host-c: its maintenance mark could not be read (Reading it failed: busy)')
               for note in result['plan']['notes'])


def test_marks_given_and_marks_read_add_up_and_reading_can_be_turned_off(lab, tmp_path):
    lab['host-a'].add('web1')
    lab['files'][('host-b', mark_path(tmp_path))] = b'{"host": "host-b", "maintenance": true}'
    given = run(tmp_path, check_mode=True, action='evacuate', hosts=['host-b', 'host-c'], maintenance_hosts=['host-c'])
    assert plan_of(given) == {} and given['summary']['stayed'] == ['web1']
    unread = run(tmp_path, check_mode=True, action='evacuate', hosts=['host-b', 'host-c'], read_maintenance_marks=False,
                 maintenance_hosts=['host-c'])
    assert plan_of(unread) == {'web1': 'host-b'}


def test_rebalance_leaves_a_marked_host_out(lab, tmp_path):
    """host-a is crowded, host-b in maintenance (by its mark), host-c empty: guests go to host-c only."""
    for index in range(4):
        lab['host-a'].add('vm%d' % index)
    lab['files'][('host-b', mark_path(tmp_path))] = b'{"host": "host-b", "maintenance": true}'
    result = run(tmp_path, check_mode=True, action='rebalance', hosts=['host-a', 'host-b', 'host-c'], threshold=0.01)
    assert plan_of(result) and set(plan_of(result).values()) == {'host-c'}
