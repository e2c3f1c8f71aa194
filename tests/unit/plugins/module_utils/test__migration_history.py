# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._errors import KvmopsError
from ansible_collections.kvmops.migration.plugins.module_utils._migration_history import (
    HISTORY_KEEP,
    HISTORY_NS,
    HISTORY_PREFIX,
    VIR_ERR_NO_DOMAIN_METADATA,
    HistoryEntry,
    history_from_domain_xml,
    history_from_xml,
    history_to_xml,
    read_history,
    record_migration,
    with_entry,
)

MIB = 1 << 20
FULL = HistoryEntry(at='2026-12-05T10:00:00Z', strategy='postcopy', completed=True, dirty_rate_bps=20 * MIB,
                    throughput_bps=10 * MIB, passes=1, downtime_ms=45.0, duration_s=18.2, dirty_set_bytes=80 * MIB,
                    zero_page_share=0.55, throttle_percent=0, resident_bytes=150 * MIB)
SPARSE = HistoryEntry(at='2026-12-04T09:00:00Z', strategy='precopy_steps', completed=False)


def as_libvirt_returns(text):
    """What dom.metadata() gives back: the root element put in our namespace, under our prefix."""
    root = ET.fromstring(text)
    root.tag = '{%s}%s' % (HISTORY_NS, root.tag)
    ET.register_namespace(HISTORY_PREFIX, HISTORY_NS)
    returned = ET.tostring(root, encoding='unicode')
    assert returned.startswith('<%s:history xmlns:%s="%s"' % (HISTORY_PREFIX, HISTORY_PREFIX, HISTORY_NS))
    return returned


class TestXml:
    def test_round_trip_newest_first(self):
        text = history_to_xml((FULL, SPARSE))
        assert history_from_xml(as_libvirt_returns(text)) == (FULL, SPARSE)
        # Unmeasured figures are left out, not written as "None".
        assert 'None' not in text and 'dirty_rate_bps="20971520"' in text and 'completed="no"' in text

    def test_written_without_namespace_for_setmetadata(self):
        root = ET.fromstring(history_to_xml((FULL,)))
        assert root.tag == 'history' and [child.tag for child in root] == ['migration']

    def test_keeps_the_newest(self):
        entries = ()
        for day in range(1, 12):
            entries = with_entry(entries, HistoryEntry(at='2026-12-%02dT00:00:00Z' % day, strategy='precopy'))
        assert len(entries) == HISTORY_KEEP
        assert entries[0].at.startswith('2026-12-11') and entries[-1].at.startswith('2026-12-04')
        assert len(history_from_xml(history_to_xml(entries + entries, keep=3))) == 3
        with pytest.raises(ValueError, match='keep must be at least 1'):
            with_entry((), FULL, keep=0)

    @pytest.mark.parametrize('text', ['', None, 'not xml <', '<other/>', '<history><migration/></history>'])
    def test_unreadable_is_empty(self, text):
        assert history_from_xml(text) == ()

    def test_bad_figures_are_dropped_not_fatal(self):
        text = ('<history><migration at="x" strategy="precopy" passes="three" downtime_ms="-5" duration_s="nan" '
                'zero_page_share="1.5" throughput_bps="1e7" completed="no"/><migration strategy="lost"/></history>')
        (entry,) = history_from_xml(text)
        assert (entry.passes, entry.downtime_ms, entry.duration_s, entry.zero_page_share) == (None, None, None, None)
        assert (entry.throughput_bps, entry.completed) == (1e7, False)

    def test_from_a_whole_domain_definition(self):
        domain = ('<domain type="kvm"><name>web01</name><metadata>'
                  '<kvmops:migration xmlns:kvmops="https://kvmops.io/migration"><anti_affinity>db</anti_affinity>'
                  '</kvmops:migration>%s</metadata></domain>' % as_libvirt_returns(history_to_xml((FULL,))))
        assert history_from_domain_xml(domain) == (FULL,)
        assert history_from_domain_xml('<domain><metadata/></domain>') == ()
        assert history_from_domain_xml('<domain') == ()


class FakeDomain:
    def __init__(self, error_class, metadata=None, active=True, persistent=True, read_error=None):
        self.error_class, self.stored = error_class, metadata
        self.active, self.persistent, self.read_error = active, persistent, read_error
        self.calls = []

    def name(self):
        return 'web01'

    def isActive(self):  # noqa: N802 - libvirt's spelling
        return self.active

    def isPersistent(self):  # noqa: N802
        return self.persistent

    def metadata(self, kind, uri, flags):
        self.calls.append(('metadata', kind, uri, flags))
        if self.read_error:
            raise self.read_error
        if self.stored is None:
            raise self.error_class('metadata not found: Requested metadata element is not present',
                                   VIR_ERR_NO_DOMAIN_METADATA)
        return self.stored

    def setMetadata(self, kind, text, key, uri, flags):  # noqa: N802
        self.calls.append(('setMetadata', kind, key, uri, flags))
        self.stored = as_libvirt_returns(text)
        return 0


class TestClient:
    def test_no_history_yet(self, libvirt_error):
        dom = FakeDomain(libvirt_error)
        assert read_history(dom) == ()
        assert dom.calls == [('metadata', 2, HISTORY_NS, 0)]

    def test_record_appends_and_writes_live_and_config(self, libvirt_error):
        dom = FakeDomain(libvirt_error)
        assert record_migration(dom, SPARSE) == (SPARSE,)
        assert record_migration(dom, FULL) == (FULL, SPARSE)
        assert read_history(dom) == (FULL, SPARSE)
        writes = [call for call in dom.calls if call[0] == 'setMetadata']
        assert writes[-1] == ('setMetadata', 2, HISTORY_PREFIX, HISTORY_NS, 3)

    @pytest.mark.parametrize('active, persistent, flags', [(False, True, 2), (True, False, 1)])
    def test_writes_the_definitions_that_exist(self, libvirt_error, active, persistent, flags):
        dom = FakeDomain(libvirt_error, active=active, persistent=persistent)
        record_migration(dom, FULL)
        assert dom.calls[-1][-1] == flags

    def test_other_errors_are_typed(self, libvirt_error):
        dom = FakeDomain(libvirt_error, read_error=libvirt_error('cannot read', 1))
        with pytest.raises(KvmopsError, match="Reading the migration history of domain 'web01' failed: cannot read"):
            read_history(dom)

    def test_not_a_libvirt_error_propagates(self, libvirt_error):
        with pytest.raises(RuntimeError):
            read_history(FakeDomain(libvirt_error, read_error=RuntimeError('bug')))
