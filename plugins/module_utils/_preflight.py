# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Migration preflight: what would make a migration from this host to ``dest`` fail.

Private module_utils file (leading underscore): its API may change without notice.

Three layers, so that every decision is unit-tested without libvirt:

* parsers (domain XML, capabilities XML, libvirt/qemu config lines, mountinfo) turn
  what the hosts report into plain dicts;
* ``check_*`` functions turn plain data into verdicts
  ``{name, category, guest?, status: ok|warn|fail, detail, remedy}``; ``summarize`` and
  ``should_fail`` aggregate them;
* ``PreflightRunner`` (glue) gathers the data: libvirt on both hosts through the shared
  ``LibvirtClient``, one SSH session to the destination that runs ``REMOTE_HELPER``
  (facts, probe-file reads, short-lived TCP listeners in the migration port range, a
  bandwidth sink), and real TCP connects from this host.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import secrets
import selectors
import socket
import subprocess
import threading
import time

from ansible_collections.kvmops.migration.plugins.module_utils._client import (
    InvalidInputError,
    KvmopsError,
    is_libvirt_error,
    libvirt_error_details,
    spec_defaults,
)
from ansible_collections.kvmops.migration.plugins.module_utils._destination import TRANSPORTS, parse_destination
from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import (
    as_int,
    cpu_model_of,
    host_model_cpu_xml,
    machine_family,
    parse_capabilities,
    parse_domain,
)
from ansible_collections.kvmops.migration.plugins.module_utils._storage import refresh_pool

OK, WARN, FAIL = 'ok', 'warn', 'fail'
STATUSES = (OK, WARN, FAIL)
FAIL_ON_CHOICES = ('fail', 'warn', 'never')

# The options of virt_migrate_preflight (documented in plugins/modules/virt_migrate_preflight.py).
# They live here so that virt_evacuate (run_preflight) runs the same checks with the same defaults.
PREFLIGHT_ARGUMENT_SPEC = dict(
    dest=dict(type='str', required=True),
    transport=dict(type='str', choices=list(TRANSPORTS), default='ssh'),
    guests=dict(type='list', elements='str', default=[]),
    fail_on=dict(type='str', choices=list(FAIL_ON_CHOICES), default='fail'),
    measure_bandwidth=dict(type='bool', default=False),
    bandwidth_seconds=dict(type='float', default=3),
    min_bandwidth_mib_s=dict(type='float'),
    memory_margin_mib=dict(type='int', default=256),
    vcpu_overcommit_ratio=dict(type='float', default=4.0),
    storage_probe=dict(type='str', choices=['auto', 'ssh', 'libvirt'], default='auto'),
    ssh_options=dict(type='list', elements='str', default=[]),
    connect_timeout=dict(type='int', default=5),
)


def preflight_params(**given):
    """virt_migrate_preflight's parameters: its defaults, then ``given``."""
    return spec_defaults(PREFLIGHT_ARGUMENT_SPEC, **given)


CATEGORIES = ('guest', 'connectivity', 'versions', 'cpu', 'storage', 'network', 'firewall',
              'capacity', 'bandwidth')

DEFAULT_MIGRATION_PORTS = (49152, 49215)
DEFAULT_LIBVIRT_PORTS = {'tcp': 16509, 'tls': 16514}
MAX_PORTS_TESTED = 128

# Filesystem types libvirt 9.0 treats as shared (virFileIsSharedFS), as /proc/self/mountinfo
# names them; FUSE filesystems appear as fuse.<subtype>.
LIBVIRT_SHARED_FS = frozenset((
    'nfs', 'nfs4', 'gfs2', 'gfs', 'ocfs2', 'afs', 'smb', 'smb3', 'smbfs', 'cifs', 'ceph',
    'fuse.ceph', 'fuse.ceph-fuse', 'gpfs', 'fuse.quobyte', 'acfs', 'fuse.glusterfs', 'beegfs',
))
# Coherent cluster filesystems: libvirt skips the cache-mode rule for them (virFileIsClusterFS).
LIBVIRT_CLUSTER_FS = frozenset(('gfs2', 'gfs', 'ocfs2', 'ceph', 'fuse.ceph', 'fuse.ceph-fuse'))
SAFE_CACHE_MODES = ('none', 'directsync')
# QEMU >= 4.0 drops the page cache of image files on incoming migration; libvirt then
# accepts any cache mode (QEMU_CAPS_MIGRATION_FILE_DROP_CACHE).
QEMU_DROP_CACHE_VERSION = 4000000

# virConnectCompareCPU results and the libvirt error code for an incompatible CPU.
CPU_COMPARE_INCOMPATIBLE, CPU_COMPARE_IDENTICAL, CPU_COMPARE_SUPERSET = 0, 1, 2
VIR_ERR_CPU_INCOMPATIBLE = 91
VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE = 1
VIR_CONNECT_LIST_DOMAINS_ACTIVE = 1
VIR_DOMAIN_XML_INACTIVE = 2
VIR_ERR_NO_DOMAIN = 42

MIB = 1024 * 1024


# ---------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------

def check(name, status, detail, remedy=None, guest=None):
    """One verdict. ``name`` is ``<category>.<what>``; ``remedy`` only for warn/fail."""
    if status not in STATUSES:
        raise ValueError('status must be one of %s, got %r' % (', '.join(STATUSES), status))
    category = name.split('.', 1)[0]
    result = {'name': name, 'category': category, 'status': status, 'detail': detail,
              'remedy': remedy if status != OK else None}
    if guest is not None:
        result['guest'] = guest
    return result


def summarize(checks, skipped=None):
    """Counts per status, the failing/warning checks by label, and the overall verdict."""
    counts = dict((s, 0) for s in STATUSES)
    for c in checks:
        counts[c['status']] += 1

    def label(c):
        return '%s(%s)' % (c['name'], c['guest']) if c.get('guest') else c['name']

    verdict = FAIL if counts[FAIL] else (WARN if counts[WARN] else OK)
    return {
        'verdict': verdict,
        'total': len(checks),
        'ok': counts[OK],
        'warn': counts[WARN],
        'fail': counts[FAIL],
        'failed_checks': [label(c) for c in checks if c['status'] == FAIL],
        'warned_checks': [label(c) for c in checks if c['status'] == WARN],
        'skipped': list(skipped or []),
    }


def should_fail(checks, fail_on='fail'):
    """Whether the module run fails: ``fail`` on any fail, ``warn`` on any warn or fail, ``never``."""
    if fail_on not in FAIL_ON_CHOICES:
        raise ValueError('fail_on must be one of %s' % ', '.join(FAIL_ON_CHOICES))
    if fail_on == 'never':
        return False
    bad = (FAIL,) if fail_on == 'fail' else (FAIL, WARN)
    return any(c['status'] in bad for c in checks)


