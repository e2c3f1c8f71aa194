# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The pure parts of a rolling maintenance round (the rolling_maintenance role, virt_rolling_round).

One hypervisor's round: where it stands and where a re-run goes on, its record, whether it may be
taken out of service now (go / skip_host / stop) from its evacuation plan and its peers' preflight,
the plan lines of a dry run and the report line. Plain data in, plain data out; no libvirt, no files.
"""

from __future__ import annotations

import copy
import time

ROUND_FILE = 'rolling.json'
RECORD_VERSION = 1
# The steps a host reaches in a round, in order; its record keeps the last one reached.
STEPS = ('started', 'evacuated', 'maintained', 'healthy', 'done')
# The phases the role runs for a host, in order.
PHASES = ('check', 'evacuate', 'maintain', 'health', 'return')
# Where a host goes on after the last step it reached. Until its maintenance has run, it is checked
# and evacuated again (both move only what is left, and nothing may run on it when the maintenance
# reboots it); once maintained, it is never maintained twice in the round.
RESUME_AT = {'started': 'check', 'evacuated': 'check', 'maintained': 'health', 'healthy': 'return'}
UNMOVABLE_CHOICES = ('shutdown', 'skip_host')
# Host-level preflight checks that do not say whether a peer can take guests: capacity is for the
# plan to weigh (the guests spread over several peers), and a bandwidth figure is no verdict.
NOT_PEER_HEALTH = ('capacity', 'bandwidth')


class RoundError(ValueError):
    """A round name or a record update that makes no sense."""


def check_round_name(name):
    """The round's name, stripped; refused when empty, multi-line or longer than 100 characters."""
    name = (name or '').strip()
    if not name or '\n' in name or len(name) > 100:
        raise RoundError('round %r: give a name of 1 to 100 characters on one line, e.g. 2026-12' % name)
    return name


def empty_record(host):
    return {'version': RECORD_VERSION, 'host': host, 'round': None, 'step': None, 'steps': {}}


def load_round_record(data, host):
    """A host's record from its parsed JSON (None when there is none). A record of another host
    (a state directory on shared storage) or one that is not a record counts as none."""
    if not isinstance(data, dict) or data.get('host') != host or not isinstance(data.get('steps'), dict):
        return empty_record(host)
    if data.get('step') not in STEPS:
        data['step'] = None
    return data


def where_to_go_on(record, round_name, in_maintenance=False, mark_note=None):
    """Where ``record``'s host stands in round ``round_name``.

    Returns {'status', 'phases', 'line'}: ``finished`` (done in this round: nothing to run),
    ``resume`` (in the middle of a round, whichever: its guests are elsewhere, so it goes on from
    the phase after its last step), ``in_maintenance`` (marked in maintenance by something other than a
    round, e.g. evacuate.yml before a hardware repair: left alone) or ``start``.
    """
    host, step = record['host'], record.get('step')
    if step == 'done' and record.get('round') == round_name:
        return {'status': 'finished', 'phases': [],
                'line': '%s: already done in round %s: skipped (%s)' % (host, round_name, host_summary(record))}
    if step in RESUME_AT:
        phase = RESUME_AT[step]
        other = '' if record.get('round') == round_name else ' (begun in round %s)' % record.get('round')
        return {'status': 'resume', 'phases': list(PHASES[PHASES.index(phase):]),
                'line': '%s: resumes after step %s%s, at %s' % (host, step, other, phase)}
    if in_maintenance:
        return {'status': 'in_maintenance', 'phases': [],
                'line': '%s: in maintenance outside this round (%s): skipped; bring it back with return.yml '
                        'first if it belongs in the round' % (host, mark_note or 'its maintenance mark')}
    return {'status': 'start', 'phases': list(PHASES), 'line': '%s: starts round %s' % (host, round_name)}


