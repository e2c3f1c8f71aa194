# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight's runner: gathers what both hosts say and turns it into the checks' verdicts.

Private module_utils file (leading underscore): its API may change without notice.

libvirt on both hosts through the module's ``LibvirtClient``, one ssh session to the destination
running the remote helper (``_remote_probe``: facts, probe-file reads, short-lived listeners in the
migration port range, a bandwidth sink), and real TCP connects from this host. Every decision is a
pure function of ``_preflight_checks`` / ``_preflight_storage_checks``; this file only gathers.
"""

from __future__ import annotations

import os
import secrets
import threading
import time

from ansible_collections.kvmops.migration.plugins.module_utils._errors import is_libvirt_error
from ansible_collections.kvmops.migration.plugins.module_utils._compat_checks import (
    CpuQuestions,
    guest_checks,
    version_checks,
)
from ansible_collections.kvmops.migration.plugins.module_utils._destination import parse_destination
from ansible_collections.kvmops.migration.plugins.module_utils._dirtyrate import resident_bytes
from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import parse_capabilities, parse_domain
from ansible_collections.kvmops.migration.plugins.module_utils._host_facts import (
    dest_available_memory,
    dest_network_facts,
    dest_pool_facts,
    filesystem_of,
    libvirt_port,
    lv_code,
    lv_message,
    migration_port_range,
    parse_conf,
    parse_mountinfo,
    read_through_pool,
)
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_checks import (
    check_bandwidth,
    check_distinct_hosts,
    check_interface,
    check_libvirt_connection,
    check_memory,
    check_memory_total,
    check_migration_address,
    check_migration_ports,
    check_ssh,
    check_tcp_port,
    check_vcpus,
)
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_spec import (
    FAIL,
    WARN,
    check,
    format_version,
    summarize,
)
from ansible_collections.kvmops.migration.plugins.module_utils._migration_history import history_from_domain_xml
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_prediction import (
    DirtyRateProbe,
    guest_estimates,
    set_unknown,
)
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_storage_checks import check_disk
from ansible_collections.kvmops.migration.plugins.module_utils._remote_probe import (
    SshHelper,
    measure_bandwidth,
    resolve,
    sample_ports,
    tcp_connect_many,
)
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_CONNECT_LIST_DOMAINS_ACTIVE,
    VIR_DOMAIN_XML_INACTIVE,
    VIR_ERR_NO_DOMAIN,
)

PROBE_BYTES = 256  # more than a probe file holds (its token)


class Observed:
    """What the runner has read before judging: the source host, its guests, the ssh session to
    the destination and its helper's ``facts`` (None when ssh failed), the destination's libvirt
    connection (or why there is none), and, once connected, the destination's own facts."""

    def __init__(self, source, guests, ssh, facts, dest):
        self.source = source          # {hostname, caps, libvirt, qemu}
        self.guests = guests          # parse_domain() of each guest, with what the runner added
        self.ssh = ssh
        self.facts = facts
        self.dest_conn = dest.get('conn')
        self.dest_error = dest.get('error')
        self.dest_open_s = dest.get('elapsed_s')
        self.destination = {}         # {hostname, caps, libvirt, qemu} through dest_conn

    @property
    def dest_files(self):
        """{path: file facts} as the destination sees the disks' paths and the probe files."""
        return (self.facts or {}).get('files') or {}


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
        self.probe_via = params.get('storage_probe') or 'auto'
        self.probes = {}      # directory -> probe path written here
        self.probe_errors = {}
        self.started = None
        self.domains = {}     # guest name -> its virDomain here (for the dirty-rate measurement)
        self.dirty_rates = None

    # -- small utilities -----------------------------------------------------------
    def add(self, item):
        self.checks.append(item)

    def _time(self, key):
        """Seconds since the run started, at the end of a phase."""
        self.timings[key] = round(self.clock() - self.started, 3)

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
                self.add(check('guest.exists', FAIL, 'no domain %r on this host: %s' % (name, lv_message(exc)),
                               remedy='Check the name with `virsh list --all` on the source; names are case-sensitive.',
                               guest=name))
        return doms

    def _read_guest(self, dom):
        xml = dom.XMLDesc(0)
        info = parse_domain(xml)
        info['history'] = history_from_domain_xml(xml)  # earlier migrations' figures, for the predictions
        info['active'] = bool(dom.isActive())
        # QEMU's resident memory: the prediction's floor of the guest's zero pages (never touched, not resident)
        info['resident_bytes'] = resident_bytes(dom) if info['active'] else None
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
            with open(self.mountinfo_path, encoding='utf-8', errors='replace') as f:
                return parse_mountinfo(f.read())
        except OSError:
            return []

    # -- destination over libvirt ---------------------------------------------
    def _open_dest(self, out):
        start = self.clock()
        try:
            out['conn'] = self.client.open_peer(self.endpoint.uri)
        except Exception as exc:  # pylint: disable=broad-except
            out['error'] = lv_message(exc)
        out['elapsed_s'] = self.clock() - start

    # -- main ----------------------------------------------------------------
    def run(self):
        self.started = self.clock()
        sconn = self.client.conn
        source = {'hostname': sconn.getHostname(), 'caps': parse_capabilities(sconn.getCapabilities()),
                  'libvirt': sconn.getLibVersion(), 'qemu': sconn.getVersion()}
        guests = []
        for dom in self._guests(sconn):
            try:
                guests.append(self._read_guest(dom))
                self.domains[dom.name()] = dom
            except Exception as exc:  # pylint: disable=broad-except
                if not is_libvirt_error(exc) or lv_code(exc) != VIR_ERR_NO_DOMAIN:
                    raise
                # Migrated away (an evacuation running meanwhile) or undefined between the listing
                # and the reading: nothing left here to check.
                self.add(check('guest.exists', WARN, '%s left this host while the preflight ran (migrated away or '
                               'undefined); not checked' % dom.name(), guest=dom.name(),
                               remedy='Run the preflight again if it is to move from here.'))
        self._time('source_s')
        try:
            return self._observe_destination(source, guests)
        finally:
            self._remove_probes()

    def _helper_request(self, guests):
        """What the destination helper should look at: the disks' paths there, the probe files
        (read, when the probe goes over ssh), the bridges and devices the interfaces use."""
        self._write_probes(guests)
        files, read = [], []
        for g in guests:
            for disk in g['disks']:
                path = self._file_path(disk) or (disk['path'] if disk['type'] == 'block' else None)
                if path and path not in files:
                    files.append(path)
        if self.probe_via in ('auto', 'ssh'):
            for probe in self.probes.values():
                files.append(probe)
                read.append(probe)
        netdevs = sorted(set(i['bridge'] if i['type'] == 'bridge' else i['dev'] for g in guests for i in g['interfaces']
                             if i['type'] in ('bridge', 'direct') and (i['bridge'] or i['dev'])))
        return {'token': self.token, 'files': files, 'read': read, 'netdevs': netdevs,
                'conf_files': ['/etc/libvirt/qemu.conf', '/etc/libvirt/libvirtd.conf'],
                'max_seconds': 30 + int(self.p.get('bandwidth_seconds') or 0)}

    def _observe_destination(self, source, guests):
        """The ssh session (its helper's facts) and the libvirt connection to the destination, opened
        at once; then the checks, while the helper still listens for the firewall and bandwidth tests."""
        timeout = int(self.p.get('connect_timeout') or 5)
        request = self._helper_request(guests)
        if self.p.get('measure_bandwidth'):  # the predictions need the dirty rates: measured meanwhile
            active = [g for g in guests if g['active']]
            self.dirty_rates = DirtyRateProbe([self.domains[g['name']] for g in active],
                                              self.p.get('dirty_rate_seconds') or 1,
                                              probe=[self.domains[g['name']] for g in active if set_unknown(g)]).start()
        ssh = self.ssh_factory(self.endpoint, options=self.p.get('ssh_options') or (), connect_timeout=timeout)
        ssh.start(request)
        dest = {}
        opener = threading.Thread(target=self._open_dest, args=(dest,), name='kvmops-preflight-open')
        opener.daemon = True
        opener.start()
        try:
            facts = ssh.read_facts(timeout=timeout + 10)
            self._time('ssh_s')
            opener.join(timeout + 25)
            if opener.is_alive():
                dest['error'] = 'no answer within %ss' % (timeout + 25)
            self._time('dest_open_s')
            return self._evaluate(Observed(source, guests, ssh, facts, dest))
        finally:
            ssh.close()

    def _evaluate(self, observed):
        self._connectivity_checks(observed)
        conf = (observed.facts or {}).get('conf') or {}
        qemu_conf = parse_conf(conf.get('/etc/libvirt/qemu.conf'))
        libvirtd_conf = parse_conf(conf.get('/etc/libvirt/libvirtd.conf'))
        dconn, dst = observed.dest_conn, observed.destination
        if dconn is not None:
            self.checks.extend(version_checks(observed.source, dst))
            cpus = CpuQuestions(self.client.conn, dconn)
            for g in observed.guests:
                self.checks.extend(guest_checks(g, observed.source, dst, cpus))
        else:
            self.skipped.append('versions, cpu, network (libvirt networks), capacity, storage copy space: '
                                'no libvirt connection to the destination')
        self._time('versions_cpu_s')
        mounts = self._mounts()
        for g in observed.guests:
            for disk in g['disks']:
                self.add(self._disk_check(g, disk, observed, mounts))
        self._time('storage_s')
        self._network_checks(observed)
        self._time('network_s')
        bandwidth = self._firewall_checks(observed, qemu_conf, libvirtd_conf)
        self._time('firewall_s')
        if dconn is not None:
            self._capacity_checks(dconn, observed.guests)
        self._time('capacity_s')
        estimates = []
        if bandwidth is not None:
            self.add(check_bandwidth(bandwidth, self.p.get('min_bandwidth_mib_s')))
            estimates = self._predictions(observed.guests, bandwidth.get('mib_s'))
        self._time('total_s')
        return self._report(observed, bandwidth, estimates, qemu_conf)

    def _report(self, observed, bandwidth, estimates, qemu_conf):
        ep, src, dst, facts = self.endpoint, observed.source, observed.destination, observed.facts
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
            'guests': [g['name'] for g in observed.guests],
            'bandwidth': bandwidth,
            'estimates': estimates,
            'dirty_rate': self._dirty_rate_view(),
            'timings': self.timings,
        }

    # -- pieces ------------------------------------------------------------------
    def _connectivity_checks(self, observed):
        """ssh and libvirt to the destination, and whether it is another host at all; reads the
        destination's facts over libvirt into ``observed.destination``."""
        ep = self.endpoint
        ssh = observed.ssh
        self.add(check_ssh({'ok': observed.facts is not None, 'error': ssh.error, 'elapsed_s': ssh.elapsed_s},
                           ep.transport, ep.ssh_target))
        self.add(check_libvirt_connection(ep.uri, observed.dest_error, observed.dest_open_s))
        dconn = observed.dest_conn
        if dconn is not None:
            observed.destination = {'hostname': dconn.getHostname(), 'caps': parse_capabilities(dconn.getCapabilities()),
                                    'libvirt': dconn.getLibVersion(), 'qemu': dconn.getVersion()}
            self.add(check_distinct_hosts(observed.source['hostname'], observed.destination['hostname'],
                                          observed.source['caps']['uuid'], observed.destination['caps']['uuid']))
        elif observed.facts is not None:
            self.add(check_distinct_hosts(observed.source['hostname'], observed.facts.get('hostname'), None, None))

    def _network_checks(self, observed):
        netdevs = observed.facts.get('netdevs') if observed.facts is not None else None
        net_cache = {}
        for g in observed.guests:
            for iface in g['interfaces']:
                dest_network = None
                if iface['type'] == 'network' and observed.dest_conn is not None:
                    dest_network = net_cache.get(iface['network'])
                    if dest_network is None:
                        dest_network = dest_network_facts(observed.dest_conn, iface['network'])
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

    def _predictions(self, guests, mib_s):
        """Each guest's predicted migration over the measured bandwidth (``_preflight_prediction``)."""
        report = self.dirty_rates.report() if self.dirty_rates is not None else None
        if report is not None:
            self.timings['dirty_rate_s'] = round(report.elapsed_s, 3)
        return guest_estimates(guests, report, mib_s)

    def _dirty_rate_view(self):
        if self.dirty_rates is None:
            return None
        report = self.dirty_rates.report()
        view = report.as_dict() if report is not None else {}
        if self.dirty_rates.error:
            view['error'] = self.dirty_rates.error
        return view

    def _disk_check(self, g, disk, observed, mounts):
        path = self._file_path(disk)
        facts_d = {'src_qemu_version': observed.source['qemu'], 'resolved_path': disk.get('resolved_path')}
        if disk['type'] == 'volume' and not disk.get('resolved_path'):
            return check('storage.disk', FAIL, '%s: volume %s/%s cannot be resolved on this host' % (
                disk['target'], disk['pool'], disk['volume']), guest=g['name'],
                remedy='Check the storage pool on the source.')
        if path or disk['type'] == 'block':
            target = path or disk['path']
            facts_d['fs'] = filesystem_of(target, mounts) if mounts else None
            facts_d['dest_file'] = observed.dest_files.get(target) if observed.facts is not None else None
        if path:
            directory = os.path.dirname(path)
            probe = self._probe_result(directory, observed)
            facts_d['probe'] = probe
            if probe.get('seen') is False and not disk['readonly']:
                disk['needs_copy'] = True
                facts_d['need_bytes'] = disk.get('allocation') or disk.get('capacity') or 0
                if observed.dest_conn is not None:
                    facts_d['dest_pool'] = dest_pool_facts(observed.dest_conn, directory)
        return check_disk(g['name'], disk, facts_d)

    def _probe_result(self, directory, observed):
        """{method, seen, error?}: did the destination see the probe file written in ``directory``
        here? Asked over ssh first (the helper read it), else through a libvirt storage pool there."""
        if directory in self.probe_errors:
            return {'method': None, 'seen': None, 'write_error': self.probe_errors[directory]}
        if directory not in self.probes:
            return {'method': None, 'seen': None}
        probe_path, dconn = self.probes[directory], observed.dest_conn
        probe = {'method': None, 'seen': None}
        if observed.facts is not None and self.probe_via in ('auto', 'ssh'):
            info = observed.dest_files.get(probe_path) or {}
            seen = (info.get('content') == self.token) if info.get('exists') else (False if info else None)
            probe = {'method': 'ssh', 'seen': seen}
        if probe['seen'] is None and dconn is not None and self.probe_via in ('auto', 'libvirt'):
            lv = read_through_pool(dconn, directory, probe_path, PROBE_BYTES)
            seen = None if lv.get('error') else lv.get('content') == self.token
            probe = {'method': 'libvirt storage pool %s' % lv.get('pool') if lv.get('pool') else 'libvirt',
                     'seen': seen, 'error': lv.get('error')}
        if probe['seen'] is None and not probe.get('error'):
            probe['error'] = ('no way to look at the destination (SSH failed and %s)' % (
                'no libvirt connection' if dconn is None else 'storage_probe=ssh'))
        return probe

    def _firewall_checks(self, observed, qemu_conf, libvirtd_conf):
        """TCP connects from here to ssh, libvirt and the migration ports (the helper listening on
        them); the bandwidth measured through one when asked."""
        p, ep, ssh, facts, dst = self.p, self.endpoint, observed.ssh, observed.facts, observed.destination
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
            self.add(check_migration_ports(host, port_range,
                                           listener_error=ssh.error or 'no SSH session to the destination'))
            return {'error': 'needs SSH to the destination'} if p.get('measure_bandwidth') else None
        wanted = sample_ports(port_range[0], port_range[1])
        listening = ssh.listen(wanted)
        if listening is None:
            self.add(check_migration_ports(host, port_range, listener_error=ssh.error))
            return {'error': ssh.error} if p.get('measure_bandwidth') else None
        tested = listening['bound']
        results = tcp_connect_many(mig_address, tested, timeout=timeout, expect_token=self.token) if tested else {}
        self.add(check_migration_ports(host, port_range, tested=tested, busy=listening['busy'], results=results,
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
