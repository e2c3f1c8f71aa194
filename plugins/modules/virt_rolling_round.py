#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: virt_rolling_round
short_description: A hypervisor's progress in a rolling maintenance round, and whether it may go out of service now
version_added: 0.1.0
description:
  - The state keeper and judge of the C(rolling_maintenance) role, run on the hypervisor being maintained. The
    round's progress lives on each hypervisor (C(rolling.json) in O(state_dir), next to the maintenance mark
    C(maintenance.json) it reads), so a re-run from another control node (an AWX job in a fresh container)
    finds it.
  - C(read) says where this host stands in round O(round) - RV(status) C(start), C(resume) (in the middle of a
    round, whichever round, so its guests are elsewhere and it goes on after its last step), C(finished) (done
    in this round) or C(in_maintenance) (marked in maintenance by something else, for example C(evacuate.yml)
    before a repair) - and the phases left to run (RV(phases)).
  - C(record) saves the step this host reached (O(step)) and facts about it (O(facts)), or that the run stopped
    here (O(error)), and returns the report line (RV(line)) or where and why the round stopped.
  - C(plan) decides from a check-mode M(kvmops.migration.virt_evacuate) result (O(evacuation)) and the results of
    M(kvmops.migration.virt_migrate_preflight) from this host to O(peers) (O(preflight), with C(fail_on=never))
    whether the host may go out of service now - C(go), C(skip_host) or C(stop) (RV(decision)) - and returns the
    plan's lines with the expected time. It reads the record and writes nothing.
author:
  - kvmops.migration contributors (@kvmops)
extends_documentation_fragment:
  - kvmops.migration.state_dir
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: C(record) returns the record it would write and writes nothing; C(read) and C(plan) only read.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  action:
    description: What to do.
    type: str
    choices: [read, record, plan]
    default: read
  host:
    description: This host's inventory name (the name the record and the maintenance mark carry).
    type: str
    required: true
  round:
    description:
      - The round's name, 1 to 100 characters on one line, for example C(2026-12). A host done in this round is
        C(finished); a new name starts a new round.
    type: str
    required: true
  step:
    description:
      - C(record) - the step this host reached. C(started) on a host not in the middle of a round begins a fresh
        record. A step never goes back; the time each step was first reached is kept.
    type: str
    choices: [started, evacuated, maintained, healthy, done]
  facts:
    description:
      - C(record) - facts merged into the record, for example C(peers), C(unmovable), C(shutdown_guests),
        C(guests_out), C(guests_back), C(versions_before), C(versions_after) (C({libvirt, qemu})).
      - C(shutdown_guests) and C(guests_out) accumulate over resumed runs; C(versions_before) keeps its first value.
    type: dict
    default: {}
  error:
    description:
      - C(record) - the run stopped at this host, C({phase, msg}) with C(phase) one of C(check), C(evacuate),
        C(maintain), C(health), C(return). Nothing is written for a host that had not started (nothing moved).
    type: dict
  evacuation:
    description: C(plan) - the result of M(kvmops.migration.virt_evacuate) with C(action=evacuate) in check mode.
    type: dict
  preflight:
    description:
      - C(plan) - registered results of M(kvmops.migration.virt_migrate_preflight) from this host to each of
        O(peers) (a loop, C(fail_on=never)). With C(measure_bandwidth) they give the migration time estimates.
    type: list
    elements: dict
    default: []
  peers:
    description:
      - C(plan) - the hosts that may take this host's guests. Those the plan shows in maintenance are left out;
        each of the others must pass the preflight checks about the host itself (connectivity, versions, firewall;
        capacity is the plan's) or the decision is C(stop).
    type: list
    elements: str
    default: []
  unmovable:
    description:
      - C(plan) - what happens when guests cannot move (the plan gives them no destination - host devices, local
        disks that may not be copied, no capacity, anti-affinity, pinned).
      - C(shutdown) - they are to be shut down cleanly before the maintenance and started again after
        (RV(shutdown_guests)).
      - C(skip_host) - the host is skipped (C(stop) when it is in the middle of its round, which cannot be left
        half-done).
    type: str
    choices: [shutdown, skip_host]
    default: skip_host
  max_parallel:
    description: C(plan) - migrations out of the host at once, for the expected time.
    type: int
    default: 2
  max_per_dest:
    description: C(plan) - migrations into one host at once, for the expected time.
    type: int
    default: 1
  maintenance_expected_s:
    description: C(plan) - how long the maintenance is expected to take, in seconds, for the expected time.
    type: int
    default: 900
notes:
  - The round's record is C(<state_dir>/rolling.json), written atomically. Delete it to make a host forget its
    round (only when it is not in maintenance).
seealso:
  - module: kvmops.migration.virt_evacuate
  - module: kvmops.migration.virt_migrate_preflight
  - module: kvmops.migration.virt_guest_power
'''

EXAMPLES = r'''
- name: Where this host stands in round 2026-12
  kvmops.migration.virt_rolling_round:
    host: "{{ inventory_hostname }}"
    round: "2026-12"
  register: rolling_maintenance_state

- name: Record that its maintenance is done
  kvmops.migration.virt_rolling_round:
    action: record
    host: "{{ inventory_hostname }}"
    round: "2026-12"
    step: maintained
'''

RETURN = r'''
status:
  description: C(read) - C(start), C(resume), C(finished) or C(in_maintenance).
  returned: when action is read
  type: str
phases:
  description: C(read) - the phases left to run, in order, from C(check), C(evacuate), C(maintain), C(health), C(return).
  returned: when action is read
  type: list
  elements: str
record:
  description:
    - This host's record (after the update for C(record)) - C(round), C(step), C(steps) (epoch seconds when
      each step was reached), C(peers), C(unmovable), C(shutdown_guests), C(guests_out), C(guests_back),
      C(versions_before), C(versions_after), C(duration_s), C(error).
  returned: always
  type: dict
