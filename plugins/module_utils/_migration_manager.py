# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The virt_migrate manager: validate, connect, decide idempotence, run, verify, report.

Order matters: every check that can fail runs before anything is touched, so bad input
changes nothing; the outcome check on both hosts runs after every attempt.
"""

from __future__ import annotations

import os
import time

from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    DomainNotFoundError,
    InvalidInputError,
    KvmopsError,
    MigrationError,
    translated,
)
from ansible_collections.kvmops.migration.plugins.module_utils._cold import ColdMigration, finish_interrupted
from ansible_collections.kvmops.migration.plugins.module_utils._compat_checks import guest_compatibility, paused_arrival_hazard
from ansible_collections.kvmops.migration.plugins.module_utils._destination import check_data_stream, parse_destination
from ansible_collections.kvmops.migration.plugins.module_utils._detach import pid_alive, run_detached
from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import host_uuid, read_domain
from ansible_collections.kvmops.migration.plugins.module_utils._live_migration import LiveMigrationSteps
from ansible_collections.kvmops.migration.plugins.module_utils._fixed_cost import PhaseClock, at_once, process_age_s
from ansible_collections.kvmops.migration.plugins.module_utils._location import (
    PAUSED,
    Attempt,
    Location,
    assess,
)
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import VIR_DOMAIN_PAUSED_USER as PAUSED_USER
from ansible_collections.kvmops.migration.plugins.module_utils._migration import (
    Sides,
    migration_error,
    read_view,
    verify_and_repair,
)
from ansible_collections.kvmops.migration.plugins.module_utils._migration_flags import build_migration
from ansible_collections.kvmops.migration.plugins.module_utils._migration_options import (
    MigrationOptionsError,
    validate_options_before_connecting,
)
from ansible_collections.kvmops.migration.plugins.module_utils._host_facts import dest_available_memory, dest_network_facts
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_checks import check_interface, check_memory
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_spec import FAIL
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_storage_checks import check_copy_space
from ansible_collections.kvmops.migration.plugins.module_utils._prediction_inputs import THROTTLE_INCREMENT, THROTTLE_INITIAL
from ansible_collections.kvmops.migration.plugins.module_utils._strategy import check_strategy_options
from ansible_collections.kvmops.migration.plugins.module_utils._strategy_run import StrategyRun
from ansible_collections.kvmops.migration.plugins.module_utils._migration_spec import GIB, default_timeout_s, dest_uri, outcome_path
from ansible_collections.kvmops.migration.plugins.module_utils._statefile import read_json, write_json
from ansible_collections.kvmops.migration.plugins.module_utils._oplock import GuestLock
from ansible_collections.kvmops.migration.plugins.module_utils._storage import free_bytes_at, is_shared


class MigrationManager(LiveMigrationSteps):
    """One virt_migrate run, driven through a manager context (``ctx``): its ``params``, its
    libvirt ``client``, ``check_mode``, ``warn`` and ``can_detach`` (whether the run may move to a
    detached process: the Ansible module may; an evacuation's per-guest job, one thread among
    several holding libvirt connections, may not fork)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.p = ctx.params
        self.client = ctx.client
        self.result = {'changed': False, 'mode': self.p['mode']}
        self.detached = None  # the DetachedRun when this runs in the detached driver
        self.uuid = None
        self.src_host = self.dst_host = None
        # What the guest is like, read once it is found (_run_guest).
        self.paused_by_user = False
        self.domain_active = None
        self.domain_persistent = None
        self.dest_defined_before = True  # until read: a definition found there is never ours to remove
        self.strategy = StrategyRun(ctx)  # strategy: measure, predict and decide before the job (_strategy_run)
        self.clock = PhaseClock()  # where this run's seconds go: result 'timings' (_fixed_cost)
        self.source_xml = None  # (uuid, the source domain's XML) read once, at connect time
        self.disk_targets = None  # the guest's disk targets, for the job reads on both hosts

    # -- steps -----------------------------------------------------------------------
    def run(self):
        if getattr(self.ctx, 'can_detach', False):  # a module's own process (not an evacuation's thread)
            self.clock.extra['module_start_s'] = process_age_s()
        dest_uri(self.p['dest'], self.p['transport'])
        self._check_numbers()
        self._check_options()
        if not self.p['wait'] and self.p['mode'] not in ('live', 'paused'):
            raise InvalidInputError('wait=false is for mode=live or mode=paused, not mode=%s' % self.p['mode'],
                                    remedy='Use wait: true, or run the task with async to not block on it.')
        if self.ctx.check_mode or not getattr(self.ctx, 'can_detach', False):
            return self._run()
        # The migration is driven by a detached process, whether the task waits for it or not: a
        # module killed mid-run (an async timeout, a killed controller) then leaves the job with its
        # driver, which applies the policy, bounds it with the timeout and verifies where the guest
        # ended up, instead of a job that nothing watches any more.
        dummy_kind, result = run_detached(self._run_detached)
        return result

    def _run_detached(self, run):
        """The whole task, in the detached process; ``_live`` announces when the job started
        (only with wait: false: otherwise the module waits for the final result)."""
        self.detached = run
        try:
            return self._run()
        finally:
            self.client.close()

    def _run(self):
        destination = parse_destination(self.p['dest'], self.p['transport'])
        uri = destination.uri
        src_conn = self.client.conn
        # The destination's SSH handshake overlaps the source-side reads (_fixed_cost); a failure to
        # connect is raised only after the checks that come first.
        source, (dst_conn, dst_error) = at_once(lambda: self._read_source(src_conn),
                                                lambda: self._open_destination(uri))
        self.src_host = source['host']
        self.result['source'] = self.src_host
        if destination.host.split('.')[0] in (self.src_host.split('.')[0], 'localhost'):
            raise InvalidInputError('dest=%s is the source host itself' % self.p['dest'],
                                    remedy='Name another hypervisor as dest.')
        if dst_error is not None:
            raise dst_error
        self.dst_host = dst_conn.getHostname()
        self.result['destination'] = {'host': self.dst_host, 'uri': uri}
        if source['host_uuid'] == self._host_uuid(dst_conn):
            raise InvalidInputError('dest %s is the same host as the source (same libvirt host UUID)' % uri,
                                    remedy='Name another hypervisor as dest; if it is another machine, give it '
                                           'a distinct host_uuid in libvirtd.conf (virtqemud.conf with modular '
                                           'daemons).')
        self.clock.mark('connect')
        dom, dest_dom = source['found'] or self._find_domain(src_conn, dst_conn)
        self.uuid = (dom or dest_dom).UUIDString()
        self.result['uuid'] = self.uuid
        if self._wait_for_detached_run(self.uuid):
            dom, dest_dom = self._find_domain(src_conn, dst_conn)
        if self.ctx.check_mode:
            return self._run_guest(uri, Sides(self.src_host, self.dst_host, src_conn, dst_conn, self.disk_targets),
                                   dom, dest_dom)
        lock = GuestLock(self.p['state_dir'], self.uuid, (dom or dest_dom).name(),
                         'migrate %s to %s' % ((dom or dest_dom).name(), self.dst_host), self.p['lock_timeout'],
                         describe={'operation': 'migrate', 'source': self.src_host, 'destination': self.dst_host,
                                   'mode': self.p['mode']})
        with lock:
            self.result['lock_waited_s'] = lock.waited_s
            if lock.waited_s:  # the holder may have moved it meanwhile
                self.source_xml = None
                dom, dest_dom = self._find_domain(src_conn, dst_conn)
            return self._run_guest(uri, Sides(self.src_host, self.dst_host, src_conn, dst_conn, self.disk_targets),
                                   dom, dest_dom)

    def _run_guest(self, uri, sides, dom, dest_dom):
        """Everything after the guest was found, under its lock (outside it in check mode)."""
        if not self.ctx.check_mode:
            interrupted = finish_interrupted(sides, self.uuid, self.p['state_dir'])
            if interrupted:
                self.result['earlier_rollback'] = interrupted
        if dom is not None:
            settled = self._settle_earlier_attempt(dom, sides, uri)
            if isinstance(settled, dict):
                return settled  # an adopted job: its outcome is this run's result
            dom, dest_dom = settled
        if dom is None:
            return self._already_there(sides, dest_dom)
        state, reason = dom.state(0)
        self.paused_by_user = state == PAUSED and reason == PAUSED_USER
        self._check_paused_arrival(dom, state, sides.src_conn)
        self.domain_active = bool(dom.isActive())
        self.domain_persistent = bool(dom.isPersistent())
        self._check_persistence(dom)
        domain = read_domain(self._xml_of(dom))
        disks = domain.local_disks()
        storage = self._storage_plan(sides, disks)
        spec = self._spec(storage)
        checks = self._destination_checks(dom, domain, sides.dst_conn, storage)
        dst_view = read_view(sides.dst_conn, self.uuid, self.dst_host)
        self.dest_defined_before = dst_view.exists
        if dst_view.active and not self.ctx.check_mode:
            # A copy left on the destination by an earlier failed attempt (e.g. its libvirtd
            # was down when that attempt cleaned up): the same repair as after an attempt,
            # keeping any definition that was there.
            leftover = verify_and_repair(sides, self.uuid, self._attempt(dest_defined_before=True))
            self.result['cleanup_before'] = leftover.repairs
            if leftover.location.verdict != 'source':
                raise MigrationError('%s is active on both %s and %s: %s' % (
                    dom.name(), self.src_host, self.dst_host, leftover.location.problem or leftover.location.verdict),
                    remedy='Decide which copy is the guest and destroy the other before migrating again.',
                    details={'location': leftover.as_dict()})
        self.clock.mark('checks')
        self.p = self.strategy.prepare(dom, self.p, self.dst_host, storage,
                                       self.p['timeout'] or default_timeout_s(dom.info()[2] * 1024))
        self.result.update(self.strategy.report())
        self.clock.mark('prediction')
        spec = self._spec(storage)  # the chosen strategy's flags
        plan = {'dest_uri': uri, 'flags': spec.flag_names, 'params': spec.params, 'notes': spec.notes,
                'storage': storage, 'max_downtime_ms': spec.max_downtime_ms, 'checks': checks}
        self.result.update(flags=spec.flag_names, params=spec.params)
        if self.ctx.check_mode:
            self.result.update(changed=True, plan=plan,
                               msg='Would migrate %s from %s to %s (%s)' % (dom.name(), self.src_host, self.dst_host, self.p['mode']))
            self.result['location'] = verify_and_repair_readonly(sides, self.uuid)
            return self.result
        if self.p['mode'] in ('live', 'paused'):
            return self._live(dom, sides, uri, spec, storage)
        return self._cold_or_offline(dom, sides, uri, storage)

    def _check_paused_arrival(self, dom, state, src_conn):
        """Refuse, before anything changes, a paused guest that QEMU here would lose (_compat_checks)."""
        if self.p['mode'] not in ('live', 'paused') or state != PAUSED:
            return
        try:
            qemu_version = src_conn.getVersion()
        except Exception:  # pylint: disable=broad-except  # unknown: not refused for it
            qemu_version = None
        why = paused_arrival_hazard(True, self.strategy.history(dom), qemu_version)
        if why:
            raise InvalidInputError(
                'Refusing to migrate %s from %s: %s' % (dom.name(), self.src_host, why),
                remedy='Resume the guest and migrate it running, or move it with mode: cold (shut down, '
                       'copied, started). Nothing was changed.')

    def _check_persistence(self, dom):
        if self.domain_persistent is False and self.p['mode'] == 'cold' and self.domain_active:
            raise InvalidInputError(
                'domain %s is transient: mode=cold would shut it down, and a transient guest ceases to exist when it '
                'stops, so there would be nothing left to move' % dom.name(),
                remedy='Use mode=live (or paused), or define the guest persistently first (virsh dumpxml, then '
                       'virsh define).')
        if self.domain_persistent is False and self.p['persistent'] and self.p['mode'] != 'offline':
            raise InvalidInputError(
                'domain %s is transient but persistent=true would make it persistent on %s' % (dom.name(), self.dst_host),
                remedy='Set persistent: false (and undefine_source: false) to keep it transient, or define it first.')

    def _attempt(self, **changes):
        attempt = Attempt(want_persistent=self.p['persistent'], want_undefine_source=self.p['undefine_source'],
                          source_paused_by_user=self.paused_by_user, dest_defined_before=self.dest_defined_before)
        return attempt.replace(**changes) if changes else attempt

    def _destination_checks(self, dom, domain, dst_conn, storage):
        """Can the destination take this guest now? The preflight's own verdicts on what would
        otherwise fail mid-way or leave the guest without a network: every libvirt network of
        its interfaces active there, free memory for a guest that will run there, room for the
        disks to copy. Runs before anything is touched; a ``fail`` refuses the migration."""
        if not self.p['precheck']:
            return []
        facts = domain.as_dict()
        guest = facts['name']
        checks = [check_interface(guest, iface, dest_network_facts(dst_conn, iface['network']))
                  for iface in facts['interfaces'] if iface['type'] == 'network']
        # versions, machine type, CPU; with allow_postcopy, the same QEMU release on both hosts
        checks.extend(guest_compatibility(dom, dst_conn, self.p['mode'], postcopy=bool(self.p['allow_postcopy'])))
        if self.domain_active and self.p['mode'] != 'offline':
            checks.append(check_memory(guest, facts['memory_kib'] or 0, dest_available_memory(dst_conn),
                                       self.p['memory_margin_mib']))
        need = {}
        for disk in storage:
            if disk['action'].startswith('copy'):
                directory = disk['path'].rsplit('/', 1)[0]
                with translated('Reading the size of %s' % disk['path']):
                    need[directory] = need.get(directory, 0) + dom.blockInfo(disk['path'], 0)[1]
        for directory, nbytes in sorted(need.items()):
            checks.append(check_copy_space(guest, directory, nbytes, free_bytes_at(dst_conn, directory, self.dst_host)))
        failed = [c for c in checks if c['status'] == FAIL]
        if failed:
            remedies = []
            for c in failed:
                if c.get('remedy') and c['remedy'] not in remedies:
                    remedies.append(c['remedy'])
            raise MigrationError('%s cannot go to %s: %s' % (guest, self.dst_host, '; '.join(c['detail'] for c in failed)),
                                 remedy=' '.join(remedies) + ' (precheck: false skips these checks and lets libvirt '
                                 'decide.)', details={'checks': checks})
        return checks

    def _check_numbers(self):
        p = self.p
        problems = []
        if p['timeout'] is not None and not 1 <= p['timeout'] <= 7 * 86400:
            problems.append('timeout=%s must be between 1 and 604800 seconds' % p['timeout'])
        if not 0.05 <= p['poll_interval'] <= 60:
            problems.append('poll_interval=%s must be between 0.05 and 60 seconds' % p['poll_interval'])
        if not 1 <= p['shutdown_timeout'] <= 86400:
            problems.append('shutdown_timeout=%s must be between 1 and 86400 seconds' % p['shutdown_timeout'])
        if p['memory_margin_mib'] is not None and not 0 <= p['memory_margin_mib'] <= 1048576:
            problems.append('memory_margin_mib=%s must be between 0 and 1048576' % p['memory_margin_mib'])
        if not 10 <= p['postcopy_resume_after'] <= 86400:
            problems.append('postcopy_resume_after=%s must be between 10 and 86400 seconds' % p['postcopy_resume_after'])
        if not 0 <= p['lock_timeout'] <= 86400:
            problems.append('lock_timeout=%s must be between 0 (refuse at once) and 86400 seconds' % p['lock_timeout'])
        if problems:
            raise InvalidInputError('; '.join(problems), remedy='Fix the numbers; nothing was changed.')

    @staticmethod
    def _host_uuid(conn):
        return host_uuid(conn.getCapabilities())

    def _read_source(self, src_conn):
        """What the run needs of the source before the destination answers: its name, its host
        UUID, the guest if it is there ({'found': (dom, None)}, else None) and its XML, read once."""
        source = {'host': src_conn.getHostname(), 'host_uuid': self._host_uuid(src_conn), 'found': None}
        try:
            dom = self._lookup(src_conn)
        except DomainNotFoundError:
            return source
        source['found'] = (dom, None)
        self.strategy.start_measuring(dom, self.p)  # its sample overlaps the connect and the checks
        xml = dom.XMLDesc(0)
        self.source_xml = (dom.UUIDString(), xml)
        self.disk_targets = [disk.target for disk in read_domain(xml).disks if disk.target]
        return source

    def _open_destination(self, uri):
        """(connection, None) or (None, the typed error): raised by the caller in its turn."""
        try:
            return self.client.open_peer(uri), None
        except KvmopsError as exc:
            return None, exc

    def _xml_of(self, dom):
        """The domain's XML: the one read at connect time if it is this domain's, else read now."""
        if self.source_xml is not None and self.source_xml[0] == dom.UUIDString():
            return self.source_xml[1]
        return dom.XMLDesc(0)

    def _lookup(self, conn):
        return self.client.lookup_domain(name=self.p['name'], uuid=self.p['uuid'], conn=conn)

    def _find_domain(self, src_conn, dst_conn):
        """(source domain or None, destination domain or None); neither => DomainNotFoundError."""
        try:
            return self._lookup(src_conn), None
        except DomainNotFoundError as src_missing:
            try:
                return None, self._lookup(dst_conn)
            except DomainNotFoundError:
                raise src_missing

    def _wait_for_detached_run(self, uuid):
        """A migration of this guest driven by a detached process may still run (started with
        wait: false, or by a module that was killed while it waited): wait for its result (never
        start a second one beside it), and return it in ``detached_outcome``.
        True if there was such a run whose result nobody has collected."""
        path = outcome_path(self.p['state_dir'], uuid)
        report = read_json(path)
        if not report or report.get('collected') or report.get('pid') == os.getpid():
            return False
        if report.get('running') and pid_alive(report.get('pid')):
            if self.ctx.check_mode:
                raise MigrationError('a migration of this guest driven by process %s is still running'
                                     % report['pid'], remedy='Wait for it (wait: true), or abort it with '
                                     'virt_migrate_control action=abort.', details={'detached_outcome': report})
            timeout_s = self.p['timeout'] or default_timeout_s(GIB) + 60
            deadline = time.monotonic() + timeout_s
            while report and report.get('running') and pid_alive(report.get('pid')):
                if time.monotonic() > deadline:
                    raise MigrationError('a migration of this guest driven by process %s is still running '
                                         'after %s s' % (report['pid'], timeout_s),
                                         remedy='Wait longer (timeout), or abort it with virt_migrate_control '
                                                'action=abort.', details={'detached_outcome': report})
                time.sleep(1)
                report = read_json(path)
        if not report or report.get('running'):
            # Its process died without a result (e.g. killed): the outcome check below decides.
            self.result['detached_outcome'] = {'msg': 'the detached run ended without writing a result'}
        else:
            self.result['detached_outcome'] = dict((key, report.get(key)) for key in (
                'msg', 'failed', 'remedy', 'location', 'stats', 'finished_at') if key in report)
            if not self.ctx.check_mode:
                write_json(path, dict(report, collected=True))  # handed over once
        return True

    def _settle_earlier_attempt(self, dom, sides, uri):
        """What an earlier attempt may have left: a job still running with nothing driving it (its
        run was killed) is adopted; another operation's job is waited for (never touched); a guest
        split by an interrupted post-copy is waited for (never touched); a guest that runs on the
        destination with its definition still on the source counts as already moved.
        Returns (source domain or None, destination domain or None), or the result of an adopted job."""
        location = assess(*sides.views(self.uuid))
        if location.verdict == 'busy':
            if self.ctx.check_mode:
                raise migration_error('the guest is busy', location, src_host=self.src_host, dst_host=self.dst_host)
            adopted = self._adopt_or_wait(dom, sides, uri)
            if adopted is not None:
                return adopted
            location = assess(*sides.views(self.uuid))
        if location.verdict == 'postcopy_split':
            if self.ctx.check_mode:
                raise migration_error('an earlier post-copy of this guest has not finished', location,
                                      src_host=self.src_host, dst_host=self.dst_host)
            timeout_s = self.p['timeout'] or default_timeout_s(dom.info()[2] * 1024, 0)
            src_conn, dst_conn = self._wait_for_postcopy_to_settle(uri, timeout_s)
            sides.src_conn, sides.dst_conn = src_conn, dst_conn
            location = assess(*sides.views(self.uuid))
            if location.verdict == 'postcopy_split':
                raise migration_error('an earlier post-copy of this guest did not finish within %s s' % timeout_s,
                                      location, src_host=self.src_host, dst_host=self.dst_host)
            self.result['waited_for_postcopy'] = True
        if location.verdict in ('postcopy_lost', 'busy', 'both'):
            raise migration_error('an earlier attempt left the guest in a state this run must not touch', location,
                                  src_host=self.src_host, dst_host=self.dst_host)
        if location.verdict == 'destination':
            return None, sides.dst_conn.lookupByUUIDString(self.uuid)
        return sides.src_conn.lookupByUUIDString(self.uuid), None

    def _adopt_or_wait(self, dom, sides, uri):
        """A job is active on the guest although this run holds its lock, so no driver of ours runs
        it. An outgoing migration to this very destination was started by a run that was killed:
        adopt it (watch it under this run's policy and timeout, then verify) and return its result.
        Any other job (a block copy, a migration elsewhere, a job started by hand) is not ours: wait
        up to lock_timeout for it to end, then go on (None) or refuse, touching nothing."""
        src_view, dst_view = sides.views(self.uuid)
        if src_view.job == 'outgoing migration' and dst_view.job == 'incoming migration':
            self.paused_by_user = False
            self.domain_active = True
            self.domain_persistent = bool(dom.isPersistent())
            self.dest_defined_before = False
            spec = self._spec([])
            self.result.update(flags=spec.flag_names, params=spec.params, adopted_job=True)
            return self._live(dom, sides, uri, spec, [], adopt=True)
        deadline = time.monotonic() + self.p['lock_timeout']
        while True:
            location = assess(*sides.views(self.uuid))
            if location.verdict != 'busy':
                return None
            if time.monotonic() >= deadline:
                raise MigrationError('%s is busy: %s' % (dom.name(), location.problem),
                                     remedy='Wait for that operation to end (virt_migrate_info shows a running '
                                            'migration), or raise lock_timeout to wait for it. Nothing was changed.',
                                     details={'location': location.as_dict()})
            time.sleep(1)

    def _already_there(self, sides, dest_dom):
        """The guest is only on the destination: done already (or, offline, defined there).
        What is left of it on the source (a definition QEMU's late finish left behind) is
        removed as undefine_source asks; check mode only reports it."""
        self.uuid = dest_dom.UUIDString()
        if self.ctx.check_mode:
            location = verify_and_repair_readonly(sides, self.uuid)
            repairs = location.get('steps', [])
        else:
            outcome = verify_and_repair(sides, self.uuid, self._attempt(dest_defined_before=True))
            location, repairs = outcome.as_dict(), outcome.repairs
        wanted_active = self.p['mode'] == 'live'
        if wanted_active and self.dst_host not in location['running_on']:
            raise MigrationError('%s is only on %s and not running there; nothing to migrate' % (
                dest_dom.name(), self.dst_host), remedy='Start it there, or use mode=offline for shut-off guests.')
        self.result.update(changed=bool(repairs), location=location, uuid=self.uuid,
                           msg='%s is already on %s' % (dest_dom.name(), self.dst_host))
        return self.result

    def _spec(self, storage):
        """The live (or paused) migration for this guest. A storage copy copies exactly the disks the
        storage plan copies: libvirt, given no list, would copy every writable disk, shared ones
        included (onto themselves)."""
        options = self._flag_options(self.domain_active, self.domain_persistent)
        notes = []
        if options.get('copy_storage') not in (None, 'none'):
            to_copy = [d['target'] for d in storage if d['action'].startswith('copy')]
            if to_copy:
                options['migrate_disks'] = to_copy
            elif storage:
                options['copy_storage'] = 'none'
                options['migrate_disks'] = None
                notes.append('copy_storage: every disk is on storage shared with %s, nothing to copy' % self.dst_host)
        spec = self._options_through(build_migration, options)
        spec.notes.extend(notes)
        return spec

    def _check_options(self):
        """Refuse options that conflict whatever the domain is like, before contacting any host."""
        check_data_stream(self.p['migrate_uri'], self.p['listen_address'])
        check_strategy_options(self.p)
        self._options_through(validate_options_before_connecting, self._flag_options(None, None))

    @staticmethod
    def _options_through(builder, options):
        try:
            return builder(options)
        except MigrationOptionsError as exc:
            raise InvalidInputError(str(exc), remedy='Fix the options; nothing was changed.')

    def _flag_options(self, domain_active, domain_persistent):
        """The module's options as the flags builder takes them, for this mode and domain."""
        options = dict(self.p)
        if self.p['mode'] == 'cold':
            options.update(mode='offline', copy_storage='none', domain_active=False)
        else:
            options['domain_active'] = domain_active
        options['domain_persistent'] = domain_persistent
        if options['mode'] == 'paused':
            # Nothing converges in a paused transfer: the live-only tuning does not apply.
            options.update(auto_converge=False, allow_postcopy=False, max_downtime=None)
        if options['auto_converge'] and options['mode'] == 'live':
            # QEMU's own defaults (20%, +10% every second pass) take minutes to bite when a pass
            # lasts ~10 s; throttling only engages on a guest that is NOT converging, so starting
            # firmer costs nothing to guests that converge anyway.
            if options['auto_converge_initial'] is None:
                options['auto_converge_initial'] = THROTTLE_INITIAL
            if options['auto_converge_increment'] is None:
                options['auto_converge_increment'] = THROTTLE_INCREMENT
        for key in ('bandwidth', 'max_downtime', 'auto_converge', 'auto_converge_initial', 'auto_converge_increment',
                    'allow_postcopy', 'postcopy_bandwidth', 'compression', 'parallel_connections', 'tls',
                    'migrate_uri', 'listen_address', 'unsafe'):
            if options['mode'] == 'offline' and key in options:
                options[key] = None
        return options

    def _storage_plan(self, sides, disks):
        """Which disks are shared, which will be copied; refuse a live migration that would need a
        copy, and a copy of a disk the destination already sees (it would be copied onto itself)."""
        plan = []
        selected = self.p['migrate_disks']
        known = {d.target for d in disks}
        for dev in selected or []:
            if dev not in known:
                raise InvalidInputError('migrate_disks names %s, which is not a disk of this guest (%s)' % (
                    dev, ', '.join(sorted(known)) or 'none'), remedy='Use the target names from the domain XML.')
        shared_dirs = {}
        for disk in disks:
            if disk.readonly:
                plan.append(dict(disk.as_dict(), shared=None, action='skip (read-only)'))
                continue
            if disk.directory not in shared_dirs:
                shared_dirs[disk.directory] = is_shared(sides.src_conn, sides.dst_conn, disk.directory,
                                                        self.src_host, self.dst_host)
            shared = shared_dirs[disk.directory]
            copying = self.p['copy_storage'] != 'none' and (not selected or disk.target in selected)
            if self.p['mode'] == 'cold':
                action = 'keep (shared)' if shared else 'copy (cold)'
            elif self.p['mode'] == 'offline':
                action = 'keep'
            elif shared:
                if selected and disk.target in selected:
                    raise InvalidInputError(
                        'migrate_disks names %s, but %s is on storage shared with %s: copying it would write it '
                        'onto itself' % (disk.target, disk.path, self.dst_host),
                        remedy='Leave shared disks out of migrate_disks (they need no copy).')
                action = 'keep (shared)'
            elif copying:
                action = 'copy (%s)' % self.p['copy_storage']
            else:
                raise InvalidInputError(
                    'disk %s (%s) is not on storage shared with %s, and no storage copy was requested' % (
                        disk.target, disk.path, self.dst_host),
                    remedy='Set copy_storage: all to copy it during the live migration, use mode: cold, or '
                           'move it to shared storage first (virt_blockcopy).')
            plan.append(dict(disk.as_dict(), shared=shared, action=action))
        return plan

    # -- cold / offline --------------------------------------------------------------
    def _cold_or_offline(self, dom, sides, uri, storage):
        name = dom.name()
        cold = ColdMigration(sides, dom, uri, storage, self._spec_offline(), self.p, self.dest_defined_before)
        try:
            done = cold.run()
        except KvmopsError as exc:
            exc.details.update(dict((k, v) for k, v in self.result.items() if k not in exc.details))
            raise
        self.result.update(changed=True, location=done['location'], shutdown=done['shutdown'],
                           copied_disks=done['copied_disks'], steps=done['steps'])
        if not done['moved']:
            raise migration_error('the guest is not where the %s migration put it' % self.p['mode'],
                                  _location_of(done['location']), src_host=self.src_host, dst_host=self.dst_host)
        self.result['msg'] = 'Moved %s from %s to %s (%s%s)' % (
            name, self.src_host, self.dst_host, self.p['mode'], ', restarted there' if done['restarted'] else '')
        return self.result

    def _spec_offline(self):
        """libvirt's offline migration defines the guest on the destination; the source definition is
        removed by ColdMigration once the guest runs there (never by libvirt, before that)."""
        options = dict(self.p, mode='offline', copy_storage='none', domain_active=False,
                       domain_persistent=self.domain_persistent, migrate_disks=None, undefine_source=False)
        for key in ('bandwidth', 'max_downtime', 'auto_converge_initial', 'auto_converge_increment',
                    'postcopy_bandwidth', 'compression', 'parallel_connections', 'migrate_uri', 'listen_address'):
            options[key] = None
        options.update(auto_converge=False, allow_postcopy=False, tls=False, unsafe=False)
        return build_migration(options)


def _location_of(data):
    """A Location from the dict an Outcome reports (for the error message)."""
    return Location(data['running_on'], data['defined_on'], data['verdict'], [], data.get('problem'))


def verify_and_repair_readonly(sides, uuid):
    """Where the guest is now and the repairs a real run would make, without making them (check mode)."""
    src, dst = sides.views(uuid)
    location = assess(src, dst)
    data = location.as_dict()
    data['steps'] = [{'action': action, 'host': sides.host(side), 'why': why}
                     for action, side, why in location.steps]
    if location.problem:
        data['problem'] = location.problem
    return data