def failure_message(checks, fail_on):
    bad = [c for c in checks if c['status'] == FAIL or (fail_on == 'warn' and c['status'] == WARN)]
    parts = ['%s%s: %s' % (c['name'], ' (%s)' % c['guest'] if c.get('guest') else '', c['detail'])
             for c in bad[:5]]
    more = ' (and %d more)' % (len(bad) - 5) if len(bad) > 5 else ''
    return 'Preflight found %d blocking problem(s): %s%s' % (len(bad), '; '.join(parts), more)


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def format_version(number):
    """libvirt's packed version (major * 1,000,000 + minor * 1,000 + micro) as a.b.c."""
    if number is None:
        return 'unknown'
    number = int(number)
    return '%d.%d.%d' % (number // 1000000, (number // 1000) % 1000, number % 1000)


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


def sample_ports(low, high, cap=MAX_PORTS_TESTED):
    """Every port of [low, high] if it has at most ``cap`` ports, else ``cap`` evenly spread
    ones including both ends."""
    if high < low:
        return []
    count = high - low + 1
    if count <= cap:
        return list(range(low, high + 1))
    step = (count - 1) / float(cap - 1)
    return sorted(set(low + int(round(i * step)) for i in range(cap)))


def mib(nbytes):
    return round(nbytes / float(MIB), 1)


# ---------------------------------------------------------------------------
# Parsers (plain data in, plain data out)
# ---------------------------------------------------------------------------

def parse_conf(lines):
    """``key = value`` lines of libvirtd.conf/qemu.conf (comments already dropped) -> dict.
    Values: int, bool-ish int, quoted string, or the raw text for lists."""
    conf = {}
    for line in lines or ():
        line = line.strip()
        if not line or line.startswith('#') or '=' not in line:
            continue
        key, dummy, value = line.partition('=')
        key = key.strip()
        value = value.split('#', 1)[0].strip() if not value.strip().startswith(('"', "'")) else value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in '"\'':
            conf[key] = value[1:-1]
        else:
            parsed = as_int(value)
            conf[key] = parsed if parsed is not None else value
    return conf


def migration_port_range(qemu_conf):
    low = as_int(qemu_conf.get('migration_port_min'), DEFAULT_MIGRATION_PORTS[0])
    high = as_int(qemu_conf.get('migration_port_max'), DEFAULT_MIGRATION_PORTS[1])
    return low, high


def libvirt_port(libvirtd_conf, transport, uri_port=None):
    """The TCP port the transport connects to on the destination."""
    if uri_port:
        return uri_port
    if transport == 'ssh':
        return 22
    key = 'tcp_port' if transport == 'tcp' else 'tls_port'
    return as_int(libvirtd_conf.get(key), DEFAULT_LIBVIRT_PORTS[transport])


def parse_mountinfo(text):
    """/proc/self/mountinfo -> [(mount point, fstype)], fstype as ``fuse.<subtype>`` for FUSE."""
    mounts = []
    for line in (text or '').splitlines():
        left, sep, right = line.partition(' - ')
        if not sep:
            continue
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or not rfields:
            continue
        point = fields[4].replace('\\040', ' ').replace('\\011', '\t').replace('\\134', '\\')
        mounts.append((point, rfields[0]))
    return mounts


def filesystem_of(path, mounts):
    """(mount point, fstype) of the mount holding ``path`` (the last, longest matching mount)."""
    best = None
    for point, fstype in mounts:
        prefix = point.rstrip('/') + '/'
        if path == point or path.startswith(prefix) or point == '/':
            if best is None or len(point) >= len(best[0]):
                best = (point, fstype)
    return best


def parse_missing_features(message):
    """Feature names out of libvirt's "Host CPU does not provide required features: a, b"."""
    m = re.search(r'required features?:\s*(.+)$', message or '')
    if not m:
        return []
    return [f.strip() for f in m.group(1).split(',') if f.strip()]


# ---------------------------------------------------------------------------
# Checks: connectivity
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
                         'libvirtd-tls.socket, for qemu+ssh a working SSH login), then re-run.'))


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
                'hostname and host UUID (host_uuid in libvirtd.conf, or fix a cloned /etc/machine-id and '
                'SMBIOS UUID) and restart libvirtd.'))


# ---------------------------------------------------------------------------
# Checks: versions, machine type, CPU
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


def check_machine_type(guest, dom, dest_caps):
    """Architecture, virt type, machine type and emulator path offered by the destination."""
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
        family = machine_family(dom['machine'])
        same = sorted(m for m in arch['machines'] if m.startswith(family))
        problems.append("machine type '%s' is not offered" % dom['machine'])
        remedies.append('keep the guest on a machine type both hosts offer (the destination has %s); a '
                        'machine type change needs a guest restart' % (', '.join(same[-4:]) or 'none of that family'))
    if dom['emulator'] and arch['emulators'] and dom['emulator'] not in arch['emulators']:
        problems.append("emulator %s does not exist there (it has %s); libvirt keeps the guest's emulator path" % (
            dom['emulator'], ', '.join(sorted(arch['emulators']))))
        remedies.append('install the same emulator path on the destination, or migrate with a destination XML '
                        'that names its emulator')
    if problems:
        return check(name, FAIL, '; '.join(problems), remedy='; '.join(remedies).capitalize() + '.', guest=guest)
    return check(name, OK, '%s/%s machine %s offered by destination' % (dom['virt_type'], dom['arch'], dom['machine']),
                 guest=guest)


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
    if mode in ('host-passthrough', 'maximum'):
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
    return check(name, WARN, 'could not compare CPU %s on the destination: %s' % (label, compare.get('message')),
                 remedy='Check the CPU definition with `virsh hypervisor-cpu-compare` on the destination.', guest=guest)


# ---------------------------------------------------------------------------
# Checks: storage
# ---------------------------------------------------------------------------

def _cache_problem(disk, fstype, src_qemu_version):
    """None, or why libvirt would call this disk's cache mode unsafe (qemuMigrationSrcIsSafe)."""
    if disk['shareable'] or disk['readonly'] or disk['cache'] in SAFE_CACHE_MODES:
        return None
    if fstype in LIBVIRT_CLUSTER_FS:
        return None
    if src_qemu_version is not None and src_qemu_version >= QEMU_DROP_CACHE_VERSION:
        return None
    return ("cache='%s': libvirt refuses the migration as unsafe (QEMU %s cannot drop the destination's page "
            'cache)' % (disk['cache'], format_version(src_qemu_version)))


