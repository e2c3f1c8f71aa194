# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_evacuate's actions after a host is lost: recover (start its guests on the others, from the
definitions backup, once it is fenced and every other host answers) and rejoin (on the host that
comes back, remove the stale copies of guests that now run elsewhere)."""

from __future__ import annotations

import glob
import os
import xml.etree.ElementTree as ET

from ansible_collections.kvmops.migration.plugins.module_utils._domain_xml import local_disks, read_domain
from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation import anti_affinity_groups, make_row, metadata_of, rejoin_plan
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_base import EvacuationBase
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_runner import host_facts, host_uri
from ansible_collections.kvmops.migration.plugins.module_utils._placement import GuestInfo, HostInfo, Plan
from ansible_collections.kvmops.migration.plugins.module_utils._placement_evacuation import plan_evacuation
from ansible_collections.kvmops.migration.plugins.module_utils._statefile import read_text
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_DOMAIN_JOB_NONE,
    VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA,
    VIR_DOMAIN_UNDEFINE_KEEP_NVRAM,
    VIR_DOMAIN_UNDEFINE_MANAGED_SAVE,
    VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
)

# undefineFlags of a stale copy: its managed save image, snapshot and checkpoint metadata go with it
# (all of this host, all stale); an NVRAM file is kept (it may be the only copy of the guest's vars).
UNDEFINE_STALE = (VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                  | VIR_DOMAIN_UNDEFINE_KEEP_NVRAM | VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)


class Recovery(EvacuationBase):
    """``do_recover`` with the check that every survivor answers, and ``do_rejoin``."""

    def do_recover(self):
        dead = self.p['dead_host']
        if not self.p['fenced']:
            raise InvalidInputError(
                'refusing to recover the guests of %s: fencing is not confirmed' % dead,
                remedy='Power the host off (or fence it) and set fenced: true. Starting a guest whose first copy '
                       'may still run corrupts its shared disks.')
        try:
            with self.new_client(host_uri(dead, self.p['transport'])) as probe:
                probe.conn.getHostname()
            raise InvalidInputError('refusing to recover: %s still answers over libvirt, it is not dead' % dead,
                                    remedy='Evacuate it instead (evacuate.yml), or fence it first.')
        except InvalidInputError:
            raise
        except Exception:  # pylint: disable=broad-except
            pass  # unreachable, as a fenced host must be
        survivors = [h for h in self.p['hosts'] if h != dead]
        hosts, guests, notes = self.gather(survivors)
        self.require_every_survivor(dead, survivors, hosts, notes)
        running = {f.uuid: f.host for f in guests if f.running}
        defined = {f.uuid: f.host for f in guests}
        directory = os.path.join(self.p['definitions_dir'], dead)
        infos = [self.guest_info(f) for f in guests]
        rows, xmls = [], {}
        shared_paths = [path.rstrip('/') + '/' for path in self.p['shared_paths']]
        for path in sorted(glob.glob(os.path.join(directory, '*.xml'))):
            xml = read_text(path) or ''
            name = os.path.basename(path)[:-4]
            if not self.wanted(name):
                continue
            uuid = _xml_field(xml, 'uuid')
            if uuid in running:
                rows.append(make_row(name, dead, running[uuid], 'skipped', 'already running on %s' % running[uuid]))
                continue
            if uuid in defined:
                rows.append(make_row(name, dead, defined[uuid], 'stayed', 'defined (shut off) on %s; start it there'
                                     % defined[uuid]))
                continue
            local = [d.path for d in local_disks(xml) if d.path and not d.readonly
                     and not any(d.path.startswith(prefix) for prefix in shared_paths)]
            if local:
                rows.append(make_row(name, dead, None, 'stayed', 'disk(s) on the dead host\'s local storage: %s'
                                     % ', '.join(local)))
                continue
            memory = int(_xml_field(xml, 'memory') or 0) * 1024
            vcpus = int(_xml_field(xml, 'vcpu') or 1)
            from_meta = metadata_of(xml)['anti_affinity']
            infos.append(GuestInfo(name=name, host=dead, memory=memory, vcpus=vcpus,
                                   anti_affinity=anti_affinity_groups(name, from_meta, self.p['anti_affinity'])))
            xmls[name] = xml
        plan = plan_evacuation(infos, hosts + [HostInfo(dead, 0, 0, 0, 0)], [dead], exclude=self.p['exclude_hosts'],
                               **self.margins())
        plan.notes.extend(notes)
        if not os.path.isdir(directory):
            plan.notes.append('no definitions backup in %s' % directory)
        for item in plan.unplaceable:
            rows.append(make_row(item.guest, dead, None, 'stayed', item.reason))
        if self.check:
            rows = [make_row(a.guest, dead, a.destination, 'planned') for a in plan.assignments] + rows
            return self.finish(rows, plan, hosts)
        done = []
        for assignment in plan.assignments:
            try:
                conn = self.conn(assignment.destination)
                dom = conn.defineXML(xmls[assignment.guest])
                dom.create()
                self.log('recovered %s on %s' % (assignment.guest, assignment.destination))
                done.append(make_row(assignment.guest, dead, assignment.destination, 'moved', mode='restart'))
            except Exception as exc:  # pylint: disable=broad-except
                done.append(make_row(assignment.guest, dead, assignment.destination, 'failed', str(exc), mode='restart'))
        return self.finish(done + rows, plan, hosts)

    def require_every_survivor(self, dead, survivors, answered, notes):
        """Recovery starts guests that must not run anywhere else. A survivor that does not answer may
        run some of them (a guest migrated there before the failure, or recovered there by an earlier
        run): starting them again would put two copies on the shared disks. So every survivor must
        answer, unless the operator names it as fenced too (powered off, like the dead host)."""
        seen = {host.name for host in answered}
        silent = [h for h in survivors if h not in seen]
        unconfirmed = [h for h in silent if h not in self.p['fenced_hosts']]
        if unconfirmed:
            raise InvalidInputError(
                'refusing to recover the guests of %s: %s did not answer, and a guest that still runs there would '
                'be started a second time on the same disks (%s)' % (
                    dead, ', '.join(unconfirmed), '; '.join(n for n in notes if any(h in n for h in unconfirmed))),
                remedy='Bring %s back (libvirtd, network, SSH) and run again, or, if it is down too, power it off and '
                       'list it in fenced_hosts (recover.yml: -e \'{"recover_fenced_hosts": [...]}\').'
                       % ', '.join(unconfirmed), details={'unanswered_hosts': unconfirmed})
        for host in silent:
            notes.append('host %s does not answer; fenced as the operator confirmed (fenced_hosts): its guests are '
                         'not looked at' % host)

    def do_rejoin(self):
        """On a host that answers again after its guests were recovered elsewhere: every guest that now runs
        on another host loses its stale copy here (autostart off, destroyed if it runs, undefined)."""
        dead = self.p['dead_host']
        if dead and dead != self.me:
            raise InvalidInputError('rejoin runs on the host that comes back (dead_host=%s), but this is %s'
                                    % (dead, self.me),
                                    remedy='Run it on %s (recover.yml -e dead_host=%s -e rejoin=true does).'
                                    % (dead, dead))
        conn = self.conn(self.me)
        dummy, here = host_facts(conn, self.me)
        hosts, guests, notes = self.gather([h for h in self.p['hosts'] if h != self.me])
        elsewhere = dict((facts.uuid, (facts.host, facts.state)) for facts in guests)
        local = []
        for facts in here:
            if not self.wanted(facts.name):
                continue
            try:
                dom = conn.lookupByUUIDString(facts.uuid)
                local.append({'name': facts.name, 'uuid': facts.uuid, 'active': facts.running,
                              'persistent': facts.persistent,
                              'autostart': facts.persistent and bool(dom.autostart()),
                              'job': facts.running and dom.jobInfo()[0] != VIR_DOMAIN_JOB_NONE})
            except Exception:  # pylint: disable=broad-except
                continue  # gone while we looked: nothing left to clean up
        cleanups, rows = rejoin_plan(self.me, local, elsewhere)
        done, changed = [], False
        for entry, where, steps in cleanups:
            if self.check:
                done.append(make_row(entry['name'], self.me, where, 'planned',
                                     'runs on %s; here it would: %s' % (where, ', '.join(steps))))
                changed = True
                continue
            row, steps_done = self.remove_stale_copy(conn, entry, where, steps)
            done.append(row)
            changed = changed or bool(steps_done)
        result = self.finish(done + rows, Plan(notes=notes), hosts)
        counts = result['summary']['counts']
        result['changed'] = changed
        result['msg'] = 'rejoin of %s: %d stale copies %s, %d guests left as they are, %d need a look' % (
            self.me, counts.get('planned', 0) if self.check else counts.get('removed', 0),
            'to remove (check mode: nothing changed)' if self.check else 'removed', counts.get('skipped', 0),
            len(result['summary']['stayed']))
        return result

    def remove_stale_copy(self, conn, entry, where, steps):
        """Apply the rejoin steps to this host's copy of a guest that runs on ``where``: (row, steps done)."""
        done, step = [], 'look up'
        try:
            dom = conn.lookupByUUIDString(entry['uuid'])
            for step in steps:
                if step == 'disable autostart':
                    dom.setAutostart(0)
                elif step == 'destroy':
                    dom.destroy()
                else:
                    dom.undefineFlags(UNDEFINE_STALE)
                done.append(step)
                self.log('%s runs on %s: %s here' % (entry['name'], where, step))
        except Exception as exc:  # pylint: disable=broad-except
            return make_row(entry['name'], self.me, where, 'failed', '%s here failed (done: %s): %s' % (
                step, ', '.join(done) or 'nothing', exc)), done
        return make_row(entry['name'], self.me, where, 'removed', 'runs on %s; here: %s' % (
            where, ', '.join(done))), done


def _xml_field(xml, tag):
    """``uuid``, ``memory`` (KiB, the maximum) or ``vcpu`` (the maximum) of a saved domain XML (``_domain_xml``)."""
    try:
        domain = read_domain(xml)
    except ET.ParseError:
        return None
    return {'uuid': domain.uuid, 'memory': domain.memory_kib, 'vcpu': domain.max_vcpus}[tag]
