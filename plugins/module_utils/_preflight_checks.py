# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight's checks of connectivity, versions, CPU, networks, firewall, capacity and bandwidth.

Private module_utils file (leading underscore): its API may change without notice.

Pure functions: plain data (read by ``_preflight_runner`` through libvirt, the remote helper and
real connections) in, one verdict (``_preflight_spec.check``) out, each with a remedy when it is
not ok. The storage checks are in ``_preflight_storage_checks``.
"""

from __future__ import annotations

import re

from ansible_collections.kvmops.migration.plugins.module_utils._cpu_baseline import unknown_cpu_name
from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import machine_family
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_spec import (
    FAIL,
    MIB,
    OK,
    WARN,
    check,
    format_version,
    mib,
)
# virConnectCompareCPU results (virCPUCompareResult) and the libvirt error code for an incompatible CPU.
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_CPU_COMPARE_IDENTICAL as CPU_COMPARE_IDENTICAL,
    VIR_CPU_COMPARE_INCOMPATIBLE as CPU_COMPARE_INCOMPATIBLE,
    VIR_CPU_COMPARE_SUPERSET as CPU_COMPARE_SUPERSET,
    VIR_ERR_CPU_INCOMPATIBLE,
)

# CPU modes that copy the source host's CPU: libvirt cannot compare them with another host.
UNCOMPARABLE_CPU_MODES = ('host-passthrough', 'maximum')


def compress_ranges(ports):
    """[1, 2, 3, 7] -> '1-3, 7'."""
    ports = sorted(set(ports))
    out = []
    start = prev = None
    for p in ports:
        if start is None:
            start = prev = p
        elif p == prev + 1:
            prev = p
        else:
            out.append(str(start) if start == prev else '%d-%d' % (start, prev))  # pylint: disable=bad-string-format-type
            start = prev = p
    if start is not None:
        out.append(str(start) if start == prev else '%d-%d' % (start, prev))
    return ', '.join(out)


def parse_missing_features(message):
    """Feature names out of libvirt's "Host CPU does not provide required features: a, b"."""
    m = re.search(r'required features?:\s*(.+)$', message or '')
    if not m:
        return []
    return [f.strip() for f in m.group(1).split(',') if f.strip()]


# ---------------------------------------------------------------------------
# Connectivity
# ---------------------------------------------------------------------------

def check_ssh(ssh, transport, target):
    """``ssh``: {ok, error, elapsed_s}. SSH is the transport for ssh; for tls/tcp it only
    carries the probes and listeners, so its failure is a warning there."""
    if ssh.get('ok'):
        return check('connectivity.ssh', OK, 'SSH to %s works (%.2fs)' % (target, ssh.get('elapsed_s') or 0))
    needed = transport == 'ssh'
    return check(
        'connectivity.ssh', FAIL if needed else WARN,
        'SSH to %s failed: %s%s' % (target, ssh.get('error') or 'unknown error',
                                    '' if needed else ' (the storage probe falls back to libvirt, the '
                                    'migration port range cannot be tested)'),
        remedy=('Make key-based SSH work non-interactively from this host to %s as the user '
                'libvirt connects with (root for qemu+ssh p2p): authorized_keys on the destination, its '
                'host key in known_hosts here, sshd running, port 22 open (the kvmops.migration.migration_ssh role sets '
                'this up between hypervisors).' % target))


def check_libvirt_connection(uri, error=None, elapsed_s=None):
    if error is None:
        return check('connectivity.libvirt', OK, 'connected to %s (%.2fs)' % (uri, elapsed_s or 0))
    return check('connectivity.libvirt', FAIL, 'cannot connect to %s: %s' % (uri, error),
                 remedy=('Start the libvirt daemon on the destination (systemctl start libvirtd, or '
                         'virtqemud + the proxy/socket units), make the URI reachable (for qemu+tcp '
                         'listen_tcp/libvirtd-tcp.socket, for qemu+tls certificates and '
                         'libvirtd-tls.socket; virtproxyd-tcp.socket and virtproxyd-tls.socket with modular '
                         'daemons; for qemu+ssh a working SSH login), then re-run.'))


