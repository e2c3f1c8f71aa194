# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The libvirt constants the collection uses, each defined once (private module_utils; API may change).

Why not ``libvirt.VIR_...``: the module_utils must import, and be unit tested, without the
libvirt bindings (``_bindings`` imports them only where they are needed), and some of these
constants are newer than bindings still in use. The values are libvirt's stable ABI: libvirt
never renumbers a released constant. The unit test ``test__libvirt_constants`` checks every one
against the bindings.

Callers import the names they use from here; a few modules keep a shorter name of their own
for one of these (``_location``'s ``RUNNING``, ``_preflight_checks``' ``CPU_COMPARE_*``,
``_migration_flags``' ``MigrateFlag``) by importing or referring to the constant here.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------
# Errors: virErrorNumber (an error's code) and virErrorDomain (where it was raised)

VIR_ERR_NO_SUPPORT = 3
VIR_ERR_NO_CONNECT = 5
VIR_ERR_INVALID_CONN = 6
VIR_ERR_INVALID_ARG = 8
VIR_ERR_XML_ERROR = 27
VIR_ERR_XML_DETAIL = 35
VIR_ERR_SYSTEM_ERROR = 38
VIR_ERR_RPC = 39
VIR_ERR_NO_DOMAIN = 42
VIR_ERR_NO_NETWORK = 43
VIR_ERR_AUTH_FAILED = 45
VIR_ERR_NO_STORAGE_POOL = 49
VIR_ERR_NO_STORAGE_VOL = 50
VIR_ERR_OPERATION_INVALID = 55
VIR_ERR_CONFIG_UNSUPPORTED = 67
VIR_ERR_OPERATION_TIMEOUT = 68
VIR_ERR_MIGRATE_PERSIST_FAILED = 69
VIR_ERR_ARGUMENT_UNSUPPORTED = 74
VIR_ERR_OPERATION_ABORTED = 78
VIR_ERR_AUTH_CANCELLED = 79
VIR_ERR_NO_DOMAIN_METADATA = 80
VIR_ERR_MIGRATE_UNSAFE = 81
VIR_ERR_OPERATION_UNSUPPORTED = 84
VIR_ERR_CPU_INCOMPATIBLE = 91
VIR_ERR_XML_INVALID_SCHEMA = 92
VIR_ERR_MIGRATE_FINISH_OK = 93
VIR_ERR_AUTH_UNAVAILABLE = 94
VIR_ERR_LIBSSH = 98

VIR_FROM_RPC = 7
VIR_FROM_REMOTE = 13

# ---------------------------------------------------------------------------
# Domain state (virDomainState) and the state reasons the collection acts on

VIR_DOMAIN_RUNNING = 1
VIR_DOMAIN_BLOCKED = 2
VIR_DOMAIN_PAUSED = 3
VIR_DOMAIN_SHUTDOWN = 4
VIR_DOMAIN_SHUTOFF = 5

VIR_DOMAIN_RUNNING_POSTCOPY_FAILED = 11  # libvirt >= 8.5: the destination's vCPUs run, pages are missing

VIR_DOMAIN_PAUSED_USER = 1
VIR_DOMAIN_PAUSED_MIGRATION = 2
VIR_DOMAIN_PAUSED_STARTING_UP = 11
VIR_DOMAIN_PAUSED_POSTCOPY = 12
VIR_DOMAIN_PAUSED_POSTCOPY_FAILED = 13
VIR_DOMAIN_SHUTOFF_DESTROYED = 2
VIR_DOMAIN_SHUTOFF_CRASHED = 3
VIR_DOMAIN_SHUTOFF_MIGRATED = 4

# ---------------------------------------------------------------------------
# Domain definitions: XML flags, undefine flags, metadata and live/config targets

VIR_DOMAIN_XML_SECURE = 1
VIR_DOMAIN_XML_INACTIVE = 2

VIR_DOMAIN_UNDEFINE_MANAGED_SAVE = 1
VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA = 2
VIR_DOMAIN_UNDEFINE_KEEP_NVRAM = 8
VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA = 16

VIR_DOMAIN_METADATA_ELEMENT = 2
VIR_DOMAIN_AFFECT_CURRENT = 0
VIR_DOMAIN_AFFECT_LIVE = 1
VIR_DOMAIN_AFFECT_CONFIG = 2

# ---------------------------------------------------------------------------
# Connections: listing domains, CPU comparison and baseline

VIR_CONNECT_LIST_DOMAINS_ACTIVE = 1
VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE = 1
VIR_CONNECT_BASELINE_CPU_MIGRATABLE = 2

# virCPUCompareResult
VIR_CPU_COMPARE_INCOMPATIBLE = 0
VIR_CPU_COMPARE_IDENTICAL = 1
VIR_CPU_COMPARE_SUPERSET = 2

# ---------------------------------------------------------------------------
# Migration: virDomainMigrateFlags, the job and its statistics, events

VIR_MIGRATE_LIVE = 1 << 0
VIR_MIGRATE_PEER2PEER = 1 << 1
VIR_MIGRATE_TUNNELLED = 1 << 2
VIR_MIGRATE_PERSIST_DEST = 1 << 3
VIR_MIGRATE_UNDEFINE_SOURCE = 1 << 4
VIR_MIGRATE_PAUSED = 1 << 5
VIR_MIGRATE_NON_SHARED_DISK = 1 << 6
VIR_MIGRATE_NON_SHARED_INC = 1 << 7
VIR_MIGRATE_CHANGE_PROTECTION = 1 << 8
VIR_MIGRATE_UNSAFE = 1 << 9
VIR_MIGRATE_OFFLINE = 1 << 10
VIR_MIGRATE_COMPRESSED = 1 << 11
VIR_MIGRATE_ABORT_ON_ERROR = 1 << 12
VIR_MIGRATE_AUTO_CONVERGE = 1 << 13
VIR_MIGRATE_RDMA_PIN_ALL = 1 << 14
VIR_MIGRATE_POSTCOPY = 1 << 15
VIR_MIGRATE_TLS = 1 << 16
VIR_MIGRATE_PARALLEL = 1 << 17
VIR_MIGRATE_NON_SHARED_SYNCHRONOUS_WRITES = 1 << 18
VIR_MIGRATE_POSTCOPY_RESUME = 1 << 19
VIR_MIGRATE_ZEROCOPY = 1 << 20

VIR_DOMAIN_JOB_NONE = 0
VIR_DOMAIN_JOB_STATS_COMPLETED = 1
# Reading a completed job's statistics without this flag deletes them.
VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED = 2
VIR_DOMAIN_ABORT_JOB_POSTCOPY = 1
VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION = 20

# ---------------------------------------------------------------------------
# Block jobs (blockCopy, blockJobAbort, blockJobSetSpeed, blockJobInfo)

VIR_DOMAIN_BLOCK_COPY_SHALLOW = 1
VIR_DOMAIN_BLOCK_COPY_REUSE_EXT = 2
VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB = 4
VIR_DOMAIN_BLOCK_COPY_SYNCHRONOUS_WRITES = 8
VIR_DOMAIN_BLOCK_COPY_BANDWIDTH = 'bandwidth'  # a typed-parameter name, not a number
VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT = 2
VIR_DOMAIN_BLOCK_JOB_SPEED_BANDWIDTH_BYTES = 1
VIR_DOMAIN_BLOCK_JOB_TYPE_COPY = 2

# ---------------------------------------------------------------------------
# Dirty-rate measurement and domain statistics

VIR_DOMAIN_DIRTYRATE_MODE_PAGE_SAMPLING = 0
VIR_DOMAIN_DIRTYRATE_MEASURED = 2
VIR_DOMAIN_STATS_VCPU = 8
VIR_DOMAIN_STATS_DIRTYRATE = 512

# ---------------------------------------------------------------------------
# Storage pools and volumes, networks

VIR_STORAGE_VOL_FILE = 0
VIR_STORAGE_VOL_BLOCK = 1
VIR_STORAGE_XML_INACTIVE = 1
VIR_STORAGE_POOL_CREATE_WITH_BUILD = 1
VIR_NETWORK_XML_INACTIVE = 1
