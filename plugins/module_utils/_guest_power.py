# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_guest_power: shut guests down cleanly (never forced off) for a host's maintenance, start them again.

``power_plan`` decides from plain facts (pure, unit-tested); ``GuestPower`` applies it through libvirt.
"""

from __future__ import annotations

import time

from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    InvalidInputError,
    OperationTimeoutError,
    translated,
)
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import VIR_DOMAIN_PAUSED

STATE_NAMES = {0: 'no state', 1: 'running', 2: 'blocked', 3: 'paused', 4: 'shutting down', 5: 'shut off',
               6: 'crashed', 7: 'suspended'}


def power_plan(guests, state):
    """What to do with each guest to bring it to ``state`` (``shutdown`` or ``running``).

    ``guests``: [{name, active, persistent, state (libvirt's number)}]. Returns ``(actions, refusals)``:
    ``actions`` {name: 'shutdown' | 'start' | None (already there)}; ``refusals`` the reasons nothing may
    be done at all. A transient guest is never shut down (it would be gone, with no definition to start it
    from), nor a paused one (it cannot react to the request); both are refused before anything changes.
    """
    actions, refusals = {}, []
    for guest in guests:
        name = guest['name']
        if state == 'running':
            actions[name] = None if guest['active'] else 'start'
            continue
        if not guest['active']:
            actions[name] = None
        elif not guest['persistent']:
            refusals.append('%s is transient: shut down, it would be gone, with no definition to start it from; '
                            'define it persistently first (virsh dumpxml, virsh define) or leave it where it is'
                            % name)
        elif guest.get('state') == VIR_DOMAIN_PAUSED:
            refusals.append('%s is paused and cannot react to a shutdown request; resume it first' % name)
        else:
            actions[name] = 'shutdown'
    return actions, refusals


class GuestPower:
    """Brings named guests of the local hypervisor to a state; a libvirt connection in, a report out."""

    def __init__(self, conn, check_mode=False, clock=time.monotonic, sleep=time.sleep):
        self.conn = conn
        self.check_mode = check_mode
        self.clock = clock
        self.sleep = sleep

    def facts(self, names):
        """{name: virDomain} and their facts for power_plan; an unknown name is refused."""
        domains, facts, missing = {}, [], []
        known = dict((dom.name(), dom) for dom in self.conn.listAllDomains(0))
        for name in names:
            dom = known.get(name)
            if dom is None:
                missing.append(name)
                continue
            domains[name] = dom
            facts.append({'name': name, 'active': bool(dom.isActive()), 'persistent': bool(dom.isPersistent()),
                          'state': dom.state(0)[0]})
        if missing:
            raise InvalidInputError('no guest %s on this host' % ', '.join(missing),
                                    remedy='Name guests defined on the host the module runs on.')
        return domains, facts

    def running(self):
        """Names of every guest running on this host (what a reboot would stop)."""
        return sorted(dom.name() for dom in self.conn.listAllDomains(0) if dom.isActive())

    def apply(self, names, state, timeout_s):
        domains, facts = self.facts(names)
        actions, refusals = power_plan(facts, state)
        if refusals:
            what = 'shut down' if state == 'shutdown' else 'start'
            raise InvalidInputError('refusing to %s: %s' % (what, '; '.join(refusals)),
                                    remedy='Nothing was changed. Deal with these guests, or leave them out.')
        before = dict((f['name'], STATE_NAMES.get(f['state'], str(f['state']))) for f in facts)
        todo = [name for name in names if actions[name]]
        if not self.check_mode:
            for name in todo:
                with translated('%s %s' % ('Shutting down' if actions[name] == 'shutdown' else 'Starting', name)):
                    if actions[name] == 'shutdown':
                        domains[name].shutdown()
                    else:
                        domains[name].create()
            if state == 'shutdown':
                self.wait_off([domains[name] for name in todo], timeout_s)
        report = [{'name': name, 'before': before[name], 'changed': name in todo,
                   'after': ('shut off' if state == 'shutdown' else 'running') if name in todo else before[name]}
                  for name in names]
        return dict(changed=bool(todo), guests=report, running=self.running())

    def wait_off(self, domains, timeout_s):
        """All of ``domains`` shut off within ``timeout_s``, or a timeout naming those still running.
        Never forced off: a guest that ignores the request is the operator's to deal with."""
        deadline = self.clock() + timeout_s
        left = list(domains)
        while left:
            left = [dom for dom in left if dom.isActive()]
            if not left:
                return
            if self.clock() >= deadline:
                raise OperationTimeoutError(
                    '%s did not shut down within %ss (the shutdown request was sent; nothing was forced off)'
                    % (', '.join(sorted(dom.name() for dom in left)), timeout_s),
                    remedy='Shut them down from inside the guest or raise shutdown_timeout; a guest that ignores '
                           'ACPI needs an agent or acpid.')
            self.sleep(1)