def check_distinct_hosts(src_hostname, dst_hostname, src_uuid, dst_uuid):
    problems = []
    if src_hostname and dst_hostname and src_hostname == dst_hostname:
        problems.append('same hostname %r' % src_hostname)
    if src_uuid and dst_uuid and src_uuid == dst_uuid:
        problems.append('same host UUID %s' % src_uuid)
    if dst_hostname and dst_hostname.split('.')[0] in ('localhost',):
        problems.append('destination reports hostname %r' % dst_hostname)
    if not problems:
        return check('connectivity.distinct_hosts', OK, 'source %s (%s), destination %s (%s)' % (
            src_hostname, src_uuid, dst_hostname, dst_uuid))
    return check(
        'connectivity.distinct_hosts', FAIL, 'source and destination look like the same host: %s' % '; '.join(problems),
        remedy=('libvirt refuses to migrate to the same host ("Attempt to migrate guest to the same host"). '
                'Point dest at the other hypervisor; if it really is another machine, give it a unique '
                'hostname and host UUID (host_uuid in libvirtd.conf, virtqemud.conf with modular daemons, or '
                'fix a cloned /etc/machine-id and SMBIOS UUID) and restart libvirtd (virtqemud).'))


# ---------------------------------------------------------------------------
# Versions, machine type, CPU
# ---------------------------------------------------------------------------

def check_version(component, src_version, dst_version):
    name = 'versions.%s' % component
    label = {'libvirt': 'libvirt', 'qemu': 'QEMU'}.get(component, component)
    if src_version is None or dst_version is None:
        return check(name, WARN, 'could not read the %s version (source %s, destination %s)' % (
            label, format_version(src_version), format_version(dst_version)),
            remedy='Check that both libvirt daemons answer getVersion/getLibVersion.')
    if dst_version >= src_version:
        return check(name, OK, '%s %s on source, %s on destination' % (
            label, format_version(src_version), format_version(dst_version)))
    return check(name, WARN, 'destination %s %s is older than the source %s %s' % (
        label, format_version(dst_version), label, format_version(src_version)),
        remedy=('Migrating to an older %s works only while the guest uses nothing the older one lacks '
                '(machine type, CPU features, devices); upgrade the destination to at least %s, or keep '
                'migrations to hosts of the same or a newer version.' % (label, format_version(src_version))))


def check_postcopy_versions(src_qemu, dst_qemu):
    """Post-copy between two QEMU releases (major.minor).  The destination loads the guest's device
    state only at the switch-over.  If it refuses it then, a pre-copy migration fails safely (the
    source resumes the guest), but in post-copy the source has handed over: the guest's running state
    is lost.  Seen on the lab from QEMU 10.0 to 11.1 with the same machine type ("VQ 0 vring.num
    1024 exceeds allocated max 256"; docs/lab.md), so post-copy is refused across releases."""
    name = 'versions.postcopy'
    if src_qemu is None or dst_qemu is None:
        return check(name, WARN, 'could not read the QEMU versions (source %s, destination %s): post-copy is '
                     'allowed although a device state the destination refuses would cost the guest in post-copy' % (
                         format_version(src_qemu), format_version(dst_qemu)),
                     remedy='Check that both libvirt daemons answer getVersion.')
    if src_qemu // 1000 == dst_qemu // 1000:
        return check(name, OK, 'post-copy between QEMU %s and %s (the same release)' % (
            format_version(src_qemu), format_version(dst_qemu)))
    return check(name, FAIL, 'allow_postcopy from QEMU %s to QEMU %s: a destination QEMU of another release may refuse '
                 "the guest's device state, and it only reads it at the switch-over, after which post-copy cannot give "
                 "the guest back (its running state would be lost; seen from QEMU 10.0 to 11.1)" % (
                     format_version(src_qemu), format_version(dst_qemu)),
                 remedy='Migrate without allow_postcopy: a refused device state then fails the migration safely, '
                        'the guest running on the source (auto_converge or a higher bandwidth help it converge); '
                        'use post-copy between hosts of the same QEMU release.')


