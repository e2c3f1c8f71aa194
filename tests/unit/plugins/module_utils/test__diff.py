# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The difference tracker: what it records, and that a result gets `diff` only in diff mode."""

from __future__ import annotations

from ansible_collections.kvmops.migration.plugins.module_utils._diff import DifferenceTracker


def test_an_unchanged_item_is_no_difference():
    diff = DifferenceTracker()
    assert diff.empty
    diff.add('network', '<a/>', '<a/>')
    assert diff.empty and not diff.has_difference_for('network')
    diff.add('pool', '', '<p/>')
    assert not diff.empty
    assert diff.has_difference_for('pool') and not diff.has_difference_for('network')
    assert diff.get_before_after() == ({'network': '<a/>', 'pool': ''}, {'network': '<a/>', 'pool': '<p/>'})


def test_single_diff_is_the_named_items_texts():
    diff = DifferenceTracker()
    diff.add('network', 'old', 'new')
    assert diff.single_diff('network') == {'before': 'old', 'after': 'new'}
    assert diff.single_diff('pool') == {'before': '', 'after': ''}


def test_per_item_diff_heads_each_item_with_its_name_in_order():
    diff = DifferenceTracker()
    diff.add('b <cpu>', 'x\n', 'y\n')
    diff.add('a <cpu>', '\n', 'z\n')
    assert diff.per_item_diff() == [
        {'before_header': 'b <cpu>', 'after_header': 'b <cpu>', 'before': 'x\n', 'after': 'y\n'},
        {'before_header': 'a <cpu>', 'after_header': 'a <cpu>', 'before': '\n', 'after': 'z\n'},
    ]


def test_the_result_gets_a_diff_in_diff_mode_only():
    diff = DifferenceTracker()
    diff.add('network', 'old', 'new')
    assert diff.add_to({'changed': True}, diff_mode=False, name='network') == {'changed': True}
    assert diff.add_to({'changed': True}, diff_mode=True, name='network') == {
        'changed': True, 'diff': {'before': 'old', 'after': 'new'}}
    assert diff.add_to({}, diff_mode=True)['diff'][0]['before_header'] == 'network'
    assert DifferenceTracker().add_to({}, diff_mode=True) == {'diff': []}