line:
  description:
    - C(read) - where the host stands. C(record) - the report line once C(done), where and why the round
      stopped with O(error), else the state.
  returned: when action is read or record
  type: str
decision:
  description: C(plan) - C(go), C(skip_host) or C(stop).
  returned: when action is plan
  type: str
reasons:
  description: C(plan) - why C(skip_host) or C(stop).
  returned: when action is plan
  type: list
  elements: str
movable:
  description: C(plan) - the guests the plan gives a destination.
  returned: when action is plan
  type: list
  elements: str
shutdown_guests:
  description: C(plan) - the guests to shut down cleanly for the maintenance (O(unmovable=shutdown)).
  returned: when action is plan
  type: list
  elements: str
peers:
  description: C(plan) - the peers checked (O(peers) minus those in maintenance).
  returned: when action is plan
  type: list
  elements: str
versions:
  description: C(plan) - C({libvirt, qemu}) of this host, from the preflight.
  returned: when action is plan
  type: dict
expected_s:
  description: C(plan) - expected seconds for the host (null when the migrations could not be estimated).
  returned: when action is plan
  type: float
lines:
  description: C(plan) - the plan as text lines (guests and destinations, unmovable guests, expected time).
  returned: when action is plan
  type: list
  elements: str
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmops.migration.plugins.module_utils._evacuation import (
    MAINTENANCE_MARK_FILE,
    marks_maintenance,
)
from ansible_collections.kvmops.migration.plugins.module_utils._rolling import (
    PHASES,
    ROUND_FILE,
    STEPS,
    RoundError,
    check_round_name,
    decide,
    host_line,
    host_summary,
    load_round_record,
    migration_seconds,
    plan_lines,
    record_step,
    stop_message,
    where_to_go_on,
)
from ansible_collections.kvmops.migration.plugins.module_utils._statefile import (
    DEFAULT_STATE_DIR,
    read_json,
    read_text,
    write_json,
)

