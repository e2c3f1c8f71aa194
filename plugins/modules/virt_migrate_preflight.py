#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: virt_migrate_preflight
short_description: Check, before migrating, everything that would make a libvirt migration fail
version_added: 0.1.0
description:
  - Runs on the B(source) hypervisor and checks a migration of its guests to O(dest) without changing anything.
  - "Connectivity: SSH to the destination, a libvirt connection over O(transport), and that the destination is
    another host (hostname and host UUID)."
  - "Versions: libvirt and QEMU on the destination are not older than here (warn otherwise); each guest's
    architecture, domain type, machine type and emulator path are offered by the destination."
  - "CPU: each guest's live CPU definition (and its persistent one, when different) is checked with
    compareHypervisorCPU on the destination; an incompatible CPU fails with the missing features and a
    baseline CPU of both hosts as remedy."
  - "Storage: for each disk, a probe file written next to the image here must be readable on the destination
    (over the SSH session, or through the destination's libvirt storage pool). Shared storage must also be
    a filesystem libvirt accepts as shared, with a safe cache mode. Local disks get a C(warn) naming the disk
    when the destination has a pool with room for a copy_storage migration, C(fail) otherwise."
  - "Network: each interface's libvirt network is defined and active on the destination, each bridge or
    direct device exists there."
  - "Firewall: real TCP connects from this host to the destination's SSH port, the libvirt port for tcp/tls,
    and the destination's migration port range (read from its qemu.conf). Nothing listens on migration ports
    while idle, so a short-lived listener is started on every free port of the range on the destination for
    the duration of the test."
  - "Capacity: destination free memory covers each guest (and all of them) plus O(memory_margin_mib);
    vCPU overcommit warning."
  - Optionally (O(measure_bandwidth)) a few seconds of TCP throughput through a migration port and, meanwhile,
    the running guests' dirty rates (libvirt's page sampling, nothing migrated), used to predict each guest's
    migration - its time, downtime and the strategy that M(kvmops.migration.virt_migrate) with its default
    C(strategy=auto) would start, or why it would refuse (RV(estimates)).
  - The only thing written is one small probe file per disk directory on the source, removed at the end;
    the destination only gets the short-lived listener process of the SSH session.
  - Every check appears in RV(checks) with a remedy; the module fails only as O(fail_on) says.
  - See C(docs/preflight.md) in the collection for every check and its remedy.
author:
  - kvmops contributors (@kvmops)
extends_documentation_fragment:
  - kvmops.migration.connection
  - kvmops.migration.destination
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module never changes anything, so check mode runs the same checks.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  guests:
    description:
      - Names of the guests to check. Default is every running guest on this host.
    type: list
    elements: str
    default: []
  fail_on:
    description:
      - C(fail) fails the task when any check failed, C(warn) also when any warned, C(never) only reports.
    type: str
    choices: [fail, warn, never]
    default: fail
  measure_bandwidth:
    description:
      - Measure TCP throughput to the destination through a migration port for O(bandwidth_seconds), measure the
        running guests' dirty rates for O(dirty_rate_seconds) meanwhile, and predict each guest's migration from
        them (RV(estimates)).
    type: bool
    default: false
  bandwidth_seconds:
    description:
      - Duration of the bandwidth test, 1 to 30 seconds.
    type: float
    default: 3
  dirty_rate_seconds:
    description:
      - Seconds (1 to 10) that libvirt samples the running guests' dirty rates, all at once, with
        O(measure_bandwidth).
    type: int
    default: 1
  min_bandwidth_mib_s:
    description:
      - Warn when the measured bandwidth is below this many MiB/s.
    type: float
  memory_margin_mib:
    description:
      - Memory the destination must keep free on top of the guests' memory, in MiB.
    type: int
    default: 256
  vcpu_overcommit_ratio:
    description:
      - Warn when the destination would run more than this many vCPUs per host CPU.
    type: float
    default: 4.0
  storage_probe:
    description:
      - How to read the probe file on the destination. C(ssh) reads it in the SSH session, C(libvirt) through
        the destination's storage pool whose target is the disk's directory (refresh, volume lookup,
        download), C(auto) tries SSH first, then libvirt.
    type: str
    choices: [auto, ssh, libvirt]
    default: auto
  ssh_options:
    description:
      - Extra options for the C(ssh) client used to reach the destination, e.g. C(["-o", "Port=2222"]).
      - The session runs with C(BatchMode=yes); host keys are verified as the ssh configuration of the user
        running the module says.
    type: list
    elements: str
    default: []
  connect_timeout:
    description:
      - Seconds to wait for SSH, for libvirt and for each TCP connect to the destination.
    type: int
    default: 5