def check_machine_type(guest, dom, dest_caps, versions=None):
    """Architecture, virt type, machine type and emulator path offered by the destination.
    ``versions``: (source QEMU, destination QEMU), to say when an older destination QEMU is why."""
    name = 'versions.machine_type'
    arch = dest_caps['archs'].get(dom['arch'])
    if arch is None:
        return check(name, FAIL, 'destination offers no %s guests' % dom['arch'], guest=guest,
                     remedy='Migrate to a host that runs %s guests (install its QEMU system emulator).' % dom['arch'])
    problems = []
    remedies = []
    if dom['virt_type'] and dom['virt_type'] not in arch['domain_types']:
        problems.append("domain type '%s' is not offered (destination offers %s)" % (
            dom['virt_type'], ', '.join(sorted(arch['domain_types'])) or 'none'))
        remedies.append("enable %s on the destination (for kvm: /dev/kvm and the kvm module)" % dom['virt_type'])
    if dom['machine'] and dom['machine'] not in arch['machines']:
        problem, remedy = _unknown_machine(dom['machine'], arch['machines'], versions)
        problems.append(problem)
        remedies.append(remedy)
    if dom['emulator'] and arch['emulators'] and dom['emulator'] not in arch['emulators']:
        problems.append("emulator %s does not exist there (it has %s); libvirt keeps the guest's emulator path" % (
            dom['emulator'], ', '.join(sorted(arch['emulators']))))
        remedies.append('install the same emulator path on the destination, or migrate with a destination XML '
                        'that names its emulator')
    if problems:
        remedy = '; '.join(remedies)
        return check(name, FAIL, '; '.join(problems), remedy=remedy[:1].upper() + remedy[1:] + '.', guest=guest)
    return check(name, OK, '%s/%s machine %s offered by destination' % (dom['virt_type'], dom['arch'], dom['machine']),
                 guest=guest)


def _unknown_machine(machine, offered, versions):
    """(problem, remedy) of a machine type the destination does not offer. A versioned type
    (pc-i440fx-10.0) names the QEMU release that made it: a guest started on a newer QEMU cannot
    move to an older one, which lacks that release's machine types."""
    family = machine_family(machine)
    same = sorted((m for m in offered if m.startswith(family)), key=_machine_order)
    problem = "machine type '%s' is not offered" % machine
    src_qemu, dst_qemu = versions or (None, None)
    if src_qemu and dst_qemu and dst_qemu < src_qemu:
        problem += (' (the destination runs QEMU %s, older than the source\'s QEMU %s that gave the guest this '
                    'machine type: a guest started on a newer QEMU cannot move to an older one)' % (
                        format_version(dst_qemu), format_version(src_qemu)))
        remedy = ('move the guest to a host with QEMU %s or newer (upgrade this destination first), or restart it '
                  'with a machine type both hosts offer (%s) and then migrate; to keep guests movable both ways '
                  'while a cluster is upgraded, start them on the hosts with the older QEMU' % (
                      format_version(src_qemu), same[-1] if same else 'none of that family here'))
    else:
        remedy = ('keep the guest on a machine type both hosts offer (the destination has %s); a machine type '
                  'change needs a guest restart' % (', '.join(same[-4:]) or 'none of that family'))
    return problem, remedy


def _machine_order(machine):
    """pc-i440fx-7.2 before pc-i440fx-10.0: versioned machine types by their version."""
    version = machine.rsplit('-', 1)[-1]
    return [int(part) if part.isdigit() else -1 for part in version.split('.')] if version[:1].isdigit() else [-1]


def baseline_remedy(baseline_model):
    base = ('Give the guest a CPU model both hosts provide: a baseline of the source and destination host CPUs '
            '(the kvmops.migration.cpu_baseline role, or the virt_cpu_baseline module, computes it with '
            'baselineHypervisorCPU and sets it on the guest)')
    if baseline_model:
        base += '; here the baseline is the %s model with the features both hosts share' % baseline_model
    return base + '. The new CPU model takes effect at the next guest boot.'


