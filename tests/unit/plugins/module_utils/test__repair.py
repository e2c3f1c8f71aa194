# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Applying repairs and cold-migration rollbacks: order, stop at the first failure, what is left."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils import _cold
from ansible_collections.kvmops.migration.plugins.module_utils._errors import MigrationError
from ansible_collections.kvmops.migration.plugins.module_utils._cold import ColdMigration, finish_interrupted, journal_path
from ansible_collections.kvmops.migration.plugins.module_utils._location import Attempt
from ansible_collections.kvmops.migration.plugins.module_utils._migration import Sides, read_view, verify_and_repair
from ansible_collections.kvmops.migration.plugins.module_utils._migration_flags import MigrationSpec
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_DOMAIN_PAUSED as PAUSED,
    VIR_DOMAIN_RUNNING as RUNNING,
    VIR_DOMAIN_SHUTOFF as SHUTOFF,
)

from fake_hosts import FakeHost, FakeLibvirtError

UUID = '11111111-2222-3333-4444-555555555555'


def pair():
    calls = []
    a, b = FakeHost('host-a', calls), FakeHost('host-b', calls)
    a.peers['qemu+ssh://host-b/system'] = b
    return a, b, calls, Sides('host-a', 'host-b', a, b)


def changes(calls):
    return [(host, what) for host, what, _arg in calls if not what.startswith('XMLDesc')]


def test_the_destination_is_defined_from_the_source_definition_before_the_source_is_undefined():
    a, b, calls, sides = pair()
    src = a.define(UUID, 'g1', state=SHUTOFF, reason=5)
    src.inactive_xml = "<domain><name>g1</name><uuid>%s</uuid><graphics passwd='s3cret'/></domain>" % UUID
    b.define(UUID, 'g1', persistent=False)
    outcome = verify_and_repair(sides, UUID, Attempt())
    assert changes(calls) == [('host-b', 'defineXML'), ('host-a', 'undefine')]
    defined_with = [arg for host, what, arg in calls if what == 'defineXML'][0]
    assert "passwd='s3cret'" in defined_with, 'the secure, inactive source definition is the one defined'
    assert ('host-a', 'XMLDesc(3)', 'g1') in calls  # VIR_DOMAIN_XML_SECURE | VIR_DOMAIN_XML_INACTIVE
    assert outcome.location.verdict == 'destination' and outcome.location.defined_on == ['host-b']
    assert [r['done'] for r in outcome.repairs] == [True, True]


def test_a_failed_define_stops_the_repair_and_keeps_the_source_definition():
    a, b, calls, sides = pair()
    a.define(UUID, 'g1', state=SHUTOFF, reason=5)
    b.define(UUID, 'g1', persistent=False)
    b.fail['defineXML'] = FakeLibvirtError('XML error: refused', 27)
    outcome = verify_and_repair(sides, UUID, Attempt())
    assert changes(calls) == [('host-b', 'defineXML')]
    assert [(r['action'], r['done']) for r in outcome.repairs] == [('define_persistent', False), ('undefine', None)]
    assert 'not attempted' in outcome.repairs[1]['error']
    assert outcome.location.defined_on == ['host-a'], 'a persistent definition is kept somewhere'


def test_nothing_is_repaired_while_a_migration_job_is_active():
    a, b, calls, sides = pair()
    a.define(UUID, 'g1').job = 'outgoing'
    b.define(UUID, 'g1', persistent=False, state=PAUSED, reason=2).job = 'incoming'
    assert read_view(b, UUID, 'host-b').job == 'incoming migration'
    outcome = verify_and_repair(sides, UUID, Attempt(), settle_timeout_s=0)
    assert outcome.location.verdict == 'busy' and outcome.repairs == [] and changes(calls) == []


def test_a_paused_incoming_copy_is_destroyed_and_the_source_resumed_after_a_failed_precopy():
    a, b, calls, sides = pair()
    a.define(UUID, 'g1', state=PAUSED, reason=2)
    b.define(UUID, 'g1', persistent=False, state=PAUSED, reason=2)
    outcome = verify_and_repair(sides, UUID, Attempt(dest_defined_before=False))
    assert changes(calls) == [('host-b', 'destroy'), ('host-a', 'resume')]
    assert outcome.location.verdict == 'source' and outcome.location.running_on == ['host-a']


def test_the_source_is_not_resumed_after_postcopy_started():
    a, b, calls, sides = pair()
    a.define(UUID, 'g1', state=PAUSED, reason=2)
    outcome = verify_and_repair(sides, UUID, Attempt(postcopy_started=True))
    assert outcome.location.verdict == 'postcopy_lost' and changes(calls) == []


# --- cold migration ---------------------------------------------------------------------------

def offline_spec():
    return MigrationSpec(flags=1 << 10, params={}, notes=[])


def options(tmp_path, **changes):
    values = dict(mode='cold', shutdown_timeout=5, force_shutdown=False, undefine_source=True, persistent=True,
                  remove_source_storage=False, state_dir=str(tmp_path))
    values.update(changes)
    return values


LOCAL_DISK = {'target': 'vda', 'path': '/var/lib/libvirt/local/g1.qcow2', 'format': 'qcow2', 'readonly': False,
              'device': 'disk', 'action': 'copy (cold)'}