notes:
  - O(dest) may carry a user, as C(user@host-b) or in a URI such as C(qemu+ssh://root@host-b/system); the SSH checks
    use it too. A URI's scheme decides the transport.
  - With O(transport=tcp) or O(transport=tls) the firewall check also tests the libvirt port (C(tcp_port)/C(tls_port)
    of the destination libvirtd.conf, default 16509/16514).
  - The destination needs C(python3) (any version) for the SSH helper; the libvirt bindings are only needed on
    the source.
  - A bandwidth test on a busy network competes with real traffic; keep O(bandwidth_seconds) short.
seealso:
  - module: kvmops.migration.virt_blockcopy
'''

EXAMPLES = r'''
- name: Check that all running guests of host-a can move to host-b
  kvmops.migration.virt_migrate_preflight:
    dest: host-b
  register: preflight

- name: Check two guests over TLS, report without failing, and measure the link
  kvmops.migration.virt_migrate_preflight:
    dest: host-b
    transport: tls
    guests: [web1, db1]
    fail_on: never
    measure_bandwidth: true
  register: preflight

- name: Show what to fix
  ansible.builtin.debug:
    msg: "{{ item.name }} {{ item.guest | default('') }}: {{ item.detail }} -> {{ item.remedy }}"
  loop: "{{ preflight.checks | rejectattr('status', 'eq', 'ok') }}"
'''

RETURN = r'''
checks:
  description: Every check, in the order run.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Check name, C(<category>.<what>), e.g. C(firewall.migration_ports), C(storage.disk).
      type: str
    category:
      description: One of guest, connectivity, versions, cpu, storage, network, firewall, capacity, bandwidth.
      type: str
    guest:
      description: The guest the check is about; absent for host-level checks.
      type: str
      returned: for per-guest checks
    status:
      description: C(ok), C(warn) or C(fail).
      type: str
    detail:
      description: What was found.
      type: str
    remedy:
      description: What to do about it; null when the status is ok.
      type: str
  sample:
    - name: firewall.migration_ports
      category: firewall
      status: fail
      detail: "64 of 64 migration ports blocked from here to host-c: 49152-49215 (no route to host (a firewall REJECT, or routing))"
      remedy: "Open TCP 49152-49215 on the destination host-c from this host: firewall-cmd --permanent --add-port=49152-49215/tcp && firewall-cmd --reload ..."
summary:
  description: Counts and overall verdict.
  returned: always
  type: dict
  contains:
    verdict:
      description: C(fail) if any check failed, else C(warn) if any warned, else C(ok).
      type: str
    total:
      description: Number of checks.
      type: int
    ok:
      description: Checks that passed.
      type: int
    warn:
      description: Checks that warned.
      type: int
    fail:
      description: Checks that failed.
      type: int
    failed_checks:
      description: C(name(guest)) of the failed checks.
      type: list
      elements: str
    warned_checks:
      description: C(name(guest)) of the checks that warned.
      type: list
      elements: str
    skipped:
      description: Groups of checks that could not run, and why.
      type: list
      elements: str
source:
  description: This host as its libvirt reports it.
  returned: always
  type: dict
  sample: {hostname: host-a, uuid: 6022257a-248a-4274-adcb-0bb63ea7dd13, libvirt: 9.0.0, qemu: 7.2.22}
destination:
  description: The destination URI and what it reported (null fields when unreachable).
  returned: always
  type: dict
  sample: {uri: "qemu+ssh://host-b/system", host: host-b, transport: ssh, hostname: host-b,
           uuid: 1b0c7c52-fc53-4e2b-9a60-0d4d6cf39f38, libvirt: 9.0.0, qemu: 7.2.22, migration_ports: 49152-49215}
guests:
  description: Names of the guests checked.
  returned: always
  type: list
  elements: str
bandwidth:
  description: Result of the bandwidth test (C(error) when it could not run); null when not requested.
  returned: always
  type: dict
  sample: {bytes: 1073741824, seconds: 3.02, mib_s: 339.1, port: 49152}
estimates:
  description:
    - Per guest, its predicted migration over the measured bandwidth with its measured dirty rate and its
      migration history, under M(kvmops.migration.virt_migrate)'s default limits. Empty without O(measure_bandwidth).
    - C(seconds) - the predicted time of the strategy C(strategy=auto) would start, plus the disks to copy at the
      measured rate; when no allowed strategy meets the limits, or nothing could be predicted, a lower bound
      (memory and disks once over the link).
    - C(strategy) - V(precopy_steps), V(precopy), V(auto_converge), V(postcopy), V(refused) (C(remedies) says what
      would work) or V(unknown); C(sentence) says it in words; C(prediction) holds every strategy's predicted
      outcome (as M(kvmops.migration.virt_migrate) returns it).
  returned: always
  type: list
  elements: dict
  sample: [{guest: web1, memory_mib: 128.0, copy_storage_mib: 0.0, seconds: 0.6, strategy: precopy_steps,
            sentence: 'Plain pre-copy converges: about 0.6 s, 1 pass, downtime about 12 ms; ...', remedies: [],
            prediction: {verdict: precopy_steps}}]
dirty_rate:
  description:
    - The dirty-rate measurement behind RV(estimates) - C(seconds), C(probe_seconds), C(budget_s), C(elapsed_s), and
      C(results) per guest (C(status), C(dirty_rate_bps), C(vcpu_busy_share), C(measured_at), C(message), C(samples),
      C(working_set_bytes)); C(error) when it failed. Guests whose history gives no working set are sampled a second
      time, for three times as long (C(probe_seconds)) - where that sample dirtied clearly less than three times the
      first, the set saturated and C(working_set_bytes) is its size; otherwise the two rates are pooled.
  returned: always (null without O(measure_bandwidth))
  type: dict
timings:
  description:
    - Cumulative seconds at the end of each phase, and C(total_s); C(dirty_rate_s) is how long the dirty-rate
      measurement took (it runs beside the other checks).
  returned: always
  type: dict
'''

from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError, KvmopsError
from ansible_collections.kvmops.migration.plugins.module_utils._module_wrapper import KvmopsModule
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_runner import PreflightRunner
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_spec import (
    PREFLIGHT_ARGUMENT_SPEC as ARGUMENT_SPEC,
    failure_message,
    should_fail,
)


def validate(params):
    if not 1 <= params['bandwidth_seconds'] <= 30:
        raise InvalidInputError('bandwidth_seconds must be between 1 and 30, got %s' % params['bandwidth_seconds'])
    if not 1 <= params['dirty_rate_seconds'] <= 10:
        raise InvalidInputError('dirty_rate_seconds must be between 1 and 10, got %s' % params['dirty_rate_seconds'])
    if params['memory_margin_mib'] < 0:
        raise InvalidInputError('memory_margin_mib must be >= 0')
    if params['vcpu_overcommit_ratio'] <= 0:
        raise InvalidInputError('vcpu_overcommit_ratio must be > 0')
    if not 1 <= params['connect_timeout'] <= 120:
        raise InvalidInputError('connect_timeout must be between 1 and 120 seconds')


def run_module(kvm):
    params = kvm.params
    validate(params)
    result = PreflightRunner(kvm.client, params).run()
    result['changed'] = False
    if should_fail(result['checks'], params['fail_on']):
        raise KvmopsError(failure_message(result['checks'], params['fail_on']),
                          remedy='See the remedy of each failed check in checks.',
                          details=dict((k, v) for k, v in result.items() if k != 'changed'))
    return result


def main():
    KvmopsModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True).run(run_module)


if __name__ == '__main__':
    main()
