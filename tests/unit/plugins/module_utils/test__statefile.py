# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import stat
import threading

from ansible_collections.kvmops.migration.plugins.module_utils._statefile import (
    PRIVATE_FILE_MODE,
    read_json,
    read_text,
    write_json,
    write_text,
)


def test_round_trip_creates_the_directory_and_leaves_no_temporary_file(tmp_path):
    path = str(tmp_path / 'state' / 'evacuation.json')
    write_json(path, {'guests': {'web1': {'from': 'host-a'}}})
    assert read_json(path) == {'guests': {'web1': {'from': 'host-a'}}}
    assert os.listdir(str(tmp_path / 'state')) == ['evacuation.json']
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_private_files_are_readable_by_their_owner_only(tmp_path):
    path = str(tmp_path / 'web1.xml')
    write_text(path, '<domain/>', PRIVATE_FILE_MODE)
    assert read_text(path) == '<domain/>'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_missing_broken_or_non_object_files_read_as_none(tmp_path):
    assert read_json(str(tmp_path / 'missing.json')) is None and read_text(str(tmp_path / 'missing')) is None
    (tmp_path / 'bad.json').write_text('{not json')
    (tmp_path / 'list.json').write_text('[1, 2]')
    assert read_json(str(tmp_path / 'bad.json')) is None
    assert read_json(str(tmp_path / 'list.json')) is None


def test_concurrent_writers_of_one_file_never_fail_and_leave_one_whole_version(tmp_path):
    path = str(tmp_path / 'evacuation.json')
    errors = []

    def writer(n):
        try:
            for i in range(50):
                write_json(path, {'writer': n, 'i': i, 'pad': 'x' * 4096})
        except OSError as exc:  # a shared temporary name fails here with ENOENT
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    final = read_json(path)
    assert final['i'] == 49 and len(final['pad']) == 4096
    assert os.listdir(str(tmp_path)) == ['evacuation.json']
