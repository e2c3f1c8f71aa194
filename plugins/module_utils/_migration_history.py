# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A guest's migration history, kept in its own domain metadata (private module_utils; API may change).

Each migration records what it achieved (dirty rate, throughput, passes, downtime, duration,
strategy, time) with the guest, so the figures travel with the guest from host to host and the
next prediction (``_prediction``) can use them when no fresh dirty-rate measurement exists, or
temper one.

Where: one element in the domain XML's ``<metadata>``, in the namespace :data:`HISTORY_NS`
(``https://kvmops.io/migration/history/1``; the ``/1`` is the format version: a later format gets a
new URI, so an old reader never misreads it). It is separate from the operator-written
``https://kvmops.io/migration`` element (anti-affinity groups, ``_evacuation.metadata_of``):
libvirt replaces a namespace's element as a whole, and our writes must never touch the
operator's. What ``virsh dumpxml`` shows::

    <metadata>
      <kvmopshist:history xmlns:kvmopshist="https://kvmops.io/migration/history/1">
        <migration at="2026-12-05T10:00:00Z" strategy="postcopy" completed="yes" dirty_rate_bps="20971520"
                   throughput_bps="10485760" passes="1" downtime_ms="45" duration_s="18.2"
                   dirty_set_bytes="83886080" zero_page_share="0.55" throttle_percent="0"
                   bandwidth_cap_bps="10485760" resident_bytes="150994944"/>
        ...newest first, at most HISTORY_KEEP entries
      </kvmopshist:history>
    </metadata>

Attributes that were not measured are left out.  Parsing is tolerant: an entry that is not
understood is skipped, never an error, because the metadata is editable by anyone with
``virsh metadata`` and a bad entry must not stop a migration.

The pure half (entries, XML in and out) needs no libvirt; :func:`read_history` and
:func:`record_migration` are the client half, on a ``virDomain``.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, fields

from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    is_libvirt_error,
    translate_libvirt_error,
    translated,
)
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_DOMAIN_AFFECT_CONFIG,
    VIR_DOMAIN_AFFECT_CURRENT,
    VIR_DOMAIN_AFFECT_LIVE,
    VIR_DOMAIN_METADATA_ELEMENT,
    VIR_ERR_NO_DOMAIN_METADATA,
)

HISTORY_NS = 'https://kvmops.io/migration/history/1'
HISTORY_PREFIX = 'kvmopshist'
HISTORY_ELEMENT = 'history'
ENTRY_ELEMENT = 'migration'
HISTORY_KEEP = 8

_TRUE = ('yes', 'true', '1')


@dataclass(frozen=True)
class HistoryEntry:
    """What one migration of the guest achieved.  Rates are bytes/s, sizes bytes; None = not measured.

    at
        When it ended, ISO 8601 UTC (``2026-12-05T10:00:00Z``).
    strategy
        What ran: ``precopy``, ``precopy_steps``, ``auto_converge``, ``postcopy``, ``paused``, ``cold``.
    completed
        False for an aborted or failed attempt (its figures still describe the guest's load).
    dirty_rate_bps
        The largest dirty rate the job reported (``memory_dirty_rate`` x page size): QEMU's first
        figure of a job can be low, the largest is the guest's real pace.
    throughput_bps
        Memory moved / time spent moving it: what the path really gave this guest.
    passes, downtime_ms, duration_s, throttle_percent
        Completed memory passes, the final pause, the job's wall time, the highest vCPU throttle.
    dirty_set_bytes
        The largest dirty set a pass after the first started with (the engine's ``max`` of pass
        starts): a lower bound of the guest's writable working set.
    zero_page_share
        Share of the memory QEMU found zero in the first pass (``memory_constant`` pages x page
        size / ``memory_total``).
    bandwidth_cap_bps
        The pre-copy bandwidth cap the migration ran under (None: uncapped).  A capped
        migration's throughput measures the cap, not the path, so predictions do not take it
        for the path's bandwidth (``_prediction_inputs.resolve_bandwidth``).
    resident_bytes
        The QEMU process's resident memory where the guest ran just after the job (libvirt's
        ``rss``).  Pages the guest touches later become resident and may no longer be zero, so the
        next prediction lowers ``zero_page_share`` by what the resident memory grew since
        (``_strategy.guest_load``): a share counted soon after boot is not taken for a guest
        that filled its memory since.
    """

    at: str
    strategy: str
    completed: bool = True
    dirty_rate_bps: float | None = None
    throughput_bps: float | None = None
    passes: int | None = None
    downtime_ms: float | None = None
    duration_s: float | None = None
    dirty_set_bytes: int | None = None
    zero_page_share: float | None = None
    throttle_percent: int | None = None
    bandwidth_cap_bps: float | None = None
    resident_bytes: int | None = None

    def as_dict(self) -> dict:
        """A JSON-friendly view for module results."""
        return dict((field.name, getattr(self, field.name)) for field in fields(self))


_INT_FIELDS = ('passes', 'dirty_set_bytes', 'throttle_percent', 'resident_bytes')
_FLOAT_FIELDS = ('dirty_rate_bps', 'throughput_bps', 'downtime_ms', 'duration_s', 'zero_page_share',
                 'bandwidth_cap_bps')