def check_cpu(guest, cpu, compare, baseline_model=None, which='live'):
    """``cpu``: parse_domain()['cpu']; ``compare``: {result} or {error_code, message} from
    compareHypervisorCPU on the destination (None when not compared).

    ``which`` is ``live`` (what migrates now) or ``persistent`` (what the guest boots with on the
    destination after the migration, if it differs from the live definition)."""
    name = 'cpu.model' if which == 'live' else 'cpu.persistent'
    if cpu is None:
        return check(name, OK, 'no explicit CPU definition: the machine type default CPU', guest=guest)
    mode = cpu['mode']
    if mode in UNCOMPARABLE_CPU_MODES:
        return check(name, WARN, "CPU mode '%s' exposes the source host's CPU as is; libvirt cannot compare it, "
                     "the migration only works if the destination CPU is identical or a superset" % mode,
                     remedy=baseline_remedy(baseline_model), guest=guest)
    label = cpu['model'] or mode
    if compare is None:
        return check(name, WARN, 'CPU %s was not compared with the destination' % label, guest=guest,
                     remedy='Re-run when the destination libvirt answers compareHypervisorCPU.')
    result = compare.get('result')
    if result in (CPU_COMPARE_IDENTICAL, CPU_COMPARE_SUPERSET):
        return check(name, OK, 'destination can provide CPU %s%s' % (
            label, '' if which == 'live' else ' of the persistent definition'), guest=guest)
    if result == CPU_COMPARE_INCOMPATIBLE or compare.get('error_code') == VIR_ERR_CPU_INCOMPATIBLE:
        missing = parse_missing_features(compare.get('message'))
        what = ('features %s' % ', '.join(missing)) if missing else (compare.get('message') or 'incompatible')
        if which == 'live':
            detail = 'destination cannot provide CPU %s: missing %s' % (label, what)
            return check(name, FAIL, detail, remedy=baseline_remedy(baseline_model), guest=guest)
        if cpu.get('check') == 'none':
            return check(name, WARN, "persistent CPU %s needs %s which the destination lacks; with check='none' "
                         'the guest would boot there silently without them' % (label, what),
                         remedy=baseline_remedy(baseline_model), guest=guest)
        return check(name, FAIL, 'persistent CPU %s needs %s which the destination lacks: the guest would not '
                     'start there after its next shutdown' % (label, what),
                     remedy=baseline_remedy(baseline_model), guest=guest)
    unknown = unknown_cpu_name(compare.get('message'))
    if unknown is not None:
        # The CPU names a feature or model only a newer libvirt knows: the destination cannot give it.
        detail = "destination's libvirt does not know the CPU %s '%s' of the guest's CPU %s%s (a newer libvirt's CPU)" % (
            unknown[0], unknown[1], label, '' if which == 'live' else ' (persistent definition)')
        return check(name, FAIL, detail, remedy=baseline_remedy(baseline_model), guest=guest)
    return check(name, WARN, 'could not compare CPU %s on the destination: %s' % (label, compare.get('message')),
                 remedy='Check the CPU definition with `virsh hypervisor-cpu-compare` on the destination.', guest=guest)


# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

def check_interface(guest, iface, dest_network=None, dest_netdev=None):
    """``dest_network``: {exists, active, bridge} for type=network; ``dest_netdev``: {exists,
    bridge, operstate} from the destination for type=bridge/direct (None if unknown)."""
    name = 'network.interface'
    itype = iface['type']
    label = iface['mac'] or iface['target'] or itype
    if itype == 'network':
        net = iface['network']
        if not dest_network or not dest_network.get('exists'):
            return check(name, FAIL, "interface %s: network '%s' is not defined on the destination" % (label, net),
                         remedy=("Define the network '%s' on the destination like on the source (virsh net-dumpxml "
                                 "%s here, net-define + net-start + net-autostart there; the "
                                 "kvmops.migration.migration_network role keeps networks the same on every "
                                 "hypervisor)." % (net, net)), guest=guest)
        if not dest_network.get('active'):
            return check(name, FAIL, "interface %s: network '%s' exists on the destination but is not active" % (label, net),
                         remedy="Start it on the destination: virsh net-start %s; virsh net-autostart %s." % (net, net),
                         guest=guest)
        return check(name, OK, "interface %s: network '%s' active on the destination%s" % (
            label, net, (' (bridge %s)' % dest_network['bridge']) if dest_network.get('bridge') else ''), guest=guest)
    if itype in ('bridge', 'direct'):
        dev = iface['bridge'] if itype == 'bridge' else iface['dev']
        kind = 'bridge' if itype == 'bridge' else 'host interface'
        if dest_netdev is None:
            return check(name, WARN, 'interface %s: could not ask the destination whether %s %s exists' % (label, kind, dev),
                         remedy='Make SSH to the destination work so the preflight can look, or check by hand.',
                         guest=guest)
        if not dest_netdev.get('exists') or (itype == 'bridge' and not dest_netdev.get('bridge')):
            return check(name, FAIL, 'interface %s: %s %s does not exist on the destination' % (label, kind, dev),
                         remedy='Create %s %s on the destination (same name; e.g. with nmcli or '
                                'systemd-networkd) and connect it to the same L2 network.' % (kind, dev), guest=guest)
        if dest_netdev.get('operstate') == 'down':
            return check(name, WARN, 'interface %s: %s %s exists on the destination but is down' % (label, kind, dev),
                         remedy='Bring %s up on the destination (ip link set %s up).' % (dev, dev), guest=guest)
        return check(name, OK, 'interface %s: %s %s present on the destination' % (label, kind, dev), guest=guest)
    if itype == 'hostdev':
        return check(name, FAIL, 'interface %s: a PCI passthrough NIC (type hostdev) blocks live migration' % label,
                     remedy='Detach the VF before migrating and re-attach one on the destination, or use a '
                            'virtio NIC (bonded with the VF inside the guest, net_failover).', guest=guest)
    if itype in ('user', 'ethernet', 'vhostuser', 'vdpa', 'null', 'mcast', 'server', 'client', 'udp'):
        status = OK if itype in ('user', 'null') else WARN
        return check(name, status, 'interface %s: type %s is not checked on the destination' % (label, itype),
                     remedy=None if status == OK else
                     'Make sure the destination provides the same backend for a type %s interface.' % itype,
                     guest=guest)
    return check(name, WARN, 'interface %s: unknown type %s' % (label, itype),
                 remedy='Check this interface by hand.', guest=guest)