def test_cold_migration_removes_the_source_only_once_the_guest_runs_on_the_destination(tmp_path):
    a, b, calls, sides = pair()
    dom = a.define(UUID, 'g1')
    done = ColdMigration(sides, dom, 'qemu+ssh://host-b/system', [], offline_spec(), options(tmp_path), False).run()
    assert changes(calls) == [('host-a', 'shutdown'), ('host-a', 'migrateToURI3'), ('host-b', 'create'),
                              ('host-a', 'undefine')]
    assert done['moved'] and done['location']['verdict'] == 'destination'
    assert done['location']['defined_on'] == ['host-b'] and done['location']['running_on'] == ['host-b']
    assert not (tmp_path / 'migrations').exists() or not list((tmp_path / 'migrations').iterdir())


def test_a_guest_that_does_not_start_on_the_destination_runs_again_on_the_source(tmp_path):
    a, b, calls, sides = pair()
    dom = a.define(UUID, 'g1')
    original = b.define

    def define_failing_to_start(*args, **kwargs):
        new = original(*args, **kwargs)
        new.fail['create'] = FakeLibvirtError('internal error: qemu unexpectedly closed the monitor', 1)
        return new
    b.define = define_failing_to_start
    with pytest.raises(MigrationError) as err:
        ColdMigration(sides, dom, 'qemu+ssh://host-b/system', [], offline_spec(), options(tmp_path), False).run()
    assert changes(calls) == [('host-a', 'shutdown'), ('host-a', 'migrateToURI3'), ('host-b', 'create'),
                              ('host-b', 'undefine'), ('host-a', 'create')]
    msg = err.value.msg
    assert 'failed at "start on host-b"' in msg and 'undefine on host-b' in msg
    assert 'The guest now runs on host-a' in msg
    location = err.value.details['location']
    assert location['running_on'] == ['host-a'] and location['defined_on'] == ['host-a']
    assert not b.domains


def test_a_failed_copy_deletes_the_partial_copy_and_restarts_the_guest(tmp_path, monkeypatch):
    a, b, calls, sides = pair()
    dom = a.define(UUID, 'g1')
    deleted = []
    monkeypatch.setattr(_cold, 'volume_exists', lambda conn, path: False)
    monkeypatch.setattr(_cold, '_delete_if_there', lambda conn, path: deleted.append((conn.name, path)))

    def copy_fails(*args):
        raise FakeLibvirtError('No space left on device', 38)
    monkeypatch.setattr(_cold, 'copy_volume', copy_fails)
    with pytest.raises(MigrationError) as err:
        ColdMigration(sides, dom, 'qemu+ssh://host-b/system', [LOCAL_DISK], offline_spec(), options(tmp_path),
                      False).run()
    assert 'No space left on device' in err.value.msg
    assert deleted == [('host-b', LOCAL_DISK['path'])]
    assert changes(calls) == [('host-a', 'shutdown'), ('host-a', 'create')]
    assert err.value.details['location']['running_on'] == ['host-a']


def test_a_volume_that_was_on_the_destination_before_is_never_deleted(tmp_path, monkeypatch):
    a, b, calls, sides = pair()
    dom = a.define(UUID, 'g1')
    deleted = []
    monkeypatch.setattr(_cold, 'volume_exists', lambda conn, path: True)
    monkeypatch.setattr(_cold, '_delete_if_there', lambda conn, path: deleted.append(path))
    with pytest.raises(MigrationError) as err:
        ColdMigration(sides, dom, 'qemu+ssh://host-b/system', [LOCAL_DISK], offline_spec(), options(tmp_path),
                      False).run()
    assert 'already exists on host-b' in err.value.msg and deleted == []
    assert err.value.details['location']['running_on'] == ['host-a']


def test_a_rollback_that_cannot_reach_the_destination_is_finished_by_the_next_run(tmp_path):
    a, b, calls, sides = pair()
    dom = a.define(UUID, 'g1')
    original = b.define

    def define_failing_to_start(*args, **kwargs):
        new = original(*args, **kwargs)
        new.fail['create'] = FakeLibvirtError('cannot start', 1)
        new.fail['undefine'] = FakeLibvirtError('Cannot recv data: Connection reset by peer', 38)
        return new
    b.define = define_failing_to_start
    with pytest.raises(MigrationError) as err:
        ColdMigration(sides, dom, 'qemu+ssh://host-b/system', [], offline_spec(), options(tmp_path), False).run()
    assert 'NOT undone: undefine on host-b' in err.value.msg
    assert 'finishes the rollback first' in err.value.remedy
    assert (tmp_path / 'migrations' / ('%s.cold.json' % UUID)).exists()
    assert a.domains[UUID].isActive(), 'the guest runs again on the source meanwhile'
    del b.domains[UUID].fail['undefine']
    undone = finish_interrupted(sides, UUID, str(tmp_path))
    assert [(u['step'], u['done']) for u in undone] == [('undefine on host-b', True)]
    assert not b.domains and not (tmp_path / 'migrations' / ('%s.cold.json' % UUID)).exists()
    assert journal_path(str(tmp_path), UUID).endswith('.cold.json')


def test_no_journal_means_nothing_to_finish(tmp_path):
    dummy_a, dummy_b, dummy_calls, sides = pair()
    assert finish_interrupted(sides, UUID, str(tmp_path)) is None
    assert RUNNING == 1
