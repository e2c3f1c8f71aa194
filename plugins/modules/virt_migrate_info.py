#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: virt_migrate_info
short_description: Progress of running migrations and figures of completed ones
version_added: 0.1.0
description:
  - Read-only view of libvirt migration jobs on the host the module runs on (C(virsh domjobinfo)).
  - For one domain or for all, returns the running job with its progress, remaining bytes,
    bandwidth, dirty rate, memory pass and expected downtime; with O(completed=true), the
    statistics of the last completed job too.
  - Progress never goes backwards within a job, although the remaining size may grow while a
    guest dirties memory; pass the previous reading back in O(previous_progress) to keep it
    monotonic across module runs.
author:
  - kvmops.migration contributors (@kvmops)
extends_documentation_fragment:
  - kvmops.migration.connection
  - kvmops.migration.state_dir
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  name:
    description: Domain to report on; all domains with a job when omitted.
    type: str
  completed:
    description: Also return the statistics of the last completed job of each domain.
    type: bool
    default: false
  previous_progress:
    description: Progress percent returned by an earlier call for the same job; the result never goes below it.
    type: float
'''

EXAMPLES = r'''
- name: Watch a migration started with async
  kvmops.migration.virt_migrate_info:
    name: web01
  register: job
  until: job.jobs | length == 0 or job.jobs[0].type != 'unbounded'
  retries: 120
  delay: 2

- name: Start a migration without waiting for it
  kvmops.migration.virt_migrate:
    name: web01
    dest: host-b
    wait: false

- name: Wait until that migration has ended, then read its outcome
  kvmops.migration.virt_migrate_info:
    name: web01
  register: info
  until: info.detached | selectattr('running') | list | length == 0
  retries: 120
  delay: 5

- name: Figures of the last migration
  kvmops.migration.virt_migrate_info:
    name: web01
    completed: true
'''

RETURN = r'''
jobs:
  description: One entry per domain with a running job (or the named domain). Sizes in bytes, times in ms, rates in bytes/s.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Domain name.
      type: str
    type:
      description: Job type (C(none), C(unbounded) while migrating, C(completed), ...).
      type: str
    operation:
      description: What the job does (C(migration_out), C(migration_in), ...).
      type: str
    progress_percent:
      description: Percent done, never decreasing within a job.
      type: float
    data_remaining_bytes:
      description: Bytes still to send.
      type: int
    bandwidth_bps:
      description: Current transfer rate.
      type: int
    dirty_rate_bps:
      description: Rate at which the guest dirties memory.
      type: int
    pass:
      description: Memory pass (iteration).
      type: int
    expected_downtime_ms:
      description: Downtime QEMU expects for the switch-over.
      type: int
    completed:
      description: Statistics of the last completed job (with O(completed=true)).
      type: dict
detached:
  description:
    - Migrations started from this host with C(wait=false) (for O(name), only that domain's), newest first, as
      M(kvmops.migration.virt_migrate) recorded them in O(state_dir). A domain that has already left this host is
      still reported here, with RV(jobs) empty.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Domain name.
      type: str
    uuid:
      description: Domain UUID.
      type: str
    destination:
      description: Destination host.
      type: str
    running:
      description: True while the detached process still runs.
      type: bool
    failed:
      description: True if it ended in failure (its RV(detached[].msg) says why and where the guest is).
      type: bool
    msg:
      description: Its final message (absent while it runs).
      type: str
    location:
      description: Where the guest was found on both hosts when it ended (see virt_migrate's C(location)).
      type: dict
    outcome_file:
      description: The file holding its full result.
      type: str
'''

from ansible_collections.kvmops.migration.plugins.module_utils._module_wrapper import KvmopsModule
from ansible_collections.kvmops.migration.plugins.module_utils._jobinfo import migration_info
from ansible_collections.kvmops.migration.plugins.module_utils._statefile import DEFAULT_STATE_DIR


def main():
    KvmopsModule(argument_spec=dict(
        name=dict(type='str'),
        completed=dict(type='bool', default=False),
        previous_progress=dict(type='float'),
        state_dir=dict(type='path', default=DEFAULT_STATE_DIR),
    ), supports_check_mode=True).run(migration_info)


if __name__ == '__main__':
    main()
