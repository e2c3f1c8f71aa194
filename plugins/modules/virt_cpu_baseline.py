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

import xml.etree.ElementTree as ET

from ansible_collections.kvmops.migration.plugins.module_utils._client import (
    DomainNotFoundError,
    InvalidInputError,
    KvmopsError,
    KvmopsModule,
    libvirt,
    translated,
)

COMPARE_RESULTS = {-1: 'error', 0: 'incompatible', 1: 'identical', 2: 'superset'}
VIR_DOMAIN_XML_SECURE = 1
VIR_DOMAIN_XML_INACTIVE = 2
VIR_CONNECT_BASELINE_CPU_MIGRATABLE = 2
# Children of a guest's <cpu> that describe the guest's shape, not the CPU model: kept.
KEPT_CPU_CHILDREN = ('topology', 'numa', 'cache', 'maxphysaddr')


def _flag(name, default):
    return getattr(libvirt, name, default) if libvirt is not None else default


def _parse(text, what):
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise InvalidInputError('%s is not valid XML: %s' % (what, exc), details=dict(xml=text))


def host_cpu_xml(conn, params):
    """This hypervisor's host-model CPU as a <cpu mode='custom' match='exact'> definition."""
    with translated('Reading domain capabilities for virt_type %s' % params['virt_type']):
        caps = conn.getDomainCapabilities(params['emulator'], params['arch'], params['machine'],
                                          params['virt_type'], 0)
    root = _parse(caps, 'Domain capabilities')
    mode = root.find("./cpu/mode[@name='host-model']")
    if mode is None or mode.get('supported') != 'yes' or mode.find('model') is None:
        raise KvmopsError(
            'This hypervisor does not support the host-model CPU for virt_type %s' % params['virt_type'],
            remedy='Use the virt_type the guests run with (kvm needs /dev/kvm; qemu is TCG emulation).')
    cpu = ET.Element('cpu', {'mode': 'custom', 'match': 'exact'})
    for child in mode:
        if child.tag in ('model', 'vendor', 'feature'):
            cpu.append(child)
    return ET.tostring(cpu, encoding='unicode')


def describe_cpu(cpu):
    """(model, vendor, sorted features) of a <cpu> element."""
    model = cpu.find('model')
    vendor = cpu.find('vendor')
    features = sorted((f.get('policy', 'require'), f.get('name')) for f in cpu.findall('feature'))
    return (model.text.strip() if model is not None and model.text else None,
            vendor.text.strip() if vendor is not None and vendor.text else None,
            features)


def cpu_signature(cpu):
    """What decides the guest-visible CPU: compared to decide whether a guest needs a change."""
    if cpu is None:
        return None
    model = cpu.find('model')
    return (cpu.get('mode', 'custom'), cpu.get('match', 'exact'),
            model.get('fallback', 'allow') if model is not None else None) + describe_cpu(cpu)


def guest_cpu(existing, baseline):
    """A guest <cpu> element: the baseline's model/vendor/features plus the guest's own shape."""
    cpu = ET.Element('cpu', {'mode': 'custom', 'match': 'exact'})
    if existing is not None and existing.get('check'):
        cpu.set('check', existing.get('check'))
    for child in baseline:
        if child.tag in ('model', 'vendor', 'feature'):
            new = ET.SubElement(cpu, child.tag, dict(child.attrib))
            new.text = child.text
    model = cpu.find('model')
    if model is not None:
        model.set('fallback', 'forbid')
    for child in (existing if existing is not None else []):
        if child.tag in KEPT_CPU_CHILDREN:
            cpu.append(child)
    return cpu


def _indent(elem):
    if hasattr(ET, 'indent'):
        ET.indent(elem, space='  ')
    return ET.tostring(elem, encoding='unicode')


