# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_cpu_baseline: the CPU model a group of hypervisors can all run, and giving it to guests.

Pure parts (tested without libvirt): reading the host-model CPU out of domain capabilities, what
decides a guest-visible CPU, the guest ``<cpu>`` built from a baseline (the guest's topology, NUMA
and cache kept). ``CpuBaselineManager`` asks libvirt for the capabilities, the baseline and the
comparison, and redefines the guests.

Private to kvmops.migration: the API may change without notice.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    DomainNotFoundError,
    InvalidInputError,
    KvmopsError,
    is_libvirt_error,
    libvirt_error_details,
    translate_libvirt_error,
    translated,
)
from ansible_collections.kvmops.migration.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_CONNECT_BASELINE_CPU_MIGRATABLE,
    VIR_DOMAIN_XML_INACTIVE,
    VIR_DOMAIN_XML_SECURE,
)

COMPARE_RESULTS = {-1: 'error', 0: 'incompatible', 1: 'identical', 2: 'superset'}
# Children of a guest's <cpu> that describe the guest's shape, not the CPU model: kept.
KEPT_CPU_CHILDREN = ('topology', 'numa', 'cache', 'maxphysaddr')
# Children of a CPU definition that make the CPU model.
MODEL_CPU_CHILDREN = ('model', 'vendor', 'feature')

ARGUMENT_SPEC = dict(
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
)


@dataclass(frozen=True)
class Hypervisor:
    """What libvirt's hypervisor CPU calls are asked about (None: libvirt chooses)."""

    virt_type: str
    emulator: str | None = None
    arch: str | None = None
    machine: str | None = None

    @classmethod
    def from_params(cls, params):
        return cls(virt_type=params['virt_type'], emulator=params['emulator'], arch=params['arch'],
                   machine=params['machine'])

    def call_args(self):
        """The leading arguments of getDomainCapabilities, baselineHypervisorCPU, compareHypervisorCPU."""
        return (self.emulator, self.arch, self.machine, self.virt_type)


def parse_xml(text, what):
    """The XML ``text`` parsed, or an input error naming ``what`` it is."""
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise InvalidInputError('%s is not valid XML: %s' % (what, exc), details=dict(xml=text))


def validate_cpus(cpus, include_host):
    """Refuse CPU definitions that are not <cpu> XML, or nothing to baseline, before libvirt is touched."""
    for index, text in enumerate(cpus):
        if parse_xml(text, 'cpus[%d]' % index).tag != 'cpu':
            raise InvalidInputError('cpus[%d] is not a <cpu> definition' % index)
    if not cpus and not include_host:
        raise InvalidInputError('No CPU to compute a baseline from: give cpus or set include_host=true')


def unknown_cpu_name(message):
    """(``feature`` or ``model``, name) of libvirt's "Unknown CPU feature X" / "Unknown CPU model X"
    (a CPU definition of a newer libvirt), or None."""
    match = re.search(r'Unknown CPU (feature|model) (\S+)', message or '')
    return (match.group(1), match.group(2)) if match else None


def unknown_feature(message):
    """The feature named by libvirt's "Unknown CPU feature X", or None."""
    found = unknown_cpu_name(message)
    return found[1] if found and found[0] == 'feature' else None


def cpu_model(cpu_xml):
    """The <model> name of a <cpu> definition, or None."""
    model = parse_xml(cpu_xml, 'A CPU definition').find('model')
    return model.text.strip() if model is not None and model.text else None


def without_feature(cpu_xml, name):
    """The <cpu> definition ``cpu_xml`` without the feature ``name`` (unchanged when it has none)."""
    cpu = parse_xml(cpu_xml, 'A CPU definition')
    dropped = [feature for feature in cpu.findall('feature') if feature.get('name') == name]
    if not dropped:
        return cpu_xml
    for feature in dropped:
        cpu.remove(feature)
    return ET.tostring(cpu, encoding='unicode')


