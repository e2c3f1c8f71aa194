# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Make the checkout importable as ``ansible_collections.kvmops.migration`` for pytest.

The repository root is the collection root, but Python (and Ansible's collection
loader) need it at a path ending in ``ansible_collections/kvmops/migration``.
``make venv`` creates ``.venv/collections/ansible_collections/kvmops/migration`` as a
symlink to the checkout; this file recreates it if missing and puts
``.venv/collections`` first in ``ANSIBLE_COLLECTIONS_PATH`` before pytest-ansible
reads it (pytest.ini passes ``--ansible-unit-inject-only``).
Set KVMOPS_COLLECTIONS_ROOT to use another directory than ``.venv/collections``.
"""

from __future__ import annotations

import os

REPO_ROOT = os.path.dirname(os.path.abspath(__file__))
COLLECTIONS_ROOT = os.environ.get('KVMOPS_COLLECTIONS_ROOT') or os.path.join(REPO_ROOT, '.venv', 'collections')


def _expose_collection():
    link = os.path.join(COLLECTIONS_ROOT, 'ansible_collections', 'kvmops', 'migration')
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.islink(link):  # dangling
            os.unlink(link)
        os.symlink(REPO_ROOT, link)
    paths = [p for p in os.environ.get('ANSIBLE_COLLECTIONS_PATH', '').split(os.pathsep) if p]
    if COLLECTIONS_ROOT not in paths:
        os.environ['ANSIBLE_COLLECTIONS_PATH'] = os.pathsep.join([COLLECTIONS_ROOT] + paths)


_expose_collection()
