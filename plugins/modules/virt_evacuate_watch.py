#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: virt_evacuate_watch
short_description: Follow a virt_evacuate run started with async - its new progress lines, and its result once it ended
version_added: 0.1.0
description:
  - Follows a M(kvmops.migration.virt_evacuate) task started with C(async) and C(poll=0), on the host it runs on.
    It returns the lines its progress file (O(kvmops.migration.virt_evacuate#module:progress_file)) got since
    O(offset) and, once the job has ended, the job's result, as M(ansible.builtin.async_status) would return it.
  - Waits up to O(timeout) seconds while the job runs, and returns as soon as it has ended (it looks ten times a
    second), so a playbook shows the report without waiting out a polling interval. One module run per round
    replaces M(ansible.builtin.wait_for), M(ansible.builtin.async_status) and M(ansible.builtin.slurp).
  - The C(evacuation) role's C(evacuate), C(return) and C(rebalance) entry points use it; it reads two files and
    changes nothing. It does not use libvirt, so it is not in the C(kvmops.migration.libvirt) action group.
author:
  - kvmops.migration contributors (@kvmops)
extends_documentation_fragment:
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
  progress_file:
    description: The progress file of the run (what was given to virt_evacuate as its C(progress_file)).
    type: path
    required: true
  results_file:
    description:
      - The asynchronous job's results file on this host, C(results_file) of the result registered by the task
        that started virt_evacuate with C(async) and C(poll=0).
    type: path
    required: true
  offset:
    description: Bytes of the progress file already shown; RV(offset) of the previous round (V(0) at first).
    type: int
    default: 0
  timeout:
    description:
      - Seconds to wait for the job to end before returning the lines so far. V(0) returns at once; at most 3600.
    type: float
    default: 3.0
'''

EXAMPLES = r'''
- name: Start the evacuation without waiting for it
  kvmops.migration.virt_evacuate:
    hosts: [host-b, host-c]
    progress_file: /var/lib/libvirt/kvmops/evacuate-now.log
  async: 14400
  poll: 0
  register: job

- name: Show progress every few seconds until it ends (the role's tasks/watch.yml does this, including itself)
  kvmops.migration.virt_evacuate_watch:
    progress_file: /var/lib/libvirt/kvmops/evacuate-now.log
    results_file: "{{ job.results_file }}"
    offset: "{{ watched.offset | default(0) }}"
    timeout: 5
  register: watched
'''

RETURN = r'''
lines:
  description: Progress lines written since O(offset) (whole lines only; one still being written comes next round).
  returned: always
  type: list
  elements: str
  sample: ["16:05:04 start web1 host-a -> host-b (live)", "16:05:06 web1 62% 48.1 MiB left, 35.0 MiB/s, 2 s"]
offset:
  description: Bytes of the progress file shown so far, to pass back as O(offset) next round.
  returned: always
  type: int
finished:
  description: True once the virt_evacuate job has ended (successfully or not).
  returned: always
  type: bool
result:
  description:
    - The job's result once it has ended - virt_evacuate's RETURN values (C(report), C(summary), C(table), C(msg),
      C(failed) ...), or async_wrapper's when the job was killed (C(async) time-out) - with C(finished=true).
  returned: when RV(finished) is true
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmops.migration.plugins.module_utils._progress import NoSuchJobError, watch

MAX_TIMEOUT_S = 3600


def main():
    # A plain AnsibleModule: this module reads two files and needs no libvirt connection, so it
    # takes neither the collection's connection options nor its libvirt import guard.
    module = AnsibleModule(
        argument_spec=dict(
            progress_file=dict(type='path', required=True),
            results_file=dict(type='path', required=True),
            offset=dict(type='int', default=0),
            timeout=dict(type='float', default=3.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p['offset'] < 0 or not 0 <= p['timeout'] <= MAX_TIMEOUT_S:
        module.fail_json(msg='offset must be 0 or more and timeout between 0 and %d seconds (got offset=%s, '
                             'timeout=%s)' % (MAX_TIMEOUT_S, p['offset'], p['timeout']))
    try:
        seen = watch(p['progress_file'], p['results_file'], p['offset'], p['timeout'])
    except NoSuchJobError:
        module.fail_json(msg='no asynchronous job results file at %s' % p['results_file'],
                         remedy='Pass results_file of the result registered by the task that started virt_evacuate '
                                'with async and poll: 0, on the same host.')
    except OSError as exc:
        module.fail_json(msg='cannot read %s: %s' % (exc.filename or p['progress_file'], exc.strerror or exc))
    if seen['result'] is None:
        del seen['result']
    module.exit_json(changed=False, **seen)


if __name__ == '__main__':
    main()