def host_model_cpu(capabilities_xml, virt_type):
    """The host-model CPU of domain capabilities as a <cpu mode='custom' match='exact'> definition."""
    root = parse_xml(capabilities_xml, 'Domain capabilities')
    mode = root.find("./cpu/mode[@name='host-model']")
    if mode is None or mode.get('supported') != 'yes' or mode.find('model') is None:
        raise KvmopsError(
            'This hypervisor does not support the host-model CPU for virt_type %s' % virt_type,
            remedy='Use the virt_type the guests run with (kvm needs /dev/kvm; qemu is TCG emulation).')
    cpu = ET.Element('cpu', {'mode': 'custom', 'match': 'exact'})
    for child in mode:
        if child.tag in MODEL_CPU_CHILDREN:
            cpu.append(child)
    return ET.tostring(cpu, encoding='unicode')


def describe_cpu(cpu):
    """(model, vendor, sorted (policy, feature) pairs) of a <cpu> element."""
    model = cpu.find('model')
    vendor = cpu.find('vendor')
    features = sorted((feature.get('policy', 'require'), feature.get('name')) for feature in cpu.findall('feature'))
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
        if child.tag in MODEL_CPU_CHILDREN:
            new = ET.SubElement(cpu, child.tag, dict(child.attrib))
            new.text = child.text
    model = cpu.find('model')
    if model is not None:
        model.set('fallback', 'forbid')
    for child in (existing if existing is not None else []):
        if child.tag in KEPT_CPU_CHILDREN:
            cpu.append(child)
    return cpu


def with_guest_cpu(domain, baseline):
    """(the <cpu> before as text, the <cpu> after as text) after putting the baseline into the
    parsed ``domain`` definition in place; None when the guest's CPU already is the baseline."""
    old = domain.find('cpu')
    new = guest_cpu(old, baseline)
    if cpu_signature(old) == cpu_signature(new):
        return None
    before = _indented(old) if old is not None else ''
    if old is not None:
        index = list(domain).index(old)
        domain.remove(old)
        domain.insert(index, new)
    else:
        # <cpu> belongs after <vcpu>/<os>/<features>; libvirt accepts it anywhere, keep it readable.
        anchor = domain.find('features') if domain.find('features') is not None else domain.find('os')
        domain.insert(list(domain).index(anchor) + 1 if anchor is not None else len(domain), new)
    return before, _indented(new)


def _indented(element):
    """An indented copy of ``element`` as text (the definition itself is left as it is)."""
    copy = ET.fromstring(ET.tostring(element))
    ET.indent(copy, space='  ')
    return ET.tostring(copy, encoding='unicode')


def baseline_cpu(conn, call_args, cpus, migratable=True):
    """(baseline XML, features left out) of ``cpus`` computed by the libvirt behind ``conn``
    (``call_args``: ``Hypervisor.call_args``). A CPU read by a newer libvirt can name features this
    libvirt does not know (a cluster mid-upgrade): no guest of this host can use them, so they
    cannot be part of a baseline this host runs; they are left out of the inputs and reported."""
    flags = VIR_CONNECT_BASELINE_CPU_MIGRATABLE if migratable else 0
    ignored = []
    while True:
        try:
            return conn.baselineHypervisorCPU(*call_args, cpus, flags), ignored
        except Exception as exc:  # pylint: disable=broad-except
            if not is_libvirt_error(exc):
                raise
            kind, name = unknown_cpu_name(libvirt_error_details(exc)['libvirt_error_message']) or (None, None)
            if kind == 'model' and 'model ' + name not in ignored:
                # A CPU that a newer libvirt names by a model this one does not know (a newer CPU
                # generation): this libvirt cannot read it, so it is left out and reported. Safe:
                # the cpu_baseline role then checks the baseline on every host, that one included
                # (require_compatible), and refuses a baseline a host cannot run.
                kept = [cpu for cpu in cpus if cpu_model(cpu) != name]
                if kept:
                    ignored.append('model ' + name)
                    cpus = kept
                    continue
            if kind != 'feature' or name in ignored:
                raise translate_libvirt_error(
                    exc, 'Computing the hypervisor CPU baseline of %d CPU(s)' % len(cpus),
                    remedy='Compute the baseline on the hypervisor with the oldest libvirt of the group '
                           '(the cpu_baseline role does), with the virt_type its guests run with.') from exc
            ignored.append(name)
            cpus = [without_feature(cpu, name) for cpu in cpus]