def check_disk(guest, disk, facts):
    """One verdict per disk.

    ``facts`` (all optional): ``fs`` (mount point, fstype) on the source; ``probe``
    {method, written, write_error, seen, error}; ``dest_file`` {exists, size, block, regular}
    as the destination sees the disk's path; ``dest_pool`` {name, active, available} (the
    destination pool whose target is the disk's directory, or {error}); ``need_bytes``
    (to copy); ``src_qemu_version``; ``resolved_path`` for volume disks.
    """
    name = 'storage.disk'
    label = '%s (%s)' % (disk['target'], disk['path'] or facts.get('resolved_path') or
                         ('%s/%s' % (disk['pool'], disk['volume']) if disk['pool'] else 'no source'))
    if disk['type'] == 'nvme':
        return check(name, FAIL, '%s is an NVMe device assigned to the guest: libvirt calls that unsafe' % label,
                     remedy='Move the disk to shared storage (virt_blockcopy) or detach it before migrating.',
                     guest=guest)
    if not disk['path'] and not facts.get('resolved_path'):
        return check(name, OK, '%s: %s without a medium, nothing to share' % (disk['target'], disk['device']),
                     guest=guest)
    if disk['type'] == 'network':
        return check(name, OK, '%s: network disk (%s), QEMU on both hosts opens it from the storage server' % (
            label, disk['protocol']), guest=guest)
    fs = facts.get('fs') or (None, None)
    fstype = fs[1]
    cache_problem = _cache_problem(disk, fstype, facts.get('src_qemu_version'))
    probe = facts.get('probe') or {}
    dest_file = facts.get('dest_file')
    if disk['type'] == 'block':
        if dest_file is None:
            return check(name, WARN, '%s: block device; the destination could not be asked whether it has it' % label,
                         remedy='Make sure the destination sees the same LUN at the same path (multipath/by-id names).',
                         guest=guest)
        if not dest_file.get('exists') or not dest_file.get('block'):
            return check(name, FAIL, '%s: the destination has no block device at this path' % label,
                         remedy='Present the same LUN to the destination at the same path, or copy the disk '
                                '(copy_storage / virt_blockcopy to shared storage).', guest=guest)
        if cache_problem:
            return check(name, FAIL, '%s: %s' % (label, cache_problem), guest=guest,
                         remedy="Set cache='none' (or directsync) on the disk.")
        return check(name, WARN, '%s: block device present on the destination (size %s MiB); a probe cannot '
                     'prove it is the same LUN without writing to it' % (label, mib(dest_file.get('size') or 0)),
                     remedy='Confirm both hosts use the same LUN (compare WWNs / by-id names).', guest=guest)
    seen = probe.get('seen')
    if seen:
        if fstype and fstype not in LIBVIRT_SHARED_FS:
            return check(name, FAIL, '%s: both hosts see the same files in %s, but it is on %s, which libvirt does not '
                         'recognise as shared: it refuses the live migration as unsafe' % (label, fs[0], fstype),
                         remedy=('Keep images on a filesystem libvirt treats as shared (NFS, GlusterFS, CephFS, GFS2, '
                                 'OCFS2, ...), or migrate with copy_storage, or (only if you are sure the storage is '
                                 'coherent) migrate with the unsafe flag.'), guest=guest)
        if cache_problem:
            return check(name, FAIL, '%s: on shared storage, but %s' % (label, cache_problem), guest=guest,
                         remedy="Set cache='none' (or directsync) on the disk, or upgrade QEMU.")
        return check(name, OK, '%s: shared storage (%s at %s), probe file written here was read on the destination '
                     'via %s' % (label, fstype or 'unknown fs', fs[0], probe.get('method')), guest=guest)
    if seen is None:
        why = probe.get('write_error') or probe.get('error') or 'no probe method available'
        return check(name, WARN, '%s: could not prove the destination shares this storage: %s' % (label, why),
                     remedy=('Make the probe possible (SSH to the destination, or a storage pool on the destination '
                             'whose target is the disk directory), or verify the mount by hand.'), guest=guest)
    # Not shared: the destination does not see what this host sees in that directory.
    if disk['readonly']:
        if dest_file and dest_file.get('exists'):
            return check(name, OK, '%s: read-only, not shared, but the destination has its own file at this path' % label,
                         guest=guest)
        return check(name, FAIL, '%s: read-only and not shared, and the destination has no file at this path' % label,
                     remedy='Copy the image to the same path on the destination, or detach/eject it.', guest=guest)
    if dest_file and dest_file.get('exists'):
        return check(name, FAIL, '%s: not shared, and the destination already has a different file at this path '
                     '(%s MiB): copy_storage would write over it' % (label, mib(dest_file.get('size') or 0)),
                     remedy='Find out what that file is on the destination; remove or rename it if stale, or copy '
                            'the disk to another path first (virt_blockcopy).', guest=guest)
    need = facts.get('need_bytes') or 0
    pool = facts.get('dest_pool')
    directory = os.path.dirname(facts.get('resolved_path') or disk['path'])
    if not pool or pool.get('error'):
        return check(name, FAIL, '%s: local storage (%s) not shared with the destination, and the destination has no '
                     'storage pool at %s to copy it into (libvirt: "Storage pool not found")' % (
                         label, fstype or 'unknown fs', directory),
                     remedy=('Define and start a directory pool with target %s on the destination (virsh pool-define-as '
                             'NAME dir --target %s; pool-start; pool-autostart, or kvmops.migration.virt_storage_pool), '
                             'then migrate with copy_storage; or move the disk to shared storage first with '
                             'virt_blockcopy.' % (directory, directory)),
                     guest=guest)
    if not pool.get('active'):
        return check(name, FAIL, '%s: not shared; destination pool %s at %s is inactive' % (label, pool.get('name'), directory),
                     remedy='Start the pool on the destination (virsh pool-start %s) before a copy_storage migration.'
                     % pool.get('name'), guest=guest)
    available = pool.get('available')
    if available is not None and available < need:
        return check(name, FAIL, '%s: not shared, needs %s MiB copied but destination pool %s has %s MiB free' % (
            label, mib(need), pool.get('name'), mib(available)),
            remedy='Free space in pool %s on the destination, or choose another destination.' % pool.get('name'),
            guest=guest)
    return check(name, WARN, '%s: local storage (%s), not shared with the destination: the migration needs '
                 'copy_storage (%s MiB into pool %s, %s MiB free)' % (
                     label, fstype or 'unknown fs', mib(need), pool.get('name'), mib(available or 0)),
                 remedy=('Migrate with copy_storage: all (VIR_MIGRATE_NON_SHARED_DISK; copies the disk over NBD in '
                         'the migration port range), or move the disk to shared storage first with virt_blockcopy.'),
                 guest=guest)


# ---------------------------------------------------------------------------
# Checks: network
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
# Checks: firewall
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
                             'libvirtd-tcp.socket / libvirtd-tls.socket (or listen_tcp/listen_tls with libvirtd '
                             '--listen); for ssh start sshd.'))
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


def check_migration_ports(dest, port_range, tested, busy, results, listener_error=None, sampled=False):
    """``results``: {port: {ok, error}} for ports we listened on at the destination."""
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
# Checks: capacity, bandwidth
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


def available_memory(stats_kib, free_bytes=None):
    """Bytes the destination can give to new guests now: free + buffers + page cache
    (getMemoryStats, KiB), or getFreeMemory's bytes when the stats are missing."""
    if stats_kib and 'free' in stats_kib:
        return (stats_kib.get('free', 0) + stats_kib.get('buffers', 0) + stats_kib.get('cached', 0)) * 1024
    return free_bytes


def dest_available_memory(dconn):
    """``available_memory`` of the host behind ``dconn`` (None when libvirt cannot say)."""
    stats = free = None
    try:
        stats = dconn.getMemoryStats(-1, 0)  # VIR_NODE_MEMORY_STATS_ALL_CELLS
    except Exception as exc:  # pylint: disable=broad-except
        if not is_libvirt_error(exc):
            raise
        try:
            free = dconn.getFreeMemory()
        except Exception as exc2:  # pylint: disable=broad-except
            if not is_libvirt_error(exc2):
                raise
    return available_memory(stats, free)


def dest_network_facts(dconn, name):
    """{exists, active, bridge} of the libvirt network ``name`` behind ``dconn`` (for check_interface)."""
    try:
        net = dconn.networkLookupByName(name)
    except Exception as exc:  # pylint: disable=broad-except
        if not is_libvirt_error(exc):
            raise
        return {'exists': False}
    active = bool(net.isActive())
    bridge = None
    if active:
        try:
            bridge = net.bridgeName()
        except Exception:  # pylint: disable=broad-except
            bridge = None
    return {'exists': True, 'active': active, 'bridge': bridge}


