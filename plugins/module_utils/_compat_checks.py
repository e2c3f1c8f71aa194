# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Can the destination run this guest as it runs here? libvirt and QEMU versions, machine type, CPU.

Private module_utils file (leading underscore): its API may change without notice.

The questions a cluster mid-upgrade raises: a guest started on a newer QEMU carries a machine
type (``pc-i440fx-10.0``) and maybe CPU features an older destination does not have. This file
asks both libvirts (capabilities, versions, ``compareHypervisorCPU``, a baseline of both hosts'
CPUs when the guest's CPU does not fit); the verdicts are the preflight's pure checks in
``_preflight_checks``, so ``virt_migrate_preflight`` and ``virt_migrate``'s precheck judge alike.
"""

from __future__ import annotations

from ansible_collections.kvmops.migration.plugins.module_utils._errors import is_libvirt_error
from ansible_collections.kvmops.migration.plugins.module_utils._errors import KvmopsError
from ansible_collections.kvmops.migration.plugins.module_utils._cpu_baseline import baseline_cpu, unknown_cpu_name
from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import (
    cpu_model_of,
    host_model_cpu_xml,
    parse_capabilities,
    parse_domain,
)
from ansible_collections.kvmops.migration.plugins.module_utils._host_facts import lv_code, lv_message
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_checks import (
    CPU_COMPARE_INCOMPATIBLE,
    UNCOMPARABLE_CPU_MODES,
    check_cpu,
    check_machine_type,
    check_postcopy_versions,
    check_version,
)
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE,
    VIR_DOMAIN_XML_INACTIVE,
    VIR_ERR_CPU_INCOMPATIBLE,
)


# QEMU 7.2 aborts (bdrv_inactivate_recurse: "!(bs->open_flags & BDRV_O_INACTIVE)") when a guest that
# arrived paused by a migration is migrated again before it ran: libvirt lets QEMU take over the disks
# only when the guest runs, and the next migration's hand-over trips on disks never taken over. The
# guest's running state is lost (seen on the lab with virsh and with evacuate.yml then return.yml;
# docs/lab.md). Refused below QEMU 10.0, the lab's newer release; whether 8.x and 9.x do it was not
# checked here, so they are treated as 7.2.
PAUSED_ARRIVAL_SAFE_QEMU = 10000000


def paused_arrival_hazard(paused_now, history, source_qemu_version):
    """Why this guest must not migrate now (None: it may). It is paused, the newest migration in its
    history (newest first, ``_migration_history``) left it paused here, and the source's QEMU is one
    that aborts on such a guest. A resume since then is not visible here: the refusal then errs on
    the safe side, and says how to go on."""
    if not paused_now or not history:
        return None
    newest = history[0]
    if newest.strategy != 'paused' or not newest.completed:
        return None
    if source_qemu_version is None or source_qemu_version >= PAUSED_ARRIVAL_SAFE_QEMU:
        return None
    return ('it arrived paused by its last migration (%s) and QEMU %d.%d on this host aborts when such a '
            'guest is migrated again before it ran, losing its running state' % (
                newest.at, source_qemu_version // 1000000, source_qemu_version // 1000 % 1000))


def read_host(conn):
    """{caps, libvirt, qemu} of the host behind ``conn``: what the version and machine checks take."""
    return {'caps': parse_capabilities(conn.getCapabilities()), 'libvirt': conn.getLibVersion(),
            'qemu': conn.getVersion()}


def version_checks(source, destination):
    """libvirt's and QEMU's versions on both hosts (``read_host``): a destination older than the
    source is a warning here; what the guest needs of it is judged by the machine and CPU checks."""
    return [check_version('libvirt', source['libvirt'], destination['libvirt']),
            check_version('qemu', source['qemu'], destination['qemu'])]


def needs_baseline(comparison):
    """Whether a ``compare_cpu`` result says the destination cannot give the CPU (a baseline would)."""
    return comparison is not None and (
        comparison.get('result') == CPU_COMPARE_INCOMPATIBLE
        or comparison.get('error_code') == VIR_ERR_CPU_INCOMPATIBLE
        or unknown_cpu_name(comparison.get('message')) is not None)


class CpuQuestions:
    """The CPU comparisons and baselines of one destination, asked once per kind of guest."""

    def __init__(self, src_conn, dst_conn):
        self.src_conn = src_conn
        self.dst_conn = dst_conn
        self.baselines = {}

    def compare(self, guest, cpu):
        """{result} of compareHypervisorCPU on the destination, or {error_code, message}."""
        try:
            return {'result': self.dst_conn.compareHypervisorCPU(
                guest['emulator'], guest['arch'], guest['machine'], guest['virt_type'], cpu['xml'],
                VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE)}
        except Exception as exc:  # pylint: disable=broad-except
            if not is_libvirt_error(exc):
                raise
            return {'error_code': lv_code(exc), 'message': lv_message(exc)}

    def baseline_model(self, guest):
        """The model of a baseline of both hosts' host-model CPUs for this kind of guest (the remedy
        the CPU check names), or None when libvirt cannot say."""
        key = (guest['emulator'], guest['arch'], guest['machine'], guest['virt_type'])
        if key not in self.baselines:
            self.baselines[key] = self._baseline_model(key)
        return self.baselines[key]

    def _baseline_model(self, key):
        try:
            cpus = [xml for xml in (host_model_cpu_xml(conn.getDomainCapabilities(*key, 0))
                                    for conn in (self.src_conn, self.dst_conn)) if xml]
            if len(cpus) < 2:
                return None
            # On the destination: when it is the older libvirt, the model it chooses is one it
            # knows, and the features only the newer one knows are left out.
            return cpu_model_of(baseline_cpu(self.dst_conn, key, cpus, migratable=False)[0])
        except KvmopsError:
            return None
        except Exception as exc:  # pylint: disable=broad-except
            if not is_libvirt_error(exc):
                raise
            return None

    def checks(self, guest):
        """``cpu.model`` (the CPU of its current definition; left out when ``judge_live_cpu`` is false)
        and ``cpu.persistent`` (the definition it boots with next, when it differs) of ``guest``
        (``parse_domain`` plus ``inactive_cpu``)."""
        cpu, inactive = guest['cpu'], guest.get('inactive_cpu')
        comparable = cpu is not None and cpu['mode'] not in UNCOMPARABLE_CPU_MODES
        live = self.compare(guest, cpu) if comparable and guest.get('judge_live_cpu', True) else None
        persistent = None
        if inactive and inactive['mode'] not in UNCOMPARABLE_CPU_MODES and (not cpu or inactive['xml'] != cpu['xml']):
            persistent = self.compare(guest, inactive)
        baseline = None
        if needs_baseline(live) or needs_baseline(persistent) or (cpu and cpu['mode'] in UNCOMPARABLE_CPU_MODES):
            baseline = self.baseline_model(guest)
        checks = []
        if guest.get('judge_live_cpu', True):
            checks.append(check_cpu(guest['name'], cpu, live, baseline, 'live'))
        if persistent is not None:
            checks.append(check_cpu(guest['name'], inactive, persistent, baseline, 'persistent'))
        return checks


def guest_checks(guest, source, destination, cpus):
    """Machine type and CPU of one guest against the destination (``read_host`` of both sides)."""
    offered = destination['caps']['archs'].get(guest['arch'], {}).get('machines', ())
    # A machine type the destination lacks (the machine check says so) would make libvirt refuse
    # the CPU comparison itself: the CPU is judged with the destination's default machine type.
    cpu_guest = guest if not guest['machine'] or guest['machine'] in offered else dict(guest, machine=None)
    return [check_machine_type(guest['name'], guest, destination['caps'],
                               versions=(source['qemu'], destination['qemu']))] + cpus.checks(cpu_guest)


def guest_compatibility(dom, dst_conn, mode='live', postcopy=False):
    """virt_migrate's precheck: the version, machine type and CPU verdicts for moving ``dom`` (a
    virDomain on the source) to the host behind ``dst_conn`` with ``mode``. A live (or paused) move
    judges what runs now and what the guest boots with next; a cold move what it boots with (it is
    started there); an offline move starts nothing, so nothing is judged. ``postcopy``: a live move
    that may switch to post-copy, which needs the same QEMU release on both hosts
    (``check_postcopy_versions``). Reads only."""
    if mode == 'offline':
        return []
    src_conn = dom.connect()
    source, destination = read_host(src_conn), read_host(dst_conn)
    persistent = bool(dom.isPersistent())
    inactive = parse_domain(dom.XMLDesc(VIR_DOMAIN_XML_INACTIVE)) if persistent else None
    if mode == 'cold' and inactive is not None:
        guest = dict(inactive, judge_live_cpu=False, inactive_cpu=inactive['cpu'], cpu=None)
    else:
        guest = dict(parse_domain(dom.XMLDesc(0)), inactive_cpu=inactive['cpu'] if inactive else None)
    checks = version_checks(source, destination) + guest_checks(guest, source, destination,
                                                                CpuQuestions(src_conn, dst_conn))
    if postcopy and mode == 'live':
        checks.append(check_postcopy_versions(source['qemu'], destination['qemu']))
    return checks