# ---------------------------------------------------------------------------
# Firewall
# ---------------------------------------------------------------------------

def describe_connect_error(code):
    if code == 'refused':
        return 'connection refused'
    if code == 'unreachable':
        return 'no route to host (a firewall REJECT, or routing)'
    if code == 'timeout':
        return 'no answer (dropped by a firewall)'
    if code == 'wrong_peer':
        return 'answered, but not by our listener'
    return code or 'unknown error'


def firewall_remedy(dest, ports_text):
    return ('Open TCP %s on the destination %s from this host: firewall-cmd --permanent --add-port=%s/tcp && '
            'firewall-cmd --reload (or the equivalent nftables/iptables rule, and any firewall in between; the '
            'kvmops.migration.migration_firewall role opens the migration ports in firewalld).' % (
                ports_text, dest, ports_text.replace(', ', ',')))


def check_tcp_port(name, dest, port, result, what):
    """A plain TCP connect from the source to a port something should listen on."""
    if result.get('ok'):
        return check(name, OK, '%s: TCP %s:%d reachable (%.1f ms)' % (what, dest, port, (result.get('ms') or 0)))
    err = result.get('error')
    if err == 'refused':
        return check(name, FAIL, '%s: nothing listens on %s:%d (connection refused)' % (what, dest, port),
                     remedy=('Make the service listen on the destination: for libvirt over tcp/tls enable '
                             'libvirtd-tcp.socket / libvirtd-tls.socket (virtproxyd-tcp.socket / virtproxyd-tls.socket '
                             'with modular daemons; or listen_tcp/listen_tls with libvirtd --listen); for ssh start '
                             'sshd.'))
    return check(name, FAIL, '%s: %s:%d %s' % (what, dest, port, describe_connect_error(err)),
                 remedy=firewall_remedy(dest, str(port)))


def check_migration_address(address, resolved, error=None):
    """The address the source's QEMU will connect to for the migration stream."""
    name = 'firewall.migration_address'
    if error:
        return check(name, FAIL, 'this host cannot resolve %s, the address the destination gives for the migration '
                     'stream: %s' % (address, error),
                     remedy=('Make the destination hostname resolvable here (DNS or /etc/hosts), or set migration_host '
                             'in the destination qemu.conf, or migrate with an explicit migrate_uri.'))
    loop = [a for a in resolved if a.startswith('127.') or a == '::1']
    if loop and len(loop) == len(resolved):
        return check(name, FAIL, '%s resolves to a loopback address here (%s): QEMU would connect to itself' % (
            address, ', '.join(resolved)),
            remedy=('Fix name resolution of %s on this host (no 127.x entry for another host), or set migration_host '
                    'in the destination qemu.conf.' % address))
    return check(name, OK, 'migration stream goes to %s (%s)' % (address, ', '.join(resolved)))


def check_migration_ports(dest, port_range, *, tested=(), busy=(), results=None, listener_error=None, sampled=False):
    """``tested``: the ports of ``port_range`` we listened on at the destination (``busy``: in use there),
    ``results``: {port: {ok, error}} of connecting to them from here."""
    results = results or {}
    name = 'firewall.migration_ports'
    low, high = port_range
    rng = '%d-%d' % (low, high)
    if listener_error:
        return check(name, WARN, 'could not test the migration ports %s on %s: %s' % (rng, dest, listener_error),
                     remedy=('Make SSH to the destination work (the preflight starts a short-lived listener there), '
                             'or test by hand: a listener on a port of %s on the destination, a connect from here.' % rng))
    if not tested:
        return check(name, WARN, 'every port of the migration range %s on %s is in use (%d busy): nothing to listen on' % (
            rng, dest, len(busy)),
            remedy='Re-run when fewer migrations are running, or widen migration_port_min/max in qemu.conf.')
    blocked = sorted(p for p in tested if not results.get(p, {}).get('ok'))
    if not blocked:
        extra = (' (%d in use, not tested)' % len(busy)) if busy else ''
        return check(name, OK, 'all %d tested ports of %s on %s accepted connections from here%s%s' % (
            len(tested), rng, dest, ' (sampled)' if sampled else '', extra))
    errors = sorted(set(describe_connect_error(results.get(p, {}).get('error')) for p in blocked))
    text = compress_ranges(blocked)
    return check(name, FAIL, '%d of %d migration ports blocked from here to %s: %s (%s)' % (
        len(blocked), len(tested), dest, text, '; '.join(errors)),
        remedy=firewall_remedy(dest, rng))