class CpuBaselineManager:
    """virt_cpu_baseline's run: baseline of the given CPUs (and this host's), checked here, given to guests."""

    def __init__(self, kvm):
        self.kvm = kvm
        self.params = kvm.params
        self.hypervisor = Hypervisor.from_params(kvm.params)
        self.diff = DifferenceTracker()

    def run(self):
        params = self.params
        cpus = list(params['cpus'])
        validate_cpus(cpus, params['include_host'])
        conn = self.kvm.client.conn
        with translated('Reading domain capabilities for virt_type %s' % params['virt_type']):
            capabilities = conn.getDomainCapabilities(*self.hypervisor.call_args(), 0)
        own = host_model_cpu(capabilities, params['virt_type'])
        if params['include_host']:
            cpus.append(own)
        baseline_xml, ignored = self.baseline(conn, cpus)
        baseline = parse_xml(baseline_xml, 'The baseline CPU')
        model, vendor, features = describe_cpu(baseline)
        with translated('Comparing this hypervisor with the baseline CPU'):
            code = conn.compareHypervisorCPU(*self.hypervisor.call_args(), baseline_xml, 0)
        comparison = COMPARE_RESULTS.get(code, str(code))
        compatible = comparison in ('identical', 'superset')
        with translated('Reading the libvirt version'):
            libvirt_version = conn.getLibVersion()
        result = dict(changed=False, host_cpu=own, compatible=compatible, comparison=comparison, domains=[],
                      libvirt_version=libvirt_version,
                      baseline=dict(xml=baseline_xml, model=model, vendor=vendor, cpu_count=len(cpus),
                                    features=[dict(name=name, policy=policy) for policy, name in features],
                                    ignored_features=ignored))
        if not compatible and params['require_compatible']:
            raise KvmopsError(
                'This hypervisor cannot run the baseline CPU %s (comparison: %s)' % (model, comparison),
                remedy='Leave this hypervisor out of the group, or compute the baseline with its CPU included.',
                details=dict(baseline=result['baseline'], comparison=comparison))
        for name in params['domains']:
            entry = self.apply_to_domain(name, baseline)
            result['domains'].append(entry)
            result['changed'] = result['changed'] or entry['changed']
        return self.diff.add_to(result, self.kvm.diff_mode)

    def baseline(self, conn, cpus):
        """(baseline XML, features left out): ``baseline_cpu`` for this module's hypervisor."""
        return baseline_cpu(conn, self.hypervisor.call_args(), cpus, self.params['migratable'])

    def apply_to_domain(self, name, baseline):
        """Give the guest ``name`` the baseline CPU in its persistent definition; its entry of RV(domains)."""
        client = self.kvm.client
        try:
            dom = client.lookup_domain(name=name)
        except DomainNotFoundError:
            if self.params['missing_domains'] == 'fail':
                raise
            return dict(name=name, found=False, changed=False, restart_required=False)
        with translated('Reading the definition of domain %s' % name):
            persistent = dom.isPersistent()
            active = dom.isActive()
            xml = dom.XMLDesc(VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE)
        if not persistent:
            raise InvalidInputError('Domain %s is transient: it has no persistent definition to change' % name,
                                    remedy='Define the guest persistently (virsh dumpxml + define) first.')
        domain = parse_xml(xml, 'The definition of domain %s' % name)
        change = with_guest_cpu(domain, baseline)
        if change is None:
            return dict(name=name, found=True, changed=False, restart_required=False)
        if not self.kvm.check_mode:
            with translated('Defining domain %s with the baseline CPU' % name):
                client.conn.defineXML(ET.tostring(domain, encoding='unicode'))
        before, after = change
        self.diff.add('%s <cpu>' % name, before + '\n', after + '\n')
        return dict(name=name, found=True, changed=True, restart_required=bool(active))
