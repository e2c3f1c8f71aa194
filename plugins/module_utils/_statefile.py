# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one way the collection writes and reads its state files (records, marks, outcomes, backups).

A writer replaces the file in one step: a reader sees the old or the new content, never half of one.
Each write goes through its own temporary file (``mkstemp`` in the same directory), so writers in
several threads or processes never share a temporary name; with a shared name, one writer's rename
can take the file away from another one (``No such file or directory: '….tmp'``).
"""

from __future__ import annotations

import json
import os
import tempfile

# Where the collection keeps its state on a hypervisor: the default of every module's state_dir
# option (documented once, in plugins/doc_fragments/state_dir.py).
DEFAULT_STATE_DIR = '/var/lib/libvirt/kvmops'
STATE_FILE_MODE = 0o644    # records and marks: read by the playbooks and the operator
PRIVATE_FILE_MODE = 0o600  # definitions backups: they can hold secrets (VNC passwords, LUKS uuids)


def write_text(path, text, mode=STATE_FILE_MODE):
    """Replace ``path`` with ``text`` atomically, flushed to storage first; creates the directory."""
    directory = os.path.dirname(path) or '.'
    os.makedirs(directory, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=directory, prefix='.%s.' % os.path.basename(path), suffix='.tmp')
    try:
        with os.fdopen(handle, 'w', encoding='utf-8') as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path, data, mode=STATE_FILE_MODE):
    """Replace ``path`` with ``data`` as JSON (keys sorted, so a diff of two versions is readable)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str), mode)


def read_text(path):
    """The text at ``path``, or None if it is missing or unreadable."""
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read()
    except OSError:
        return None


def read_json(path):
    """The JSON object at ``path``, or None if it is missing, unreadable or not an object."""
    text = read_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