def record_step(record, round_name, step=None, facts=None, error=None, now=None):
    """The record after its host reached ``step`` (and/or stopped with ``error``: {phase, msg}).

    ``started`` on a host not in the middle of a round begins a fresh record. The step never goes
    back (a resumed host is checked and evacuated again before its maintenance); the time a step was
    first reached is kept. ``facts`` are merged: the guests shut down and the guests out accumulate
    over resumed runs, the versions before the maintenance are those of the first attempt. An error
    on a host with no step yet (it stopped before anything moved) leaves a record that needs no saving.
    """
    now = int(now if now is not None else time.time())
    if step is not None and step not in STEPS:
        raise RoundError('step %r is not one of %s' % (step, ', '.join(STEPS)))
    new = copy.deepcopy(record)
    if step == 'started' and new.get('step') in (None, 'done'):
        new = empty_record(record['host'])
    new['round'] = round_name
    if step is not None:
        if new.get('step') is None or STEPS.index(step) > STEPS.index(new['step']):
            new['step'] = step
        new['steps'].setdefault(step, now)
        new.pop('error', None)
    for key, value in (facts or {}).items():
        if key in ('shutdown_guests', 'guests_out'):
            new[key] = sorted(set(new.get(key) or []) | set(value or []))
        elif key in ('versions_before', 'versions_after'):
            # A preflight's whole `source` may be given: only the versions are kept.
            versions = dict((name, (value or {}).get(name)) for name in ('libvirt', 'qemu'))
            if key == 'versions_after' or not any((new.get(key) or {}).values()):
                new[key] = versions
        else:
            new[key] = value
    if error:
        new['error'] = {'phase': error.get('phase'), 'msg': error.get('msg'), 'at': now}
    if new['step'] == 'done' and 'started' in new['steps']:
        new['duration_s'] = new['steps']['done'] - new['steps']['started']
    return new


def format_duration(seconds):
    """12 -> '12s', 724 -> '12m04s', 3725 -> '1h02m05s'; None -> '?'."""
    if seconds is None:
        return '?'
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return '%dh%02dm%02ds' % (hours, minutes, secs)
    if minutes:
        return '%dm%02ds' % (minutes, secs)
    return '%ds' % secs


def _versions(before, after):
    parts = []
    for key, label in (('libvirt', 'libvirt'), ('qemu', 'QEMU')):
        old, new = (before or {}).get(key), (after or {}).get(key)
        if old or new:
            parts.append('%s %s -> %s' % (label, old or '?', new or '?'))
    return ', '.join(parts) or 'versions not read'


def _phase_times(steps):
    """'evacuate 35s, maintenance 10m50s, ...' from the times the steps were reached."""
    spans = (('evacuate', 'started', 'evacuated'), ('maintenance', 'evacuated', 'maintained'),
             ('health', 'maintained', 'healthy'), ('return', 'healthy', 'done'))
    return ', '.join('%s %s' % (name, format_duration(steps[end] - steps[begin]))
                     for name, begin, end in spans if begin in steps and end in steps)


def host_summary(record):
    """Guests out/back, versions before -> after, time: the middle of a host's report line."""
    out, back = record.get('guests_out') or [], record.get('guests_back') or []
    text = '%d guest(s) out, %d back' % (len(out), len(back))
    if record.get('shutdown_guests'):
        shut = record['shutdown_guests']
        text += ', %d shut down and started again (%s)' % (len(shut), ', '.join(shut))
    text += '; %s' % _versions(record.get('versions_before'), record.get('versions_after'))
    if record.get('duration_s') is not None:
        phases = _phase_times(record.get('steps') or {})
        text += '; %s%s' % (format_duration(record['duration_s']), ' (%s)' % phases if phases else '')
    return text


def host_line(record):
    """The one line printed for a host when its round is done."""
    return '%s: done in round %s: %s' % (record['host'], record.get('round'), host_summary(record))


