# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a module run changes, item by item, and the ``diff`` result Ansible shows for it.

A manager records each item it manages (a network's definition, a guest's ``<cpu>``) with its
value before and after the run; the module returns ``diff`` only when the task runs in diff mode
(``--diff`` or ``diff: true``), as Ansible's own modules do. Outside diff mode the result carries
no ``diff``, so a large definition is not sent back (and logged) for nothing.

Private to kvmops.migration: the API may change without notice.
"""

from __future__ import annotations


class DifferenceTracker:
    """Named before/after values of what a run manages, in the order they were recorded."""

    def __init__(self):
        self._items = []

    def add(self, name, before, after):
        """Record ``name``'s value before and after the run (equal when nothing changed)."""
        self._items.append((name, before, after))

    @property
    def empty(self):
        """True when no recorded item differs."""
        return all(before == after for dummy, before, after in self._items)

    def has_difference_for(self, name):
        """True when the item ``name`` was recorded with different values."""
        return any(item == name and before != after for item, before, after in self._items)

    def get_before_after(self):
        """({name: before}, {name: after}) of every recorded item."""
        before = dict((name, value) for name, value, dummy in self._items)
        after = dict((name, value) for name, dummy, value in self._items)
        return before, after

    def single_diff(self, name):
        """Ansible's diff of a module that manages one object: ``{before, after}`` of ``name``
        (empty texts when it was not recorded)."""
        before, after = self.get_before_after()
        return dict(before=before.get(name, ''), after=after.get(name, ''))

    def per_item_diff(self):
        """Ansible's diff of a module that manages several objects: one entry per item, headed by its name."""
        return [dict(before_header=name, after_header=name, before=before, after=after)
                for name, before, after in self._items]

    def add_to(self, result, diff_mode, name=None):
        """Put the diff into ``result`` in diff mode only: ``single_diff(name)`` when a name is
        given, else ``per_item_diff()``. Returns ``result``."""
        if diff_mode:
            result['diff'] = self.single_diff(name) if name is not None else self.per_item_diff()
        return result
