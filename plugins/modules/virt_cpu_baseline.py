#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: virt_cpu_baseline
short_description: Compute the CPU model a group of hypervisors can all run, optionally give it to guests
version_added: 0.1.0
description:
  - Reads the C(host-model) CPU of the hypervisor the module runs on from libvirt's domain
    capabilities (C(virConnectGetDomainCapabilities)) and returns it as a C(<cpu>) definition
    in RV(host_cpu), so that the CPUs of several hypervisors can be collected.
  - Computes, with libvirt's hypervisor CPU baseline (C(virConnectBaselineHypervisorCPU)),
    the most capable CPU model compatible with every CPU given in O(cpus) (plus this
    hypervisor's own CPU when O(include_host=true)) that this hypervisor can provide.
  - Features of O(cpus) this hypervisor's libvirt does not know (a CPU read by a newer libvirt)
    are left out of the baseline and reported in RV(baseline.ignored_features). Compute the
    baseline of a mixed group on the hypervisor with the oldest libvirt.
  - Compares the baseline with this hypervisor (C(virConnectCompareHypervisorCPU)) and fails
    when the hypervisor cannot run it, unless O(require_compatible=false).
  - Optionally writes the baseline (C(mode='custom') C(match='exact'), model with
    C(fallback='forbid'), vendor and features) into the persistent definitions of the guests
    named in O(domains). Topology, NUMA and cache settings of the guest's C(<cpu>) are kept.
    Running guests use the new CPU after their next cold boot (RV(domains[].restart_required)).
  - Never parses C(virsh) output; everything goes through the libvirt API.
author:
  - kvmops contributors (@kvmops)
extends_documentation_fragment:
  - kvmops.migration.connection
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode guest definitions are compared but not changed.
  diff_mode:
    support: full
    details: The diff shows each changed guest's C(<cpu>) element before and after.
  platform:
    platforms: posix
options:
  cpus:
    description:
      - CPU definitions (C(<cpu>) XML documents) of the other hypervisors of the group, for
        example the RV(host_cpu) values this module returned on each of them.
    type: list
    elements: str
    default: []
  include_host:
    description:
      - Include this hypervisor's own C(host-model) CPU in the baseline.
      - Set to V(false) when O(cpus) already holds every hypervisor's CPU, or to re-check a
        computed baseline on another hypervisor (pass the baseline as the only entry of O(cpus)).
    type: bool
    default: true
  virt_type:
    description:
      - Virtualization type the baseline is computed for, as in C(<domain type=...>).
      - V(kvm) for hardware virtualization, V(qemu) for TCG emulation.
    type: str
    default: kvm
  arch:
    description:
      - Guest architecture, for example V(x86_64). libvirt chooses the host's when omitted.
    type: str
  machine:
    description:
      - Machine type, for example V(pc) or V(q35). libvirt chooses the default when omitted.
    type: str
  emulator:
    description:
      - Path to the QEMU emulator binary. libvirt chooses it from O(arch) when omitted.
    type: path
  migratable:
    description:
      - Drop features that block migration (C(VIR_CONNECT_BASELINE_CPU_MIGRATABLE)).
    type: bool
    default: true
  require_compatible:
    description:
      - Fail when this hypervisor cannot run the computed baseline.
    type: bool
    default: true
  domains:
    description:
      - Names of guests defined on this hypervisor whose persistent definition gets the
        baseline CPU. Guests not defined here are reported with RV(domains[].found=false)
        and skipped, unless O(missing_domains=fail).
    type: list
    elements: str
    default: []
  missing_domains:
    description:
      - What to do about a guest in O(domains) that is not defined on this hypervisor.
    type: str
    choices: [ignore, fail]
    default: ignore
notes:
  - The C(host-model) CPU must be supported for O(virt_type) on every hypervisor (it is for
    V(kvm) on x86 hosts with KVM, and for V(qemu) with QEMU's TCG CPU model list).
  - Baselining a single CPU that already is a baseline returns it unchanged, so running the
    module again with the published baseline is idempotent.
seealso:
  - name: libvirt virConnectBaselineHypervisorCPU
    description: The libvirt API this module calls.
    link: https://libvirt.org/html/libvirt-libvirt-host.html#virConnectBaselineHypervisorCPU
'''

EXAMPLES = r'''
- name: Read each hypervisor's CPU
  kvmops.migration.virt_cpu_baseline:
    virt_type: kvm
  register: host_cpu

- name: Compute the baseline of the group on one hypervisor
  kvmops.migration.virt_cpu_baseline:
    cpus: "{{ ansible_play_hosts | map('extract', hostvars, ['host_cpu', 'host_cpu']) | list }}"
    include_host: false
  run_once: true
  register: group_baseline

- name: Check the baseline on every hypervisor and give it to two guests
  kvmops.migration.virt_cpu_baseline:
    cpus:
      - "{{ group_baseline.baseline.xml }}"
    include_host: false
    domains:
      - web1
      - db1
'''

RETURN = r'''
host_cpu:
  description: This hypervisor's C(host-model) CPU as a C(<cpu mode='custom' match='exact'>) definition.
  returned: always
  type: str
  sample: "<cpu mode='custom' match='exact'><model fallback='forbid'>EPYC</model>...</cpu>"
baseline:
  description: The computed baseline CPU.
  returned: always
  type: dict
  contains:
    xml:
      description: The baseline C(<cpu>) definition as returned by libvirt.
      type: str
    model:
      description: CPU model name.
      type: str
      sample: Broadwell-noTSX-IBRS
    vendor:
      description: CPU vendor, when libvirt reports one.
      type: str
      sample: Intel
    features:
      description: Features the baseline adds to or removes from the model.
      type: list
      elements: dict
      sample: [{"name": "vmx", "policy": "require"}, {"name": "invtsc", "policy": "disable"}]
    cpu_count:
      description: Number of CPU definitions the baseline was computed from.
      type: int
      sample: 3
    ignored_features:
      description:
        - Features of the given CPUs that this hypervisor's libvirt does not know (CPUs read by a
          newer libvirt, in a cluster mid-upgrade). No guest of this hypervisor can use them, so
          they were left out before the baseline was computed. A CPU whose model this libvirt
          does not know (a newer CPU generation) is left out whole, reported as C(model NAME);
          checking the baseline on every host (O(require_compatible)) then proves that host runs it.
      type: list
      elements: str
      sample: [fdp-excptn-only]
libvirt_version:
  description:
    - This hypervisor's libvirt version as libvirt encodes it (major * 1000000 + minor * 1000 + release).
    - The cpu_baseline role computes the group's baseline on the hypervisor with the oldest libvirt.
  returned: always
  type: int
  sample: 9000000
compatible:
  description: Whether this hypervisor can run the baseline.
  returned: always
  type: bool
comparison:
  description: How this hypervisor compares with the baseline.
  returned: always
  type: str
  sample: identical
domains:
  description: One entry per guest named in O(domains).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Guest name.
      type: str
    found:
      description: Whether the guest is defined on this hypervisor.
      type: bool
    changed:
      description: Whether its persistent definition was (or in check mode would be) changed.
      type: bool
    restart_required:
      description: The guest runs and uses the new CPU only after its next cold boot.
      type: bool
'''

from ansible_collections.kvmops.migration.plugins.module_utils._module_wrapper import KvmopsModule
from ansible_collections.kvmops.migration.plugins.module_utils._cpu_baseline import (
    ARGUMENT_SPEC,
    CpuBaselineManager,
)


def run_module(kvm):
    return CpuBaselineManager(kvm).run()


def main():
    KvmopsModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True).run(run_module)


if __name__ == '__main__':
    main()