def stop_message(record, phase, msg):
    """Where and why the round stopped at this host, what state the host is in, how to go on."""
    host, step = record['host'], record.get('step')
    text = 'Round %s stopped at %s, in its %s phase: %s. ' % (record.get('round'), host, phase, msg.strip().rstrip('.'))
    if step is None:
        text += 'Nothing was moved off %s. ' % host
    else:
        out = record.get('guests_out') or []
        text += ('%s stays in maintenance after step %s; its guests run elsewhere (%d recorded out: %s)%s. '
                 % (host, step, len(out), ', '.join(out) or 'none',
                    '; shut down for the maintenance: %s' % ', '.join(record['shutdown_guests'])
                    if record.get('shutdown_guests') else ''))
    text += ('Fix the cause, then run the same round again (rolling_maintenance_round=%s): it goes on with %s at %s '
             'and skips the hosts done.' % (record.get('round'), host, RESUME_AT.get(step, 'check')))
    return text


# -- the decision before a host is taken out of service -----------------------------------

def _result_destination(result):
    """The peer a registered virt_migrate_preflight result is about (loop item or its destination)."""
    loop_var = result.get('ansible_loop_var', 'item')
    name = result.get(loop_var) if isinstance(result.get(loop_var), str) else None
    return name or (result.get('destination') or {}).get('host')


def peer_problems(preflight, peers):
    """'peer: check: detail' for each of ``peers`` that cannot take guests at all, whatever the guest:
    its preflight is missing or did not run, or a check about the host itself failed (capacity aside)."""
    by_peer = {}
    for result in preflight or []:
        by_peer[_result_destination(result)] = result
    problems = []
    for peer in peers:
        result = by_peer.get(peer)
        if result is None:
            problems.append('%s: no preflight result' % peer)
        elif result.get('checks') is None:
            problems.append('%s: the preflight did not run: %s' % (peer, result.get('msg', 'no result')))
        else:
            problems.extend('%s: %s: %s' % (peer, check.get('name'), check.get('detail'))
                            for check in result['checks']
                            if check.get('status') == 'fail' and not check.get('guest')
                            and check.get('category') not in NOT_PEER_HEALTH)
    return problems


def versions_of(preflight):
    """{'libvirt', 'qemu'} of the host the preflight ran on, from the first result that has them."""
    for result in preflight or []:
        source = result.get('source') or {}
        if source.get('libvirt') not in (None, 'unknown'):
            return {'libvirt': source['libvirt'], 'qemu': source.get('qemu')}
    return {}


def decide(evacuation, preflight, peers, unmovable, resuming=False):
    """Whether a host may be taken out of service now, from its evacuation plan (a check-mode
    virt_evacuate result) and the preflight from it to ``peers``.

    ``stop`` when a peer not in maintenance cannot take guests at all (a broken cluster must not be
    mistaken for unmovable guests), or when guests must leave and no peer is left. Guests the plan
    leaves where they are (no destination: host devices, local disks that may not be copied, no
    capacity, anti-affinity, pinned) follow ``unmovable``: ``shutdown`` (shut down cleanly for the
    maintenance, started again after), or ``skip_host`` - which is ``stop`` for a host in the middle
    of its round (``resuming``): its other guests are gone already, it cannot be left half-done.
    """
    if unmovable not in UNMOVABLE_CHOICES:
        raise RoundError('unmovable=%r: choose %s' % (unmovable, ' or '.join(UNMOVABLE_CHOICES)))
    rows = evacuation.get('table') or []
    moving = [row for row in rows if row.get('result') == 'planned']
    stuck = [row for row in rows if row.get('result') in ('stayed', 'failed')]
    in_maintenance = sorted(h['name'] for h in evacuation.get('hosts') or [] if h.get('maintenance'))
    checked = [peer for peer in peers if peer not in in_maintenance]
    result = {'decision': 'go', 'reasons': [], 'movable': [row['guest'] for row in moving],
              'moves': [{'guest': row['guest'], 'to': row.get('to'), 'mode': row.get('mode')} for row in moving],
              'unmovable': [{'guest': row['guest'], 'reason': row.get('reason') or ''} for row in stuck],
              'stay_off': [row['guest'] for row in rows if row.get('result') == 'skipped'],
              'shutdown_guests': [], 'peers': checked, 'peers_in_maintenance': in_maintenance,
              'versions': versions_of(preflight)}
    problems = peer_problems(preflight, checked)
    if problems:
        result.update(decision='stop', reasons=['peer not ready: %s' % problem for problem in problems])
    elif (moving or stuck) and not checked:
        marked = ', '.join(in_maintenance) or 'none left'
        result.update(decision='stop', reasons=['no peer can take guests (every other host is excluded, in this '
                                                'batch or in maintenance: %s)' % marked])
    elif stuck and unmovable == 'shutdown':
        result['shutdown_guests'] = sorted(row['guest'] for row in stuck)
    elif stuck:
        names = ', '.join('%s (%s)' % (row['guest'], row.get('reason') or 'no reason given') for row in stuck)
        if resuming:
            result.update(decision='stop', reasons=[
                'guests cannot move: %s; the host is in the middle of its round and cannot be skipped now: move or '
                'shut them down yourself, or run with rolling_maintenance_unmovable=shutdown' % names])
        else:
            result.update(decision='skip_host', reasons=['guests cannot move: %s (rolling_maintenance_unmovable=skip_host)' % names])
    return result