def check_copy_space(guest, directory, need_bytes, available_bytes):
    """Room on the destination for the disks a migration copies into ``directory``."""
    name = 'storage.copy_space'
    if available_bytes is None:
        return check(name, WARN, 'free space in %s on the destination unknown (no storage pool can be opened there); '
                     '%s MiB to copy' % (directory, mib(need_bytes)), guest=guest,
                     remedy='Check the free space by hand, or define a directory pool with that target on the destination.')
    detail = '%s MiB to copy into %s, %s MiB free there on the destination' % (
        mib(need_bytes), directory, mib(available_bytes))
    if available_bytes >= need_bytes:
        return check(name, OK, detail, guest=guest)
    return check(name, FAIL, detail.replace(', %s MiB free' % mib(available_bytes),
                                            ' but only %s MiB free' % mib(available_bytes)), guest=guest,
                 remedy='Free space in %s on the destination (or grow that filesystem), choose another destination, '
                        'or copy only some disks (migrate_disks).' % directory)


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


# ---------------------------------------------------------------------------
# Destination helper: runs over SSH on the destination with its own python3
# ---------------------------------------------------------------------------

# Protocol: the helper prints one JSON line of facts, then reads commands on stdin:
#   listen [ports]  -> binds each free port, prints {"bound": [...], "busy": [...]}
#   quit / EOF      -> exits (also after A["max_seconds"])
# Every accepted connection first receives "<token> <port>\n". A client that then sends
# "BW\n" + data + EOF receives the number of bytes the helper read (bandwidth sink).
REMOTE_HELPER = r'''
import json, os, select, socket, stat, sys, time
def rd(p, n=4096):
    try:
        with open(p) as f:
            return f.read(n)
    except Exception:
        return None
out = {"hostname": socket.gethostname(), "python": sys.version.split()[0], "conf": {}, "files": {}, "netdevs": {}}
for p in A.get("conf_files", []):
    t = rd(p, 1 << 20)
    out["conf"][p] = None if t is None else [l.strip() for l in t.splitlines()
                                             if "=" in l and not l.lstrip().startswith("#")]
for p in A.get("files", []):
    try:
        st = os.stat(p)
    except OSError as e:
        out["files"][p] = {"exists": False, "error": e.strerror}
        continue
    info = {"exists": True, "size": st.st_size, "block": stat.S_ISBLK(st.st_mode), "regular": stat.S_ISREG(st.st_mode)}
    if info["block"]:
        try:
            fd = os.open(p, os.O_RDONLY)
            try:
                info["size"] = os.lseek(fd, 0, 2)
            finally:
                os.close(fd)
        except OSError:
            pass
    if p in A.get("read", []) and info["regular"]:
        try:
            with open(p, "rb") as f:
                info["content"] = f.read(256).decode("ascii", "replace")
        except OSError as e:
            info["read_error"] = e.strerror
    out["files"][p] = info
for n in A.get("netdevs", []):
    b = "/sys/class/net/" + n
    st = rd(b + "/operstate")
    out["netdevs"][n] = {"exists": os.path.isdir(b), "bridge": os.path.isdir(b + "/bridge"),
                         "operstate": st.strip() if st else None}
sys.stdout.write(json.dumps(out) + "\n")
sys.stdout.flush()
token = A["token"].encode()
lst = {}
cli = {}
end = time.time() + A.get("max_seconds", 60)
inbuf = b""
def listen(ports):
    bound, busy = [], []
    for port in ports:
        s = None
        try:
            try:
                s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                s.bind(("::", port))
            except (OSError, AttributeError) as e:
                if s is not None:
                    s.close()
                if getattr(e, "errno", None) == 98:
                    raise
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("0.0.0.0", port))
            s.listen(8)
            s.setblocking(False)
            lst[s.fileno()] = (s, port)
            bound.append(port)
        except OSError:
            if s is not None:
                s.close()
            busy.append(port)
    return {"bound": bound, "busy": busy}
while time.time() < end:
    fds = [0] + list(lst) + list(cli)
    r = select.select(fds, [], [], 0.5)[0]
    for fd in r:
        if fd == 0:
            data = os.read(0, 65536)
            if not data:
                sys.exit(0)
            inbuf += data
            while b"\n" in inbuf:
                line, inbuf = inbuf.split(b"\n", 1)
                cmd, _, arg = line.decode().partition(" ")
                if cmd == "quit":
                    sys.exit(0)
                if cmd == "listen":
                    sys.stdout.write(json.dumps(listen(json.loads(arg))) + "\n")
                    sys.stdout.flush()
        elif fd in lst:
            s, port = lst[fd]
            try:
                c, addr = s.accept()
            except OSError:
                continue
            c.setblocking(True)
            try:
                c.sendall(token + b" " + str(port).encode() + b"\n")
            except OSError:
                c.close()
                continue
            c.setblocking(False)
            cli[c.fileno()] = {"s": c, "n": 0, "head": b"", "bw": False}
        else:
            st = cli[fd]
            try:
                data = st["s"].recv(1 << 20)
            except OSError:
                data = b""
            if data and not st["bw"]:
                st["head"] += data
                if st["head"].startswith(b"BW\n"):
                    st["bw"] = True
                    st["n"] = len(st["head"]) - 3
                    st["head"] = b""
                elif len(st["head"]) >= 3:
                    st["head"] = b""
            elif data:
                st["n"] += len(data)
            if not data:
                if st["bw"]:
                    try:
                        st["s"].setblocking(True)
                        st["s"].sendall(("%d\n" % st["n"]).encode())
                    except OSError:
                        pass
                st["s"].close()
                del cli[fd]
'''


def remote_command(args, interpreter='/usr/bin/python3'):
    """The remote shell command that runs REMOTE_HELPER with ``args`` (base64: no quoting issues)."""
    payload = base64.b64encode(json.dumps(args).encode()).decode()
    script = base64.b64encode(REMOTE_HELPER.encode()).decode()
    code = 'import base64,json;A=json.loads(base64.b64decode("%s"));exec(base64.b64decode("%s"))' % (payload, script)
    return ('P=%s; [ -x "$P" ] || P=$(command -v python3) || { echo "no python3 on destination" >&2; exit 127; }; '
            'exec "$P" -c \'%s\'' % (interpreter, code))