ARGUMENT_SPEC = dict(
    action=dict(type='str', default='read', choices=['read', 'record', 'plan']),
    host=dict(type='str', required=True),
    round=dict(type='str', required=True),
    state_dir=dict(type='path', default=DEFAULT_STATE_DIR),
    step=dict(type='str', choices=list(STEPS)),
    facts=dict(type='dict', default={}),
    error=dict(type='dict'),
    evacuation=dict(type='dict'),
    preflight=dict(type='list', elements='dict', default=[]),
    peers=dict(type='list', elements='str', default=[]),
    unmovable=dict(type='str', default='skip_host', choices=['shutdown', 'skip_host']),
    max_parallel=dict(type='int', default=2),
    max_per_dest=dict(type='int', default=1),
    maintenance_expected_s=dict(type='int', default=900),
)


def where(params, record, round_name):
    mark = read_text(os.path.join(params['state_dir'], MAINTENANCE_MARK_FILE))
    in_maintenance, note = marks_maintenance(mark, params['host'])
    return where_to_go_on(record, round_name, in_maintenance, note)


def do_record(module, record, round_name):
    params = module.params
    error = params['error']
    if error is not None and error.get('phase') not in PHASES:
        raise RoundError('error.phase %r is not one of %s' % (error.get('phase'), ', '.join(PHASES)))
    if params['step'] is None and error is None:
        raise RoundError('action=record needs a step, an error, or both')
    new = record_step(record, round_name, params['step'], params['facts'], error)
    changed = new.get('step') is not None and new != record
    if changed and not module.check_mode:
        write_json(os.path.join(params['state_dir'], ROUND_FILE), new)
    if error is not None:
        line = stop_message(new, error['phase'], error.get('msg') or 'no reason given')
    elif new['step'] == 'done':
        line = host_line(new)
    else:
        line = '%s: step %s reached in round %s: %s' % (new['host'], new['step'], round_name, host_summary(new))
    return dict(changed=changed, record=new, line=line)


def do_plan(params, record, round_name):
    if params['evacuation'] is None:
        raise RoundError('action=plan needs evacuation: the result of virt_evacuate (action=evacuate) in check mode')
    place = where(params, record, round_name)
    decision = decide(params['evacuation'], params['preflight'], params['peers'], params['unmovable'],
                      resuming=place['status'] == 'resume')
    migrations_s = migration_seconds(decision['moves'], params['preflight'], params['max_parallel'],
                                     params['max_per_dest'])
    previous = record if record.get('step') == 'done' else None
    lines = plan_lines(place, decision, migrations_s, params['maintenance_expected_s'], previous)
    expected = None if migrations_s is None else 2 * migrations_s + params['maintenance_expected_s']
    return dict(decision, changed=False, record=record, expected_s=expected, lines=lines)


def main():
    # A plain AnsibleModule: this module reads and writes two small files and needs no libvirt.
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        round_name = check_round_name(params['round'])
        if not params['host'].strip():
            raise RoundError('host is empty: give the inventory name of this hypervisor')
        if params['max_parallel'] < 1 or params['max_per_dest'] < 1 or params['maintenance_expected_s'] < 0:
            raise RoundError('max_parallel and max_per_dest must be at least 1 and maintenance_expected_s at least 0')
        record = load_round_record(read_json(os.path.join(params['state_dir'], ROUND_FILE)), params['host'])
        if params['action'] == 'read':
            place = where(params, record, round_name)
            module.exit_json(changed=False, record=record, status=place['status'], phases=place['phases'],
                             line=place['line'])
        elif params['action'] == 'record':
            module.exit_json(**do_record(module, record, round_name))
        else:
            module.exit_json(**do_plan(params, record, round_name))
    except RoundError as exc:
        module.fail_json(msg=str(exc))


if __name__ == '__main__':
    main()