def migration_seconds(moves, preflight, max_parallel, max_per_dest):
    """A lower bound of the time to migrate ``moves`` ({guest, to}) from the preflight's estimates
    (memory, plus disks to copy, over the measured bandwidth), with at most ``max_parallel`` at once
    and ``max_per_dest`` into one peer. None when a guest has no estimate (bandwidth not measured)."""
    estimates = {}
    for result in preflight or []:
        for estimate in result.get('estimates') or []:
            estimates[(_result_destination(result), estimate.get('guest'))] = estimate.get('seconds')
    per_dest, total = {}, 0.0
    for move in moves:
        seconds = estimates.get((move['to'], move['guest']))
        if seconds is None:
            return None
        per_dest[move['to']] = per_dest.get(move['to'], 0.0) + seconds
        total += seconds
    if not moves:
        return 0.0
    return max(total / max(1, max_parallel), max(per_dest.values()) / max(1, max_per_dest))


def plan_lines(where, decision, migrations_s, maintenance_s, previous=None):
    """What a dry run prints for a host: where it stands (``where``, from where_to_go_on), guests and
    destinations, what happens to the guests that cannot move, the expected time (and the last round's),
    or why it would stop."""
    lines = [where['line']]
    moves = ', '.join('%s -> %s%s' % (m['guest'], m['to'], ' (%s)' % m['mode'] if m.get('mode') else '')
                      for m in decision['moves'])
    lines.append('  out and back: %s' % (moves or 'no running guest to move'))
    for item in decision['unmovable']:
        fate = ('shut down cleanly before the maintenance, started again after'
                if item['guest'] in decision['shutdown_guests'] else 'cannot move')
        lines.append('  %s: %s (%s)' % (item['guest'], fate, item['reason']))
    if decision['stay_off']:
        lines.append('  shut off, stay here: %s' % ', '.join(decision['stay_off']))
    if decision['peers_in_maintenance']:
        lines.append('  peers in maintenance (no guest goes there): %s' % ', '.join(decision['peers_in_maintenance']))
    if decision['decision'] == 'go':
        if migrations_s is None:
            expected = ('maintenance about %s; migrations not estimated (no bandwidth measured)'
                        % format_duration(maintenance_s))
        else:
            expected = 'about %s: migrations out and back %s (lower bound), maintenance %s' % (
                format_duration(2 * migrations_s + maintenance_s), format_duration(2 * migrations_s),
                format_duration(maintenance_s))
        if previous and previous.get('duration_s') is not None:
            expected += '; its last round (%s) took %s' % (previous.get('round'), format_duration(previous['duration_s']))
        lines.append('  expected: %s' % expected)
    else:
        lines.extend('  %s: %s' % ('WOULD STOP HERE' if decision['decision'] == 'stop' else 'skipped', reason)
                     for reason in decision['reasons'])
    return lines