class SshHelper:
    """The helper process on the destination, reached with the system ssh client."""

    def __init__(self, destination, options=(), connect_timeout=5, popen=subprocess.Popen):
        self.destination = destination
        self.options = list(options or ())
        self.connect_timeout = connect_timeout
        self._popen = popen
        self.proc = None
        self.error = None
        self.facts = None
        self.started = None
        self.elapsed_s = None
        self._buf = b''

    def argv(self, command):
        options = ['-T', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=%d' % self.connect_timeout] + self.options
        return ['ssh'] + self.destination.ssh_argv(options) + [command]

    def start(self, args):
        self.started = time.monotonic()
        try:
            self.proc = self._popen(self.argv(remote_command(args)), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, bufsize=0)
        except OSError as exc:
            self.error = 'cannot run ssh: %s' % exc
            self.proc = None

    def _readline(self, timeout):
        """One line of the helper's stdout, or None (and self.error) on timeout/exit."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b'\n' not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.error = 'no answer from the destination helper within %ds' % timeout
                return None
            sel = selectors.DefaultSelector()
            sel.register(fd, selectors.EVENT_READ)
            ready = sel.select(remaining)
            sel.close()
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                self.proc.wait()
                err = self.proc.stderr.read().decode('utf-8', 'replace').strip()
                self.error = err.splitlines()[-1] if err else 'ssh exited with status %s' % self.proc.returncode
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b'\n', 1)
        return line.decode('utf-8', 'replace')

    def read_facts(self, timeout):
        if self.proc is None:
            return None
        line = self._readline(timeout)
        if line is None:
            return None
        try:
            self.facts = json.loads(line)
        except ValueError:
            self.error = 'unexpected output from the destination helper: %s' % line[:200]
            return None
        self.elapsed_s = time.monotonic() - self.started
        return self.facts

    def listen(self, ports, timeout=10):
        if self.proc is None or self.facts is None:
            return None
        try:
            self.proc.stdin.write(('listen %s\n' % json.dumps(list(ports))).encode())
            self.proc.stdin.flush()
        except (OSError, ValueError) as exc:
            self.error = 'destination helper went away: %s' % exc
            return None
        line = self._readline(timeout)
        if line is None:
            return None
        try:
            return json.loads(line)
        except ValueError:
            self.error = 'unexpected output from the destination helper: %s' % line[:200]
            return None

    def close(self):
        if self.proc is None:
            return
        try:
            self.proc.stdin.write(b'quit\n')
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass


def _errno_code(err):
    if err in (errno.ECONNREFUSED,):
        return 'refused'
    if err in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM):
        return 'unreachable'
    if err in (errno.ETIMEDOUT,):
        return 'timeout'
    return errno.errorcode.get(err, str(err))


def tcp_connect_many(address, ports, timeout=3.0, expect_token=None):
    """Connect to every port of ``address`` at once; {port: {ok, error, ms}}.

    With ``expect_token``, a port only counts if the peer sends "<token> <port>" first: the
    connection reached our listener, not something else.
    """
    family = socket.AF_INET6 if ':' in address else socket.AF_INET
    sel = selectors.DefaultSelector()
    results = {}
    started = {}
    pending = {}
    for port in ports:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        started[port] = time.monotonic()
        rc = s.connect_ex((address, port))
        if rc not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            results[port] = {'ok': False, 'error': _errno_code(rc)}
            s.close()
            continue
        pending[port] = {'sock': s, 'stage': 'connect', 'buf': b''}
        sel.register(s, selectors.EVENT_WRITE, port)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for key, dummy in sel.select(max(0.0, deadline - time.monotonic())):
            port = key.data
            st = pending[port]
            s = st['sock']
            if st['stage'] == 'connect':
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    results[port] = {'ok': False, 'error': _errno_code(err)}
                elif expect_token is None:
                    results[port] = {'ok': True, 'ms': round((time.monotonic() - started[port]) * 1000, 1)}
                else:
                    st['stage'] = 'token'
                    sel.modify(s, selectors.EVENT_READ, port)
                    continue
            else:
                try:
                    data = s.recv(256)
                except OSError as exc:
                    results[port] = {'ok': False, 'error': _errno_code(exc.errno)}
                    data = None
                if data:
                    st['buf'] += data
                    if b'\n' not in st['buf']:
                        continue
                if data is not None:
                    line = st['buf'].split(b'\n', 1)[0].decode('ascii', 'replace')
                    ok = line == '%s %d' % (expect_token, port)
                    results[port] = {'ok': ok, 'error': None if ok else 'wrong_peer',
                                     'ms': round((time.monotonic() - started[port]) * 1000, 1)}
            sel.unregister(s)
            s.close()
            del pending[port]
    for port, st in pending.items():
        results[port] = {'ok': False, 'error': 'timeout'}
        try:
            sel.unregister(st['sock'])
        except (KeyError, ValueError):
            pass
        st['sock'].close()
    sel.close()
    return results


def measure_bandwidth(address, port, token, seconds=3.0, max_bytes=8 * 1024 * MIB, connect_timeout=3.0):
    """Send data to the helper's sink for ``seconds`` (or ``max_bytes``); the rate counts until
    the destination confirmed how much it received."""
    family = socket.AF_INET6 if ':' in address else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(connect_timeout)
    try:
        s.connect((address, port))
        hello = b''
        while b'\n' not in hello:
            chunk = s.recv(256)
            if not chunk:
                return {'error': 'the listener closed the connection'}
            hello += chunk
        if hello.split(b'\n', 1)[0].decode('ascii', 'replace') != '%s %d' % (token, port):
            return {'error': 'port %d answered, but not by our listener' % port}
        s.settimeout(max(seconds, 1.0) + 10)
        block = os.urandom(MIB)
        s.sendall(b'BW\n')
        sent = 0
        start = time.monotonic()
        stop = start + seconds
        while time.monotonic() < stop and sent < max_bytes:
            s.sendall(block)
            sent += len(block)
        s.shutdown(socket.SHUT_WR)
        reply = b''
        while b'\n' not in reply:
            chunk = s.recv(64)
            if not chunk:
                break
            reply += chunk
        elapsed = time.monotonic() - start
        received = int(reply.strip() or 0)
    except (OSError, ValueError) as exc:
        return {'error': str(exc)}
    finally:
        s.close()
    if received <= 0 or elapsed <= 0:
        return {'error': 'the destination received nothing'}
    return {'bytes': received, 'seconds': round(elapsed, 3), 'mib_s': round(received / float(MIB) / elapsed, 1),
            'port': port}


def resolve(address):
    infos = socket.getaddrinfo(address, None, 0, socket.SOCK_STREAM)
    seen = []
    for info in infos:
        ip = info[4][0]
        if ip not in seen:
            seen.append(ip)
    return seen


# ---------------------------------------------------------------------------
# Runner (libvirt + SSH glue)
# ---------------------------------------------------------------------------

def _lv_message(exc):
    if is_libvirt_error(exc) or hasattr(exc, 'get_error_message'):
        return libvirt_error_details(exc)['libvirt_error_message']
    if isinstance(exc, KvmopsError):
        return exc.msg
    return str(exc)


def _lv_code(exc):
    try:
        return exc.get_error_code()
    except Exception:  # pylint: disable=broad-except
        return None


class PreflightRunner:
    """Gathers facts from both hosts and produces the checks. Never changes a guest.

    ``client`` is the module's LibvirtClient (``client.conn`` is this host, ``open_peer`` the
    destination). ``params`` are the module's parameters. The only thing written anywhere is one
    small probe file per disk directory on this host, removed before returning.
    """

    PROBE_PREFIX = 'kvmops-preflight-'

    def __init__(self, client, params, ssh_factory=SshHelper, clock=time.monotonic, mountinfo_path='/proc/self/mountinfo'):
        self.client = client
        self.p = params
        self.ssh_factory = ssh_factory
        self.clock = clock
        self.mountinfo_path = mountinfo_path
        self.checks = []
        self.skipped = []
        self.timings = {}
        self.endpoint = parse_destination(params['dest'], params.get('transport') or 'ssh')
        self.token = secrets.token_hex(12)
        self.probes = {}      # directory -> probe path written here
        self.probe_errors = {}

    # -- small utilities ---------------------------------------------------
    def add(self, item):
        self.checks.append(item)

    def _time(self, key, start):
        self.timings[key] = round(self.clock() - start, 3)

    # -- source side -----------------------------------------------------------
    def _guests(self, conn):
        names = self.p.get('guests')
        doms = []
        if not names:
            for dom in conn.listAllDomains(VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                doms.append(dom)
            return sorted(doms, key=lambda d: d.name())
        for name in names:
            try:
                doms.append(conn.lookupByName(name))
            except Exception as exc:  # pylint: disable=broad-except
                if not is_libvirt_error(exc):
                    raise
                self.add(check('guest.exists', FAIL, 'no domain %r on this host: %s' % (name, _lv_message(exc)),
                               remedy='Check the name with `virsh list --all` on the source; names are case-sensitive.',
                               guest=name))
        return doms

    def _read_guest(self, dom):
        xml = dom.XMLDesc(0)
        info = parse_domain(xml)
        info['active'] = bool(dom.isActive())
        info['persistent'] = bool(dom.isPersistent())
        info['inactive_cpu'] = None
        if info['persistent']:
            try:
                inactive = parse_domain(dom.XMLDesc(VIR_DOMAIN_XML_INACTIVE))
                info['inactive_cpu'] = inactive['cpu']
            except Exception as exc:  # pylint: disable=broad-except
                if not is_libvirt_error(exc):
                    raise
        for disk in info['disks']:
            disk['resolved_path'] = None
            disk['allocation'] = 0
            disk['capacity'] = 0
            if disk['type'] == 'volume' and disk['pool'] and disk['volume']:
                try:
                    vol = self.client.conn.storagePoolLookupByName(disk['pool']).storageVolLookupByName(disk['volume'])
                    disk['resolved_path'] = vol.path()
                except Exception as exc:  # pylint: disable=broad-except
                    if not is_libvirt_error(exc):
                        raise
            if info['active'] and disk['target'] and (disk['path'] or disk['resolved_path']) and disk['type'] != 'network':
                try:
                    capacity, allocation, _physical = dom.blockInfo(disk['target'])
                    disk['capacity'] = capacity
                    disk['allocation'] = allocation
                except Exception as exc:  # pylint: disable=broad-except
                    if not is_libvirt_error(exc):
                        raise
        return info

    def _file_path(self, disk):
        if disk['type'] == 'file':
            return disk['path']
        if disk['type'] == 'volume':
            return disk['resolved_path']
        return None

    def _write_probes(self, guests):
        """One probe file per directory holding a file-backed disk."""
        for g in guests:
            for disk in g['disks']:
                path = self._file_path(disk)
                if not path:
                    continue
                directory = os.path.dirname(path)
                if directory in self.probes or directory in self.probe_errors:
                    continue
                probe = os.path.join(directory, '%s%s.probe' % (self.PROBE_PREFIX, secrets.token_hex(6)))
                try:
                    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    try:
                        os.write(fd, self.token.encode())
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                    self.probes[directory] = probe
                except OSError as exc:
                    self.probe_errors[directory] = 'cannot write a probe file in %s here: %s' % (directory, exc.strerror)

    def _remove_probes(self):
        for probe in self.probes.values():
            try:
                os.unlink(probe)
            except OSError:
                pass

    def _mounts(self):
        try:
            with open(self.mountinfo_path) as f:
                return parse_mountinfo(f.read())
        except OSError:
            return []

    # -- destination over libvirt ---------------------------------------------
    def _open_dest(self, out):
        start = self.clock()
        try:
            out['conn'] = self.client.open_peer(self.endpoint.uri)
        except Exception as exc:  # pylint: disable=broad-except
            out['error'] = _lv_message(exc)
        out['elapsed_s'] = self.clock() - start

    def _libvirt_probe(self, dconn, directory, probe):
        """Read the probe file through the destination's libvirt: the pool whose target is
        the directory, refreshed, the volume at the probe path, downloaded."""
        try:
            pool = dconn.storagePoolLookupByTargetPath(directory)
        except Exception as exc:  # pylint: disable=broad-except
            return {'seen': None, 'error': 'no storage pool at %s on the destination to read the probe through (%s)' % (
                directory, _lv_message(exc))}
        try:
            refresh_pool(pool)
            vol = dconn.storageVolLookupByPath(probe)
        except Exception as exc:  # pylint: disable=broad-except
            if _lv_code(exc) == 50:  # VIR_ERR_NO_STORAGE_VOL: the file is not there
                return {'seen': False, 'pool': pool.name()}
            return {'seen': None, 'error': _lv_message(exc)}
        data = b''
        try:
            stream = dconn.newStream(0)
            vol.download(stream, 0, 256, 0)
            while True:
                chunk = stream.recv(256)
                if not chunk or not isinstance(chunk, bytes):
                    break
                data += chunk
            stream.finish()
        except Exception as exc:  # pylint: disable=broad-except
            return {'seen': None, 'error': 'probe volume visible on the destination but unreadable: %s' % _lv_message(exc)}
        return {'seen': data.decode('ascii', 'replace') == self.token, 'pool': pool.name()}

    # -- main ----------------------------------------------------------------
    def run(self):
        t0 = self.clock()
        ep = self.endpoint
        sconn = self.client.conn
        src = {'hostname': sconn.getHostname(), 'caps': parse_capabilities(sconn.getCapabilities()),
               'libvirt': sconn.getLibVersion(), 'qemu': sconn.getVersion()}
        doms = self._guests(sconn)
        guests = []
        for dom in doms:
            try:
                guests.append(self._read_guest(dom))
            except Exception as exc:  # pylint: disable=broad-except
                if not is_libvirt_error(exc) or _lv_code(exc) != VIR_ERR_NO_DOMAIN:
                    raise
                # Migrated away (an evacuation running meanwhile) or undefined between the listing
                # and the reading: nothing left here to check.
                self.add(check('guest.exists', WARN, '%s left this host while the preflight ran (migrated away or '
                               'undefined); not checked' % dom.name(), guest=dom.name(),
                               remedy='Run the preflight again if it is to move from here.'))
        self._time('source_s', t0)
        try:
            return self._run(t0, ep, src, guests)
        finally:
            self._remove_probes()

    def _run(self, t0, ep, src, guests):
        p = self.p
        probe_via = p.get('storage_probe') or 'auto'
        self._write_probes(guests)

        # What the destination helper should look at.
        files, read = [], []
        for g in guests:
            for disk in g['disks']:
                path = self._file_path(disk) or (disk['path'] if disk['type'] == 'block' else None)
                if path and path not in files:
                    files.append(path)
        if probe_via in ('auto', 'ssh'):
            for probe in self.probes.values():
                files.append(probe)
                read.append(probe)
        netdevs = sorted(set(i['bridge'] if i['type'] == 'bridge' else i['dev'] for g in guests for i in g['interfaces']
                             if i['type'] in ('bridge', 'direct') and (i['bridge'] or i['dev'])))
        helper_args = {'token': self.token, 'files': files, 'read': read, 'netdevs': netdevs,
                       'conf_files': ['/etc/libvirt/qemu.conf', '/etc/libvirt/libvirtd.conf'],
                       'max_seconds': 30 + int(p.get('bandwidth_seconds') or 0)}

        ssh = self.ssh_factory(ep, options=p.get('ssh_options') or (), connect_timeout=int(p.get('connect_timeout') or 5))
        ssh.start(helper_args)
        dest = {}
        opener = threading.Thread(target=self._open_dest, args=(dest,), name='kvmops-preflight-open')
        opener.daemon = True
        opener.start()
        try:
            facts = ssh.read_facts(timeout=float(p.get('connect_timeout') or 5) + 10)
            self._time('ssh_s', t0)
            opener.join(float(p.get('connect_timeout') or 5) + 25)
            if opener.is_alive():
                dest['error'] = 'no answer within %ss' % (int(p.get('connect_timeout') or 5) + 25)
            self._time('dest_open_s', t0)
            return self._evaluate(t0, ep, src, guests, ssh, facts, dest, probe_via)
        finally:
            ssh.close()

    def _evaluate(self, t0, ep, src, guests, ssh, facts, dest, probe_via):
        p = self.p
        # --- connectivity --------------------------------------------------------
        self.add(check_ssh({'ok': facts is not None, 'error': ssh.error, 'elapsed_s': ssh.elapsed_s},
                           ep.transport, ep.ssh_target))
        self.add(check_libvirt_connection(ep.uri, dest.get('error'), dest.get('elapsed_s')))
        dconn = dest.get('conn')
        dst = {}
        if dconn is not None:
            dst = {'hostname': dconn.getHostname(), 'caps': parse_capabilities(dconn.getCapabilities()),
                   'libvirt': dconn.getLibVersion(), 'qemu': dconn.getVersion()}
            self.add(check_distinct_hosts(src['hostname'], dst['hostname'], src['caps']['uuid'], dst['caps']['uuid']))
        elif facts is not None:
            self.add(check_distinct_hosts(src['hostname'], facts.get('hostname'), None, None))
        conf = (facts or {}).get('conf') or {}
        qemu_conf = parse_conf(conf.get('/etc/libvirt/qemu.conf'))
        libvirtd_conf = parse_conf(conf.get('/etc/libvirt/libvirtd.conf'))

        # --- versions / machine / cpu ----------------------------------------------
        if dconn is not None:
            self.add(check_version('libvirt', src['libvirt'], dst['libvirt']))
            self.add(check_version('qemu', src['qemu'], dst['qemu']))
            baseline_cache = {}
            for g in guests:
                self.add(check_machine_type(g['name'], g, dst['caps']))
                self._cpu_checks(g, dconn, baseline_cache)
        else:
            self.skipped.append('versions, cpu, network (libvirt networks), capacity, storage copy space: '
                                'no libvirt connection to the destination')
        self._time('versions_cpu_s', t0)

        # --- storage ---------------------------------------------------------------
        mounts = self._mounts()
        dest_files = (facts or {}).get('files') or {}
        for g in guests:
            for disk in g['disks']:
                self.add(self._disk_check(g, disk, mounts, dest_files, dconn, src, facts, probe_via))
        self._time('storage_s', t0)

        # --- network ---------------------------------------------------------------
        netdevs = (facts or {}).get('netdevs') if facts is not None else None
        net_cache = {}
        for g in guests:
            for iface in g['interfaces']:
                dest_network = None
                if iface['type'] == 'network' and dconn is not None:
                    dest_network = net_cache.get(iface['network'])
                    if dest_network is None:
                        dest_network = dest_network_facts(dconn, iface['network'])
                        net_cache[iface['network']] = dest_network
                elif iface['type'] == 'network':
                    self.add(check('network.interface', WARN, "interface %s: cannot check network '%s' without a "
                                   'libvirt connection to the destination' % (iface['mac'], iface['network']),
                                   remedy='Fix connectivity.libvirt first.', guest=g['name']))
                    continue
                dev = iface['bridge'] if iface['type'] == 'bridge' else iface['dev']
                dest_netdev = netdevs.get(dev) if (netdevs is not None and dev) else None
                self.add(check_interface(g['name'], iface, dest_network, dest_netdev))
            if g['hostdevs']:
                self.add(check('network.hostdev', FAIL, '%d host device(s) assigned (hostdev): they block live '
                               'migration' % g['hostdevs'], guest=g['name'],
                               remedy='Detach the host devices before migrating and re-attach on the destination.'))
        self._time('network_s', t0)

        # --- firewall ---------------------------------------------------------------
        bandwidth = self._firewall_checks(ep, ssh, facts, dst, qemu_conf, libvirtd_conf)
        self._time('firewall_s', t0)

        # --- capacity ---------------------------------------------------------------
        if dconn is not None:
            self._capacity_checks(dconn, guests)
        self._time('capacity_s', t0)

        estimates = []
        if bandwidth is not None:
            self.add(check_bandwidth(bandwidth, p.get('min_bandwidth_mib_s')))
            rate = bandwidth.get('mib_s')
            for g in guests:
                copy = sum(d.get('allocation') or 0 for d in g['disks'] if d.get('needs_copy'))
                memory = (g['current_memory_kib'] or g['memory_kib'] or 0) * 1024
                estimates.append({'guest': g['name'], 'memory_mib': mib(memory), 'copy_storage_mib': mib(copy),
                                  'seconds': estimate_seconds(memory, copy, rate)})
        self.timings['total_s'] = round(self.clock() - t0, 3)
        return {
            'checks': self.checks,
            'summary': summarize(self.checks, self.skipped),
            'source': {'hostname': src['hostname'], 'uuid': src['caps']['uuid'], 'libvirt': format_version(src['libvirt']),
                       'qemu': format_version(src['qemu'])},
            'destination': {'uri': ep.uri, 'host': ep.host, 'transport': ep.transport,
                            'hostname': dst.get('hostname') or (facts or {}).get('hostname'),
                            'uuid': (dst.get('caps') or {}).get('uuid'),
                            'libvirt': format_version(dst['libvirt']) if dst else None,
                            'qemu': format_version(dst['qemu']) if dst else None,
                            'migration_ports': '%d-%d' % migration_port_range(qemu_conf) if facts else None},
            'guests': [g['name'] for g in guests],
            'bandwidth': bandwidth,
            'estimates': estimates,
            'timings': self.timings,
        }

    # -- pieces ------------------------------------------------------------------
    def _cpu_checks(self, g, dconn, baseline_cache):
        def compare(cpu):
            try:
                return {'result': dconn.compareHypervisorCPU(g['emulator'], g['arch'], g['machine'], g['virt_type'],
                                                             cpu['xml'], VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE)}
            except Exception as exc:  # pylint: disable=broad-except
                if not is_libvirt_error(exc):
                    raise
                return {'error_code': _lv_code(exc), 'message': _lv_message(exc)}

        def needs_baseline(result):
            return result is not None and (result.get('result') == CPU_COMPARE_INCOMPATIBLE or
                                           result.get('error_code') == VIR_ERR_CPU_INCOMPATIBLE)

        live = compare(g['cpu']) if g['cpu'] and g['cpu']['mode'] not in ('host-passthrough', 'maximum') else None
        persistent = None
        inactive = g.get('inactive_cpu')
        if inactive and inactive['mode'] not in ('host-passthrough', 'maximum') and (
                not g['cpu'] or inactive['xml'] != g['cpu']['xml']):
            persistent = compare(inactive)
        baseline = None
        if needs_baseline(live) or needs_baseline(persistent) or (
                g['cpu'] and g['cpu']['mode'] in ('host-passthrough', 'maximum')):
            baseline = self._baseline(g, dconn, baseline_cache)
        self.add(check_cpu(g['name'], g['cpu'], live, baseline, 'live'))
        if persistent is not None:
            self.add(check_cpu(g['name'], inactive, persistent, baseline, 'persistent'))

    def _baseline(self, g, dconn, cache):
        key = (g['emulator'], g['arch'], g['machine'], g['virt_type'])
        if key in cache:
            return cache[key]
        model = None
        try:
            cpus = []
            for conn in (self.client.conn, dconn):
                xml = host_model_cpu_xml(conn.getDomainCapabilities(g['emulator'], g['arch'], g['machine'],
                                                                    g['virt_type'], 0))
                if xml:
                    cpus.append(xml)
            if len(cpus) == 2:
                model = cpu_model_of(dconn.baselineHypervisorCPU(g['emulator'], g['arch'], g['machine'],
                                                                 g['virt_type'], cpus, 0))
        except Exception as exc:  # pylint: disable=broad-except
            if not is_libvirt_error(exc):
                raise
        cache[key] = model
        return model

    def _disk_check(self, g, disk, mounts, dest_files, dconn, src, facts, probe_via):
        path = self._file_path(disk)
        facts_d = {'src_qemu_version': src['qemu'], 'resolved_path': disk.get('resolved_path')}
        if disk['type'] == 'volume' and not disk.get('resolved_path'):
            return check('storage.disk', FAIL, '%s: volume %s/%s cannot be resolved on this host' % (
                disk['target'], disk['pool'], disk['volume']), guest=g['name'],
                remedy='Check the storage pool on the source.')
        if path or disk['type'] == 'block':
            target = path or disk['path']
            facts_d['fs'] = filesystem_of(target, mounts) if mounts else None
            facts_d['dest_file'] = dest_files.get(target) if facts is not None else None
        if path:
            directory = os.path.dirname(path)
            probe = {'method': None, 'seen': None}
            if directory in self.probe_errors:
                probe['write_error'] = self.probe_errors[directory]
            elif directory in self.probes:
                probe_path = self.probes[directory]
                seen = None
                if facts is not None and probe_via in ('auto', 'ssh'):
                    info = dest_files.get(probe_path) or {}
                    if info.get('exists'):
                        seen = info.get('content') == self.token
                    elif info:
                        seen = False
                    probe = {'method': 'ssh', 'seen': seen}
                if seen is None and dconn is not None and probe_via in ('auto', 'libvirt'):
                    lv = self._libvirt_probe(dconn, directory, probe_path)
                    probe = {'method': 'libvirt storage pool %s' % lv.get('pool') if lv.get('pool') else 'libvirt',
                             'seen': lv['seen'], 'error': lv.get('error')}
                if probe['seen'] is None and not probe.get('error'):
                    probe['error'] = ('no way to look at the destination (SSH failed and %s)' % (
                        'no libvirt connection' if dconn is None else 'storage_probe=ssh'))
            facts_d['probe'] = probe
            if probe.get('seen') is False and not disk['readonly']:
                disk['needs_copy'] = True
                facts_d['need_bytes'] = disk.get('allocation') or disk.get('capacity') or 0
                if dconn is not None:
                    facts_d['dest_pool'] = self._dest_pool(dconn, directory)
        return check_disk(g['name'], disk, facts_d)

    def _dest_pool(self, dconn, directory):
        try:
            pool = dconn.storagePoolLookupByTargetPath(directory)
        except Exception as exc:  # pylint: disable=broad-except
            if not is_libvirt_error(exc):
                raise
            return {'error': _lv_message(exc)}
        active = bool(pool.isActive())
        available = None
        if active:
            try:
                refresh_pool(pool)
            except Exception:  # pylint: disable=broad-except
                pass
            available = pool.info()[3]
        return {'name': pool.name(), 'active': active, 'available': available}

    def _firewall_checks(self, ep, ssh, facts, dst, qemu_conf, libvirtd_conf):
        p = self.p
        host = ep.host
        timeout = float(p.get('connect_timeout') or 5)
        # ssh and libvirt transport ports, to the address the URI names.
        try:
            dest_ips = resolve(host)
        except OSError as exc:
            self.add(check('firewall.ssh', FAIL, 'cannot resolve %s here: %s' % (host, exc),
                           remedy='Make %s resolvable on this host (DNS or /etc/hosts).' % host))
            return None
        address = dest_ips[0]
        ports = {'firewall.ssh': (ep.ssh_port or 22, 'ssh')}
        if ep.transport in ('tcp', 'tls'):
            ports['firewall.libvirt'] = (libvirt_port(libvirtd_conf, ep.transport, ep.port),
                                         'libvirt over %s' % ep.transport)
        results = tcp_connect_many(address, [v[0] for v in ports.values()], timeout=timeout)
        for name, (port, what) in sorted(ports.items()):
            self.add(check_tcp_port(name, host, port, results.get(port, {'ok': False, 'error': 'timeout'}), what))

        # The migration stream: QEMU here connects to migration_host, else the destination's hostname.
        mig_host = qemu_conf.get('migration_host') or dst.get('hostname') or (facts or {}).get('hostname') or host
        try:
            mig_ips = resolve(mig_host)
            self.add(check_migration_address(mig_host, mig_ips))
        except OSError as exc:
            self.add(check_migration_address(mig_host, [], error=str(exc)))
            mig_ips = dest_ips
        mig_address = next((ip for ip in mig_ips if not ip.startswith('127.') and ip != '::1'), mig_ips[0])
        port_range = migration_port_range(qemu_conf)
        if facts is None:
            self.add(check_migration_ports(host, port_range, [], [], {},
                                           listener_error=ssh.error or 'no SSH session to the destination'))
            return {'error': 'needs SSH to the destination'} if p.get('measure_bandwidth') else None
        wanted = sample_ports(port_range[0], port_range[1])
        listening = ssh.listen(wanted)
        if listening is None:
            self.add(check_migration_ports(host, port_range, [], [], {}, listener_error=ssh.error))
            return {'error': ssh.error} if p.get('measure_bandwidth') else None
        tested = listening['bound']
        results = tcp_connect_many(mig_address, tested, timeout=timeout, expect_token=self.token) if tested else {}
        self.add(check_migration_ports(host, port_range, tested, listening['busy'], results,
                                       sampled=len(wanted) < port_range[1] - port_range[0] + 1))
        if not p.get('measure_bandwidth'):
            return None
        open_ports = [port for port in tested if results.get(port, {}).get('ok')]
        if not open_ports:
            return {'error': 'no open migration port to measure through'}
        return measure_bandwidth(mig_address, open_ports[0], self.token, seconds=float(p.get('bandwidth_seconds') or 3))

    def _capacity_checks(self, dconn, guests):
        p = self.p
        margin = int(p.get('memory_margin_mib') if p.get('memory_margin_mib') is not None else 256)
        free = dest_available_memory(dconn)
        for g in guests:
            self.add(check_memory(g['name'], g['memory_kib'] or 0, free, margin))
        if len(guests) > 1:
            self.add(check_memory_total([g['memory_kib'] or 0 for g in guests], free, margin))
        info = dconn.getInfo()
        running = 0
        for dom in dconn.listAllDomains(VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            try:
                running += dom.info()[3]
            except Exception:  # pylint: disable=broad-except
                pass
        incoming = sum(g['vcpus'] or 1 for g in guests)
        ratio = float(p.get('vcpu_overcommit_ratio') or 4.0)
        self.add(check_vcpus(info[2], running, incoming, ratio))
