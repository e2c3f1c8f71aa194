# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""present/absent for libvirt objects that are defined from XML: networks and storage pools.

Both are defined (``...DefineXML``), started (``create``), autostarted, redefined in place when
their definition drifts (the UUID is kept), restarted only when asked (a running object keeps its
old definition until then), stopped (``destroy``) and undefined the same way. ``converge`` runs that
sequence once for any such kind. A kind (``_network_manager.BridgeNetworkKind``,
``_pool_manager.StoragePoolKind``) has:

- ``noun``: what the object is called in messages ("network", "storage pool");
- ``still_running_old_definition``: the warning for a redefined object left running (``%s``: its name);
- ``lookup(name)``: the libvirt object or None (``lookup_or_none``);
- ``define(xml)``: define or redefine, returning the object;
- ``definition(handle)``: the object's persistent XML;
- ``start(handle)``: start it;
- ``wanted_xml(uuid=None)``: the XML the object should have (with its UUID when redefining);
- ``needs_redefinition(current_xml, active)``: whether the definition must be replaced (it may
  raise ``InvalidInputError`` when it cannot be replaced in place).

In check mode nothing is changed: the actions are only listed, and the definition after the run
is the one that would be defined.

Private to kvmops.migration: the API may change without notice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.kvmops.migration.plugins.module_utils._errors import translated


@dataclass(frozen=True)
class WantedState:
    """What the task asks for."""

    present: bool = True
    active: bool = True
    autostart: bool = True
    restart_on_change: bool = False


@dataclass
class Converged:
    """What ``converge`` did (or would do in check mode).

    ``actions`` in order (define, redefine, restart, start, stop, autostart, no-autostart,
    undefine); ``before``/``after`` the persistent definition before and after ('' when there is
    none); ``uuid`` the object's UUID (None when absent, or not yet defined in check mode);
    ``handle`` the libvirt object after the run (None when absent or not yet defined)."""

    actions: list = field(default_factory=list)
    before: str = ''
    after: str = ''
    uuid: str | None = None
    handle: object = None

    @property
    def changed(self):
        return bool(self.actions)


def lookup_or_none(lookup, name, not_found_code, noun):
    """``lookup(name)``, or None when libvirt says there is no such object (``not_found_code``);
    any other libvirt error becomes a typed error naming the object."""
    try:
        return lookup(name)
    except Exception as exc:  # pylint: disable=broad-except
        if getattr(exc, 'get_error_code', lambda: None)() == not_found_code:
            return None
        with translated('Looking up %s %s' % (noun, name)):
            raise


def converge(kind, name, wanted, check_mode, warn):
    """Bring the object ``name`` of ``kind`` to ``wanted``; returns a ``Converged``.

    ``warn(msg)`` is told when a redefined object keeps running with its old definition
    (``restart_on_change`` false). libvirt errors become typed errors naming the object."""
    with translated('Managing %s %s' % (kind.noun, name)):
        handle = kind.lookup(name)
        if not wanted.present:
            return _remove(kind, handle, check_mode)
        return _define_and_run(kind, name, handle, wanted, check_mode, warn)


def _remove(kind, handle, check_mode):
    done = Converged()
    if handle is None:
        return done
    done.before = kind.definition(handle)
    if handle.isActive():
        done.actions.append('stop')
        if not check_mode:
            handle.destroy()
    done.actions.append('undefine')
    if not check_mode:
        handle.undefine()
    return done


def _define_and_run(kind, name, handle, wanted, check_mode, warn):
    done = Converged(handle=handle)
    active = autostart = False
    if handle is None:
        done.actions.append('define')
        done.after = kind.wanted_xml()
        if not check_mode:
            done.handle = kind.define(done.after)
    else:
        done.uuid = handle.UUIDString()
        active = bool(handle.isActive())
        autostart = bool(handle.autostart())
        done.before = done.after = kind.definition(handle)
        if kind.needs_redefinition(done.before, active):
            done.actions.append('redefine')
            done.after = kind.wanted_xml(done.uuid)
            if not check_mode:
                done.handle = kind.define(done.after)
            if active and wanted.restart_on_change:
                done.actions.append('restart')
                if not check_mode:
                    done.handle.destroy()
                    active = False
            elif active:
                warn(kind.still_running_old_definition % name)
    if wanted.active and not active:
        done.actions.append('start')
        if not check_mode:
            kind.start(done.handle)
    elif not wanted.active and active:
        done.actions.append('stop')
        if not check_mode:
            done.handle.destroy()
    if wanted.autostart != autostart:
        done.actions.append('autostart' if wanted.autostart else 'no-autostart')
        if not check_mode:
            done.handle.setAutostart(1 if wanted.autostart else 0)
    if done.handle is not None and not check_mode:
        done.uuid = done.handle.UUIDString()
        done.after = kind.definition(done.handle)
    return done