# ---------------------------------------------------------------------------
# Capacity, bandwidth
# ---------------------------------------------------------------------------

def check_memory(guest, guest_kib, available_bytes, margin_mib):
    """``available_bytes``: the destination's free memory plus what the kernel can reclaim at once
    (buffers + page cache), from getMemoryStats."""
    name = 'capacity.memory'
    need = guest_kib * 1024 + margin_mib * MIB
    if available_bytes is None:
        return check(name, WARN, 'available memory on the destination unknown', guest=guest,
                     remedy='Check that the destination libvirt answers getMemoryStats/getFreeMemory.')
    detail = 'guest needs %s MiB (+%d MiB margin), destination has %s MiB available' % (
        mib(guest_kib * 1024), margin_mib, mib(available_bytes))
    if available_bytes >= need:
        return check(name, OK, detail, guest=guest)
    return check(name, FAIL, detail.replace(', destination has', ' but the destination has only'), guest=guest,
                 remedy='Free memory on the destination (stop or move guests there), pick another destination, or shrink '
                        'the guest; lower memory_margin_mib only if you know the host keeps enough for itself.')


def check_memory_total(guests_kib, available_bytes, margin_mib):
    name = 'capacity.memory_total'
    need = sum(guests_kib) * 1024 + margin_mib * MIB
    if available_bytes is None:
        return check(name, WARN, 'available memory on the destination unknown',
                     remedy='Check that the destination libvirt answers getMemoryStats/getFreeMemory.')
    detail = '%d guests need %s MiB together (+%d MiB margin), destination has %s MiB available' % (
        len(guests_kib), mib(sum(guests_kib) * 1024), margin_mib, mib(available_bytes))
    if available_bytes >= need:
        return check(name, OK, detail)
    return check(name, FAIL, detail,
                 remedy='Move the guests in batches to different destinations, or free memory on the destination.')


def check_vcpus(dest_cpus, dest_vcpus_running, incoming_vcpus, ratio):
    name = 'capacity.vcpus'
    total = dest_vcpus_running + incoming_vcpus
    if not dest_cpus:
        return check(name, WARN, 'destination CPU count unknown', remedy='Check the destination nodeinfo.')
    actual = total / float(dest_cpus)
    detail = '%d vCPUs running + %d incoming on %d host CPUs (%.2f per CPU, limit %.2f)' % (
        dest_vcpus_running, incoming_vcpus, dest_cpus, actual, ratio)
    if actual <= ratio:
        return check(name, OK, detail)
    return check(name, WARN, 'vCPU overcommit: ' + detail,
                 remedy='Expect CPU contention on the destination (and slower convergence of busy guests); spread '
                        'guests over more hosts or raise vcpu_overcommit_ratio if this is intended.')


def check_bandwidth(result, min_mib_s=None):
    name = 'bandwidth'
    if result.get('error'):
        return check(name, WARN, 'bandwidth test failed: %s' % result['error'],
                     remedy='Check the migration port range path (see firewall.migration_ports).')
    rate = result['mib_s']
    detail = '%.1f MiB/s over a migration port (%s MiB in %.2fs)' % (rate, mib(result['bytes']), result['seconds'])
    if min_mib_s and rate < min_mib_s:
        return check(name, WARN, detail + ', below %s MiB/s' % min_mib_s,
                     remedy='Migrations will be slow and busy guests may not converge: use a faster link, '
                            'post-copy or auto-converge, or migrate when the guest is quieter.')
    return check(name, OK, detail)


def estimate_seconds(memory_bytes, copy_bytes, mib_s):
    """Lower bound of a migration's duration: memory (plus disks to copy) once over the link.
    A guest dirtying memory needs more passes."""
    if not mib_s:
        return None
    return round((memory_bytes + copy_bytes) / (mib_s * MIB), 1)
