# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The libvirt side of virt_evacuate: facts of the hosts, and many migrations at once.

Every migration runs through the same ``MigrationManager`` as virt_migrate (policy engine,
outcome check and repair on both hosts), one thread and one libvirt client per migration. The
client borrows the evacuation's open connection to the destination when it is alive, instead of
opening its own (an SSH handshake per migration); libvirt connections are thread-safe.
``MigrationScheduler`` (``_migration_scheduler``) decides what may start; a finished slot
starts the next guest at once.  A monitor thread reads the running jobs' statistics from the
source hosts over its own connections and writes progress lines to a log file.
"""

from __future__ import annotations

import queue
import threading
import time

from ansible_collections.kvmops.migration.plugins.module_utils._client import LibvirtClient
from ansible_collections.kvmops.migration.plugins.module_utils._errors import KvmopsError
from ansible_collections.kvmops.migration.plugins.module_utils._context import ManagerContext
from ansible_collections.kvmops.migration.plugins.module_utils._destination import host_uri as destination_host_uri
from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import read_domain
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation import (
    make_row,
    metadata_of,
    progress_line,
)
from ansible_collections.kvmops.migration.plugins.module_utils._migration_manager import MigrationManager
from ansible_collections.kvmops.migration.plugins.module_utils._migration_spec import option_defaults
from ansible_collections.kvmops.migration.plugins.module_utils._migration_scheduler import schedule
from ansible_collections.kvmops.migration.plugins.module_utils._placement import HostInfo
from ansible_collections.kvmops.migration.plugins.module_utils._storage import is_shared
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_DOMAIN_XML_INACTIVE,
    VIR_DOMAIN_XML_SECURE,
)

# virt_migrate's options and defaults (MigrationManager reads every one of them).
MIGRATE_DEFAULTS = option_defaults()
# Options the caller may pass through to every migration.
PASSTHROUGH = ('bandwidth', 'max_downtime', 'allow_postcopy', 'postcopy_bandwidth', 'auto_converge',
               'auto_converge_initial', 'auto_converge_increment', 'timeout', 'poll_interval', 'policy',
               'compression', 'parallel_connections', 'tls', 'tunnelled', 'migrate_uri', 'shutdown_timeout',
               'force_shutdown', 'strategy', 'try_anyway', 'dirty_rate_seconds', 'postcopy_resume_after')


def host_uri(host, transport, local_host=None):
    """The libvirt URI of a hypervisor; the local one through its socket. A host that is not a host
    name or an address is refused (``_destination.host_uri``)."""
    if local_host is not None and host == local_host:
        return 'qemu:///system'
    return destination_host_uri(host, transport)


class GuestFacts:
    """A guest as the evacuation needs it."""

    def __init__(self, dom, host):
        info = dom.info()
        self.name = dom.name()
        self.uuid = dom.UUIDString()
        self.host = host
        self.memory = info[1] * 1024  # maximum memory: what the destination must be able to give
        self.vcpus = info[3]
        self.running = bool(dom.isActive())
        self.state = dom.state(0)[0]  # 1 running, 3 paused (e.g. the incoming side of a migration)
        self.persistent = bool(dom.isPersistent())
        flags = VIR_DOMAIN_XML_SECURE | (VIR_DOMAIN_XML_INACTIVE if self.persistent else 0)
        self.xml = dom.XMLDesc(flags)
        domain = read_domain(self.xml)
        self.disks = [disk for disk in domain.local_disks() if not disk.readonly]
        self.anti_affinity = metadata_of(domain)['anti_affinity']

    def as_dict(self):
        return {'name': self.name, 'uuid': self.uuid, 'host': self.host, 'memory_mib': self.memory // (1024 * 1024),
                'vcpus': self.vcpus, 'running': self.running, 'persistent': self.persistent,
                'disks': [disk.path for disk in self.disks], 'anti_affinity': list(self.anti_affinity)}


def host_facts(conn, name, memory_basis='allocated', maintenance=False):
    """(HostInfo, [GuestFacts]) of one hypervisor.

    memory_basis 'allocated': free = total - the maximum memory of its running guests (what the
    guests may claim; what the planner must not overcommit), 'free': what the kernel reports free.
    """
    info = conn.getInfo()
    total = info[1] * 1024 * 1024
    guests = []
    for dom in conn.listAllDomains(0):
        try:
            guests.append(GuestFacts(dom, name))
        except Exception:  # pylint: disable=broad-except
            continue  # removed or migrated away while we looked: not there any more
    allocated = sum(guest.memory for guest in guests if guest.running)
    free = total - allocated if memory_basis == 'allocated' else conn.getFreeMemory()
    host = HostInfo(name=name, memory_total=total, memory_free=max(0, free), vcpus=info[2],
                    vcpus_used=sum(guest.vcpus for guest in guests if guest.running), maintenance=maintenance)
    return host, guests


class SharedStorage:
    """Is a directory the same storage on two hosts?  Proven once per (directory, pair) with a probe."""

    def __init__(self):
        self._known = {}

    def check(self, src_conn, dst_conn, directory, src, dst):
        key = (directory, src, dst)
        if key not in self._known:
            try:
                self._known[key] = is_shared(src_conn, dst_conn, directory, src, dst)
            except KvmopsError:
                self._known[key] = False
        return self._known[key]


class Move:
    """One planned migration with its migrate options."""

    def __init__(self, guest, uuid, source, dest, options, mode='live', copied=()):
        self.copied = list(copied)  # paths of the disks copied (not shared) in this move
        self.guest = guest
        self.uuid = uuid
        self.source = source
        self.dest = dest
        self.options = options
        self.mode = mode


class ConcurrentRunner:
    """Runs a plan's migrations under the scheduler's limits; returns one row per migration."""

    def __init__(self, plan, moves, uris, transport, max_per_source, max_per_dest, log,
                 on_moved=None, progress_interval=2.0, clock=time.monotonic, shared=None):
        self.plan = plan
        self.moves = moves            # guest -> Move
        self.uris = uris              # host -> libvirt URI as seen from here
        self.shared = shared or {}    # libvirt URI -> an open connection the migrations may borrow
        self.transport = transport
        self.scheduler = schedule(plan, max_per_source=max_per_source, max_per_dest=max_per_dest)
        self.log = log
        self.on_moved = on_moved
        self.progress_interval = progress_interval
        self.clock = clock
        self.started = {}             # guest -> start time
        self.max_concurrent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def run(self):
        results = queue.Queue()
        rows = {}
        monitor = threading.Thread(target=self._monitor, name='kvmops-evacuate-monitor')
        monitor.daemon = True
        monitor.start()
        try:
            while not self.scheduler.finished:
                for assignment in self.scheduler.next_batch():
                    move = self.moves[assignment.guest]
                    with self._lock:
                        self.started[move.guest] = self.clock()
                        self.max_concurrent = max(self.max_concurrent, len(self.started))
                    self.log('start %s %s -> %s (%s)' % (move.guest, move.source, move.dest, move.mode))
                    worker = threading.Thread(target=self._migrate, args=(move, results),
                                              name='kvmops-migrate-%s' % move.guest)
                    worker.daemon = True
                    worker.start()
                guest, row = results.get()
                with self._lock:
                    self.started.pop(guest, None)
                self.scheduler.done(guest)
                if row['result'] == 'moved':
                    self._record_moved(self.moves[guest], row)
                rows[guest] = row
                self.log('%s %s %s -> %s%s' % (row['result'], guest, row['from'], row['to'],
                                               ': ' + row['reason'] if row['reason'] else
                                               ' in %.1f s, downtime %s ms' % (row['time_s'] or 0, row['downtime_ms'])))
        finally:
            self._stop.set()
            monitor.join(5)
        return [rows[assignment.guest] for assignment in self.plan.assignments if assignment.guest in rows]

    def _record_moved(self, move, row):
        """Tell the caller a guest moved (it updates its record). Called here, in the one thread that
        collects results, so two migrations that end together never write the record at once. The
        guest has moved whatever happens here: a failure is reported on its row, not as a failed move."""
        if not self.on_moved:
            return
        try:
            self.on_moved(move)
        except Exception as exc:  # pylint: disable=broad-except
            row['reason'] = 'moved, but the record was not updated (%s); return.yml will not bring it back' % exc
            self.log('%s: %s' % (move.guest, row['reason']))

    def _migrate(self, move, results):
        params = dict(MIGRATE_DEFAULTS)
        params.update(move.options)
        params.update(name=move.guest, uuid=None, dest=self.uris_for_dest(move.dest), transport=self.transport,
                      mode=move.mode, uri=self.uris[move.source])
        job = ManagerContext(params, LibvirtClient(uri=self.uris[move.source]))
        borrow_if_alive(job.client, params['dest'], self.shared.get(params['dest']))
        started = self.clock()
        try:
            result = MigrationManager(job).run()
            running_on = (result.get('location') or {}).get('running_on', [])
            stats = result.get('stats') or {}
            elapsed = stats.get('total_time_ms') or int((self.clock() - started) * 1000)
            moved = result.get('location') is None or any(_same(host, move.dest) for host in running_on)
            row = make_row(move.guest, move.source, move.dest, 'moved' if moved else 'failed',
                           None if moved else result.get('msg'), elapsed, stats.get('downtime_ms'), move.mode)
        except KvmopsError as exc:
            where = (exc.details.get('location') or {}).get('running_on')
            reason = exc.msg if hasattr(exc, 'msg') else str(exc)
            if exc.remedy:
                reason = '%s (%s)' % (reason, exc.remedy)
            row = make_row(move.guest, move.source, move.dest, 'failed', reason,
                           int((self.clock() - started) * 1000), None, move.mode)
            row['running_on'] = where
        except Exception as exc:  # pylint: disable=broad-except
            row = make_row(move.guest, move.source, move.dest, 'failed', 'unexpected error: %s' % exc,
                           int((self.clock() - started) * 1000), None, move.mode)
        finally:
            job.client.close()
        results.put((move.guest, row))

    def uris_for_dest(self, dest):
        """The destination as the SOURCE host's libvirtd reaches it (p2p): always by name."""
        return host_uri(dest, self.transport)

    def _monitor(self):
        clients = {}
        try:
            while not self._stop.wait(self.progress_interval):
                with self._lock:
                    running = dict(self.started)
                for guest, since in sorted(running.items()):
                    move = self.moves[guest]
                    try:
                        client = clients.get(move.source)
                        if client is None:
                            client = clients[move.source] = LibvirtClient(uri=self.uris[move.source], readonly=True)
                        stats = client.conn.lookupByUUIDString(move.uuid).jobStats(0)
                    except Exception:  # pylint: disable=broad-except
                        continue  # the job is ending, or the connection is busy: next round
                    if stats.get('type', 0) == 0:
                        continue
                    self.log(progress_line(guest, move.source, move.dest, stats, self.clock() - since))
        finally:
            for client in clients.values():
                client.close()


def borrow_if_alive(client, uri, conn):
    """Let ``client`` use ``conn`` for ``uri`` when there is one and it is alive. A dead one (its
    libvirtd restarted, its link cut long enough for the keepalive) is left out: the client opens
    its own connection, as it would without sharing."""
    if conn is None:
        return
    try:
        alive = conn.isAlive()
    except Exception:  # pylint: disable=broad-except
        alive = False
    if alive:
        client.share(uri, conn)


def _same(a, b):
    return a.split('.')[0] == b.split('.')[0]