def apply_to_domain(kvm, name, baseline, result):
    client = kvm.client
    try:
        dom = client.lookup_domain(name=name)
    except DomainNotFoundError:
        if kvm.params['missing_domains'] == 'fail':
            raise
        return dict(name=name, found=False, changed=False, restart_required=False)
    with translated('Reading the definition of domain %s' % name):
        persistent = dom.isPersistent()
        active = dom.isActive()
        xml = dom.XMLDesc(_flag('VIR_DOMAIN_XML_INACTIVE', VIR_DOMAIN_XML_INACTIVE)
                          | _flag('VIR_DOMAIN_XML_SECURE', VIR_DOMAIN_XML_SECURE))
    if not persistent:
        raise InvalidInputError('Domain %s is transient: it has no persistent definition to change' % name,
                                remedy='Define the guest persistently (virsh dumpxml + define) first.')
    root = _parse(xml, 'The definition of domain %s' % name)
    old = root.find('cpu')
    new = guest_cpu(old, baseline)
    if cpu_signature(old) == cpu_signature(new):
        return dict(name=name, found=True, changed=False, restart_required=False)
    before = _indent(ET.fromstring(ET.tostring(old))) if old is not None else ''
    if old is not None:
        index = list(root).index(old)
        root.remove(old)
        root.insert(index, new)
    else:
        # <cpu> belongs after <vcpu>/<os>/<features>; libvirt accepts it anywhere, keep it readable.
        anchor = root.find('features') if root.find('features') is not None else root.find('os')
        root.insert(list(root).index(anchor) + 1 if anchor is not None else len(root), new)
    after = _indent(ET.fromstring(ET.tostring(new)))
    if not kvm.check_mode:
        with translated('Defining domain %s with the baseline CPU' % name):
            client.conn.defineXML(ET.tostring(root, encoding='unicode'))
    result['diff'].append(dict(before_header='%s <cpu>' % name, after_header='%s <cpu>' % name,
                               before=before + '\n', after=after + '\n'))
    return dict(name=name, found=True, changed=True, restart_required=bool(active))


def run_module(kvm):
    params = kvm.params
    cpus = list(params['cpus'])
    # Validate the input before touching libvirt.
    for index, text in enumerate(cpus):
        if _parse(text, 'cpus[%d]' % index).tag != 'cpu':
            raise InvalidInputError('cpus[%d] is not a <cpu> definition' % index)
    if not cpus and not params['include_host']:
        raise InvalidInputError('No CPU to compute a baseline from: give cpus or set include_host=true')
    conn = kvm.client.conn
    own = host_cpu_xml(conn, params)
    if params['include_host']:
        cpus.append(own)
    flags = 0
    if params['migratable']:
        flags |= _flag('VIR_CONNECT_BASELINE_CPU_MIGRATABLE', VIR_CONNECT_BASELINE_CPU_MIGRATABLE)
    with translated('Computing the hypervisor CPU baseline of %d CPU(s)' % len(cpus)):
        baseline_xml = conn.baselineHypervisorCPU(params['emulator'], params['arch'], params['machine'],
                                                  params['virt_type'], cpus, flags)
    baseline = _parse(baseline_xml, 'The baseline CPU')
    model, vendor, features = describe_cpu(baseline)
    with translated('Comparing this hypervisor with the baseline CPU'):
        code = conn.compareHypervisorCPU(params['emulator'], params['arch'], params['machine'],
                                         params['virt_type'], baseline_xml, 0)
    comparison = COMPARE_RESULTS.get(code, str(code))
    compatible = comparison in ('identical', 'superset')
    result = dict(changed=False, host_cpu=own, compatible=compatible, comparison=comparison, domains=[],
                  baseline=dict(xml=baseline_xml, model=model, vendor=vendor, cpu_count=len(cpus),
                                features=[dict(name=n, policy=p) for p, n in features]))
    if not compatible and params['require_compatible']:
        raise KvmopsError('This hypervisor cannot run the baseline CPU %s (comparison: %s)' % (model, comparison),
                          remedy='Leave this hypervisor out of the group, or compute the baseline with its CPU included.',
                          details=dict(baseline=result['baseline'], comparison=comparison))
    result['diff'] = []
    for name in params['domains']:
        entry = apply_to_domain(kvm, name, baseline, result)
        result['domains'].append(entry)
        result['changed'] = result['changed'] or entry['changed']
    if not kvm.module._diff:
        result.pop('diff')
    return result


def main():
    KvmopsModule(
        argument_spec=dict(
            cpus=dict(type='list', elements='str', default=[]),
            include_host=dict(type='bool', default=True),
            virt_type=dict(type='str', default='kvm'),
            arch=dict(type='str'),
            machine=dict(type='str'),
            emulator=dict(type='path'),
            migratable=dict(type='bool', default=True),
            require_compatible=dict(type='bool', default=True),
            domains=dict(type='list', elements='str', default=[]),
            missing_domains=dict(type='str', choices=['ignore', 'fail'], default='ignore'),
        ),
        supports_check_mode=True,
    ).run(run_module)


if __name__ == '__main__':
    main()
