# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The pure parts of virt_evacuate: metadata, preflight verdicts, records, progress, the report.

No libvirt here: plain data in, plain data out, unit-tested.  The libvirt side
(facts, the concurrent runner) is in ``_evacuation_runner``.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET

from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import read_domain
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_DOMAIN_RUNNING,
    VIR_DOMAIN_SHUTOFF,
)

KVMOPS_NS = 'https://kvmops.io/migration'
MIB = 1024 * 1024
RECORD_VERSION = 1


def metadata_of(domain_xml):
    """Our domain metadata (``domain_xml``: the XML, or a ``_domain_xml.DomainXml``): {'anti_affinity': [groups]} from
    <metadata><kvmops:migration xmlns:kvmops="https://kvmops.io/migration">
    <anti_affinity>group</anti_affinity>...</kvmops:migration></metadata>.
    A group element may also hold a comma-separated list."""
    groups = []
    try:
        domain = read_domain(domain_xml)
    except ET.ParseError:
        return {'anti_affinity': []}
    for node in domain.metadata(KVMOPS_NS, 'migration'):
        for group in node.findall('{%s}anti_affinity' % KVMOPS_NS) + node.findall('anti_affinity'):
            for name in (group.text or '').split(','):
                name = name.strip()
                if name and name not in groups:
                    groups.append(name)
    return {'anti_affinity': groups}


def anti_affinity_groups(guest, from_metadata, from_vars):
    """Groups of `guest`: its metadata's plus every group of `from_vars` ({group: [guests]}) naming it."""
    groups = list(from_metadata)
    for group, members in sorted((from_vars or {}).items()):
        if guest in (members or []) and group not in groups:
            groups.append(group)
    return tuple(sorted(groups))


def preflight_verdicts(results):
    """{dest: {'host_fail': [reasons], 'guests': {guest: [reasons]}}} from virt_migrate_preflight results.

    `results`: registered results of a loop over destinations (each with `item`) or plain
    module results (their `destination.host` names the destination).  Only checks with
    status `fail` block: a `warn` (e.g. a local disk that copy_storage will copy) does not.
    A result that failed as a whole (no checks) blocks the whole destination.
    """
    verdicts = {}
    for result in results or []:
        dest = result.get('item') or (result.get('destination') or {}).get('host')
        if isinstance(dest, dict):
            dest = dest.get('name') or dest.get('host')
        if not dest:
            continue
        entry = verdicts.setdefault(dest, {'host_fail': [], 'guests': {}})
        checks = result.get('checks')
        if checks is None:
            entry['host_fail'].append('preflight did not run: %s' % result.get('msg', 'no result'))
            continue
        for check in checks:
            if check.get('status') != 'fail':
                continue
            why = '%s: %s' % (check.get('name'), check.get('detail'))
            if check.get('guest'):
                entry['guests'].setdefault(check['guest'], []).append(why)
            else:
                entry['host_fail'].append(why)
    return verdicts


def preflight_allows(verdicts, guest, dest):
    """(True, None) when preflight let `guest` go to `dest` (or did not check it), else (False, reason)."""
    if dest not in verdicts:
        return True, None
    entry = verdicts[dest]
    reasons = entry['host_fail'] + entry['guests'].get(guest, [])
    if reasons:
        return False, '; '.join(reasons)
    return True, None


def percent(stats):
    """Progress of a job from libvirt job stats (data_processed/remaining), 0-100, or None."""
    processed = stats.get('data_processed')
    remaining = stats.get('data_remaining')
    total = stats.get('data_total')
    if processed is None or remaining is None:
        return None
    if total and stats.get('memory_iteration', 0) <= 1:
        return max(0, min(100, int(100 * (total - remaining) / total)))
    whole = processed + remaining
    return max(0, min(100, int(100 * processed / whole))) if whole else None