def _number(text, integer):
    """A finite number >= 0 from an attribute, or None (absent or not understood)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return int(value) if integer else value


def _entry_from_element(node):
    at, strategy = node.get('at'), node.get('strategy')
    if not at or not strategy:
        return None
    values = dict(at=at, strategy=strategy, completed=(node.get('completed') or 'yes').lower() in _TRUE)
    for name in _INT_FIELDS + _FLOAT_FIELDS:
        values[name] = _number(node.get(name), name in _INT_FIELDS)
    share = values['zero_page_share']
    if share is not None and share > 1:
        values['zero_page_share'] = None
    return HistoryEntry(**values)


def _local_name(tag):
    return tag.rsplit('}', 1)[-1]


def history_from_xml(text) -> tuple:
    """Entries (newest first) from the metadata element ``dom.metadata()`` returns; () if unreadable."""
    if not text:
        return ()
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return ()
    if _local_name(root.tag) != HISTORY_ELEMENT:
        return ()
    # libvirt puts the root element in HISTORY_NS; its children may or may not carry the
    # namespace depending on who wrote them, so match by local name.
    entries = (_entry_from_element(node) for node in root if _local_name(node.tag) == ENTRY_ELEMENT)
    return tuple(entry for entry in entries if entry is not None)


def history_from_domain_xml(domain_xml) -> tuple:
    """Entries (newest first) from a whole domain XML (e.g. a definition the preflight read)."""
    try:
        root = ET.fromstring(domain_xml)
    except (ET.ParseError, TypeError):
        return ()
    node = root.find('./metadata/{%s}%s' % (HISTORY_NS, HISTORY_ELEMENT))
    return () if node is None else history_from_xml(ET.tostring(node, encoding='unicode'))


def _format(value):
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, float):
        return ('%.6g' % value) if abs(value) < 1e6 else str(int(round(value)))
    return str(value)


def history_to_xml(entries, keep=HISTORY_KEEP) -> str:
    """The metadata element for ``dom.setMetadata()``: the first ``keep`` entries (newest first).

    Written without a namespace: libvirt puts the element into the URI given to setMetadata.
    """
    root = ET.Element(HISTORY_ELEMENT)
    for entry in list(entries)[:keep]:
        node = ET.SubElement(root, ENTRY_ELEMENT)
        for name, value in entry.as_dict().items():
            if value is not None:
                node.set(name, _format(value))
    return ET.tostring(root, encoding='unicode')


def with_entry(entries, entry, keep=HISTORY_KEEP) -> tuple:
    """``entries`` with ``entry`` added as the newest, the oldest dropped beyond ``keep``."""
    if keep < 1:
        raise ValueError('keep must be at least 1, got %r' % (keep,))
    return (entry,) + tuple(entries)[:keep - 1]


# ---------------------------------------------------------------------------
# Client half: the domain's metadata through libvirt
# ---------------------------------------------------------------------------

def _error_code(exc):
    try:
        return exc.get_error_code()
    except Exception:  # pylint: disable=broad-except
        return None


def read_history(dom) -> tuple:
    """The guest's recorded migrations, newest first; () when it has none.

    Reads the live definition of a running guest, the persistent one of a stopped guest.
    Other libvirt failures raise the translated typed error: callers that only want the
    history as a hint (predictions) catch ``KvmopsError`` and go on without it.
    """
    try:
        text = dom.metadata(VIR_DOMAIN_METADATA_ELEMENT, HISTORY_NS, VIR_DOMAIN_AFFECT_CURRENT)
    except Exception as exc:  # pylint: disable=broad-except
        if not is_libvirt_error(exc):
            raise
        if _error_code(exc) == VIR_ERR_NO_DOMAIN_METADATA:
            return ()
        raise translate_libvirt_error(exc, "Reading the migration history of domain '%s'" % dom.name()) from exc
    return history_from_xml(text)


def _write_flags(dom):
    """Live and persistent definitions alike where both exist, so neither a restart nor a
    redefinition loses the record; a stopped guest has only the persistent one, a transient
    guest only the live one."""
    if not dom.isActive():
        return VIR_DOMAIN_AFFECT_CONFIG
    if dom.isPersistent():
        return VIR_DOMAIN_AFFECT_LIVE | VIR_DOMAIN_AFFECT_CONFIG
    return VIR_DOMAIN_AFFECT_LIVE


def record_migration(dom, entry, keep=HISTORY_KEEP) -> tuple:
    """Add ``entry`` to the guest's history (on the host where the guest now is) and return the
    entries written.  Raises a typed error if libvirt refuses; the migration itself is done by
    then, so callers report that as a warning, not a failure."""
    entries = with_entry(read_history(dom), entry, keep)
    with translated("Recording the migration history of domain '%s'" % dom.name()):
        dom.setMetadata(VIR_DOMAIN_METADATA_ELEMENT, history_to_xml(entries, keep), HISTORY_PREFIX, HISTORY_NS,
                        _write_flags(dom))
    return entries
