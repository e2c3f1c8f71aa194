# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_migrate's options, their defaults and what is derived from them alone (the destination's
URI, the detached run's outcome file, the default timeout). One home, so every caller of the
migration manager (virt_migrate, virt_evacuate, the preflight's and the evacuation's forecasts)
gets the same names and defaults."""

from __future__ import annotations

import os

from ansible_collections.kvmops.migration.plugins.module_utils._destination import parse_destination
from ansible_collections.kvmops.migration.plugins.module_utils._module_wrapper import spec_defaults
from ansible_collections.kvmops.migration.plugins.module_utils._statefile import DEFAULT_STATE_DIR

GIB = 1024 ** 3


# The options of virt_migrate (documented in plugins/modules/virt_migrate.py). They live here
# so that every caller of MigrationManager (virt_evacuate) gets the same names and defaults.
POLICY_SPEC = dict(
    downtime_steps=dict(type='int', default=5),
    stall_window=dict(type='int', default=3),
    min_progress_ratio=dict(type='float', default=0.9),
    postcopy_after_stalled_passes=dict(type='int', default=2, no_log=False),
    postcopy_start=dict(type='str', default='after_first_pass',
                        choices=['after_first_pass', 'when_outpaced', 'when_stalled']),
    stalled_abort_passes=dict(type='int', default=12, no_log=False),
)

ARGUMENT_SPEC = dict(
    name=dict(type='str'),
    uuid=dict(type='str'),
    dest=dict(type='str', required=True),
    transport=dict(type='str', default='ssh', choices=['ssh', 'tls', 'tcp']),
    mode=dict(type='str', default='live', choices=['live', 'cold', 'offline', 'paused']),
    persistent=dict(type='bool', default=True),
    undefine_source=dict(type='bool', default=True),
    copy_storage=dict(type='str', default='none', choices=['none', 'all', 'incremental']),
    migrate_disks=dict(type='list', elements='str'),
    remove_source_storage=dict(type='bool', default=False),
    migrate_uri=dict(type='str'),
    listen_address=dict(type='str'),
    bandwidth=dict(type='int'),
    postcopy_bandwidth=dict(type='int'),
    max_downtime=dict(type='int', default=500),
    compression=dict(type='dict', options=dict(
        methods=dict(type='list', elements='str', choices=['xbzrle', 'mt', 'zlib', 'zstd']),
        level=dict(type='int'),
        threads=dict(type='int'),
        dthreads=dict(type='int'),
        xbzrle_cache=dict(type='int', no_log=False),
    )),
    parallel_connections=dict(type='int'),
    tls=dict(type='bool', default=False),
    tunnelled=dict(type='bool', default=False),
    auto_converge=dict(type='bool', default=True),
    auto_converge_initial=dict(type='int'),
    auto_converge_increment=dict(type='int'),
    allow_postcopy=dict(type='bool', default=False),
    postcopy_resume_after=dict(type='int', default=150),
    unsafe=dict(type='bool', default=False),
    policy=dict(type='dict', options=POLICY_SPEC),
    strategy=dict(type='str', default='auto', choices=['auto', 'precopy', 'auto_converge', 'postcopy', 'adaptive']),
    try_anyway=dict(type='bool', default=False),
    dirty_rate_seconds=dict(type='int', default=1),
    timeout=dict(type='int'),
    poll_interval=dict(type='float', default=0.5),
    shutdown_timeout=dict(type='int', default=120),
    force_shutdown=dict(type='bool', default=False),
    precheck=dict(type='bool', default=True),
    memory_margin_mib=dict(type='int', default=256),
    wait=dict(type='bool', default=True),
    lock_timeout=dict(type='int', default=60),
    state_dir=dict(type='path', default=DEFAULT_STATE_DIR),
)


def option_defaults():
    """virt_migrate's options with their defaults, as MigrationManager reads them."""
    return spec_defaults(ARGUMENT_SPEC)


def dest_uri(dest, transport):
    """The libvirt URI of the destination (``_destination.parse_destination``: refuses anything else)."""
    return parse_destination(dest, transport).uri


def outcome_path(state_dir, uuid):
    """Where a detached (wait: false) migration of the domain writes its result."""
    return os.path.join(state_dir, 'migrations', '%s.json' % uuid)


def default_timeout_s(memory_bytes, disk_bytes=0):
    """120 s plus 60 s per GiB to move: generous for a healthy link, bounded for a sick one."""
    return int(120 + 60 * (memory_bytes + disk_bytes) / GIB)