def progress_line(guest, source, dest, stats, elapsed_s):
    """One human progress line of a running migration."""
    pct = percent(stats)
    remaining = stats.get('data_remaining')
    return '%s %s -> %s: %s%% after %.0f s, %s MiB remaining, pass %s' % (
        guest, source, dest, '?' if pct is None else pct, elapsed_s,
        '?' if remaining is None else '%.1f' % (remaining / float(MIB)), stats.get('memory_iteration', '?'))


def make_row(guest, source, dest, result, reason=None, time_ms=None, downtime_ms=None, mode=None):
    return {'guest': guest, 'from': source, 'to': dest, 'time_s': None if time_ms is None else round(time_ms / 1000.0, 1),
            'downtime_ms': downtime_ms, 'result': result, 'reason': reason or '', 'mode': mode}


def format_table(rows):
    """The report as text lines: guest, from, to, time, downtime, result, reason."""
    header = ('guest', 'from', 'to', 'time', 'downtime', 'result', 'reason')
    lines = [header]
    for row in rows:
        lines.append((
            row['guest'], row['from'] or '-', row['to'] or '-',
            '-' if row.get('time_s') is None else '%.1fs' % row['time_s'],
            '-' if row.get('downtime_ms') is None else '%dms' % row['downtime_ms'],
            row['result'], row.get('reason') or ''))
    widths = [max(len(str(line[col])) for line in lines) for col in range(len(header) - 1)]
    out = []
    for line in lines:
        cells = [str(line[col]).ljust(widths[col]) for col in range(len(header) - 1)]
        out.append('  '.join(cells + [str(line[-1])]).rstrip())
    return out


def summarise(rows):
    """Counts per result, and the guests that should have moved and did not."""
    counts = {}
    for row in rows:
        counts[row['result']] = counts.get(row['result'], 0) + 1
    stayed = sorted(row['guest'] for row in rows if row['result'] in ('stayed', 'failed'))
    return {'counts': counts, 'stayed': stayed, 'moved': sorted(row['guest'] for row in rows if row['result'] == 'moved')}


# -- the evacuation record: where each guest came from -------------------------------------

def empty_record(host):
    return {'version': RECORD_VERSION, 'host': host, 'guests': {}}


def load_record(text, host):
    """Parse a record file's text; an unreadable or foreign file gives an empty record."""
    try:
        record = json.loads(text) if text else None
    except ValueError:
        record = None
    if not isinstance(record, dict) or not isinstance(record.get('guests'), dict):
        return empty_record(host)
    record.setdefault('host', host)
    return record


def record_move(record, guest, uuid, source, dest, copied=(), now=None):
    """Remember that `guest` left `source` for `dest` (an earlier entry of the same guest keeps its origin).

    An entry under the same name with another UUID is of a guest that no longer exists (deleted, then
    a new one created with its name): it is replaced, or return.yml would never bring the new one back.
    `copied`: disk paths copied off the origin: the images left there are stale from then on.
    """
    entry = record['guests'].get(guest)
    if entry is None or entry.get('uuid') != uuid:
        entry = {'uuid': uuid, 'from': source, 'moved_at': int(now if now is not None else time.time()),
                 'stale_copies': sorted(copied)}
        record['guests'][guest] = entry
    entry['to'] = dest
    return record


def forget(record, guest):
    record['guests'].pop(guest, None)
    return record


MAINTENANCE_MARK_FILE = 'maintenance.json'


def maintenance_mark(host, reason, now=None):
    return {'host': host, 'maintenance': True, 'reason': reason, 'since': int(now if now is not None else time.time())}


def marks_maintenance(content, host):
    """Does a host's mark file (its bytes, None when there is none) put ``host`` in maintenance?

    A mark that names another host does not count (a state_dir on shared storage would show every
    host the same file). A file that is not a mark at all (not JSON) does: where a guest may go is
    never guessed. Returns (in maintenance, why not known) - the second is a note or None."""
    if content is None:
        return False, None
    try:
        data = json.loads(content.decode('utf-8', 'replace') if isinstance(content, bytes) else content)
    except ValueError:
        return True, 'its maintenance mark is not JSON; taken as in maintenance'
    if not isinstance(data, dict):
        return True, 'its maintenance mark is not a JSON object; taken as in maintenance'
    return bool(data.get('maintenance')) and data.get('host', host) == host, None


def return_plan(record, locations, home):
    """[(guest, uuid, current host)] to bring back to `home`, and rows for those that cannot or need not.

    `locations`: {uuid: [hosts running it]} read from every reachable host.
    """
    moves, rows = [], []
    for guest in sorted(record.get('guests', {})):
        entry = record['guests'][guest]
        running = locations.get(entry.get('uuid'), [])
        if home in running:
            rows.append(make_row(guest, home, home, 'skipped', 'already on %s' % home))
        elif len(running) == 1:
            moves.append((guest, entry.get('uuid'), running[0]))
        elif not running:
            rows.append(make_row(guest, entry.get('to'), home, 'stayed',
                                 'not running on any reachable host (it may have been shut off or removed)'))
        else:
            rows.append(make_row(guest, ','.join(running), home, 'stayed', 'runs on several hosts: %s' % running))
    return moves, rows


# -- definition backups and the rejoin step ----------------------------------------------------

def backup_changes(existing, wanted):
    """What makes the backup files ``existing`` ({guest: file text, None if unreadable}) hold exactly
    ``wanted`` ({guest: persistent definition XML}): {'written': [...], 'removed': [...], 'unchanged': [...]}.

    A file whose text differs is rewritten; the backup of a guest no longer defined on the host is
    removed, so a guest that moved away is never recovered from a stale definition.
    """
    return {'written': sorted(name for name in wanted if existing.get(name) != wanted[name]),
            'removed': sorted(name for name in existing if name not in wanted),
            'unchanged': sorted(name for name in wanted if existing.get(name) == wanted[name])}


def rejoin_plan(host, local, elsewhere):
    """What the rejoin step does on ``host``, back after its guests were recovered elsewhere.

    ``local``: the domains on ``host``, dicts with name, uuid, active, persistent, autostart, job
    (a libvirt job runs on it). ``elsewhere``: {uuid: (host, libvirt state)} of the copy seen on the
    other reachable hosts (the running one if any runs).

    Only a guest that runs (state running) on another host is cleaned up here: the copy on
    ``host`` is stale. Returns ``(cleanups, rows)``: cleanups ``[(entry, host it runs on, steps)]``
    with the steps in order (``disable autostart`` so that it never comes back by itself,
    ``destroy`` a copy that runs here, ``undefine``), and report rows for the guests left as they are.
    """
    cleanups, rows = [], []
    for entry in sorted(local, key=lambda item: item['name']):
        other, state = elsewhere.get(entry['uuid'], (None, None))
        if other is None:
            rows.append(make_row(entry['name'], host, None, 'skipped',
                                 'not on any other reachable host: left as it is'))
        elif state == VIR_DOMAIN_SHUTOFF:
            rows.append(make_row(entry['name'], host, other, 'skipped',
                                 'defined on %s too but running nowhere: left as it is; keep one of the two '
                                 'definitions' % other))
        elif state != VIR_DOMAIN_RUNNING:
            rows.append(make_row(entry['name'], host, other, 'stayed',
                                 'active on %s but not running there (state %s: an incoming migration?): left '
                                 'alone; run this again once it runs there' % (other, state)))
        elif entry['job']:
            rows.append(make_row(entry['name'], host, other, 'stayed',
                                 'runs on %s, but a job (a migration?) runs on the copy here: left alone; run '
                                 'this again once it ended' % other))
        else:
            steps = []
            if entry['persistent'] and entry['autostart']:
                steps.append('disable autostart')
            if entry['active']:
                steps.append('destroy')
            if entry['persistent']:
                steps.append('undefine')
            cleanups.append((entry, other, steps))
    return cleanups, rows
