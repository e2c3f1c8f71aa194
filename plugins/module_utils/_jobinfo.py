# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Migration job figures for monitoring (virt_migrate_info): progress that never goes backwards
(pure), the jobs of a host's domains, and the reports of migrations started with wait: false (read
from their files).

During pre-copy the remaining size can grow (the guest dirties pages faster than they are
sent), so processed / (processed + remaining) can fall. Progress is therefore reported as
the high-water mark for the job, kept by the caller between readings (``previous``).
"""

from __future__ import annotations

import glob
import os

from ansible_collections.kvmops.migration.plugins.module_utils._errors import DomainNotFoundError, translated
from ansible_collections.kvmops.migration.plugins.module_utils._detach import pid_alive
from ansible_collections.kvmops.migration.plugins.module_utils._statefile import read_json
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_DOMAIN_JOB_NONE,
    VIR_DOMAIN_JOB_STATS_COMPLETED,
)

JOB_TYPES = {0: 'none', 1: 'bounded', 2: 'unbounded', 3: 'completed', 4: 'failed', 5: 'cancelled'}
JOB_OPERATIONS = {0: 'unknown', 1: 'start', 2: 'save', 3: 'restore', 4: 'migration_in', 5: 'migration_out',
                  6: 'snapshot', 7: 'snapshot_revert', 8: 'dump', 9: 'backup', 10: 'snapshot_delete'}


def progress_percent(stats, previous=None):
    """Percent done of a migration job, never below `previous` for the same job."""
    processed = stats.get('data_processed') or stats.get('memory_processed') or 0
    remaining = stats.get('data_remaining')
    if remaining is None:
        remaining = stats.get('memory_remaining') or 0
    total = processed + remaining
    raw = 100.0 * processed / total if total else 0.0
    if stats.get('type') == 3:
        raw = 100.0
    return round(max(raw, previous or 0.0), 1)


def describe_job(stats, previous=None):
    """A monitoring view of jobStats(): sizes in bytes, times in ms, rates in bytes/s."""
    page = stats.get('memory_page_size') or 4096
    dirty = stats.get('memory_dirty_rate')
    return {
        'type': JOB_TYPES.get(stats.get('type'), str(stats.get('type'))),
        'operation': JOB_OPERATIONS.get(stats.get('operation'), str(stats.get('operation'))),
        'progress_percent': progress_percent(stats, previous),
        'time_elapsed_ms': stats.get('time_elapsed'),
        'data_total_bytes': stats.get('data_total'),
        'data_processed_bytes': stats.get('data_processed'),
        'data_remaining_bytes': stats.get('data_remaining'),
        'memory_remaining_bytes': stats.get('memory_remaining'),
        'bandwidth_bps': stats.get('memory_bps'),
        'dirty_rate_bps': dirty * page if dirty is not None else None,
        'pass': stats.get('memory_iteration'),
        'expected_downtime_ms': stats.get('downtime'),
        'auto_converge_throttle': stats.get('auto_converge_throttle'),
        'disk_remaining_bytes': stats.get('disk_remaining'),
    }


def detached_migrations(state_dir, name=None):
    """Summaries of the migrations started with wait: false (virt_migrate writes one file per
    domain under ``state_dir/migrations``), newest first; only ``name``'s if given. A report
    that says running but whose process is gone is shown as not running, without a result."""
    found = []
    for path in glob.glob(os.path.join(state_dir, 'migrations', '*.json')):
        report = read_json(path)
        if not report or (name is not None and report.get('name') != name):
            continue
        entry = dict((key, report[key]) for key in ('name', 'uuid', 'destination', 'msg', 'location', 'failed')
                     if key in report)
        entry['running'] = bool(report.get('running')) and pid_alive(report.get('pid'))
        entry['failed'] = bool(report.get('failed'))
        entry['outcome_file'] = path
        entry['_at'] = report.get('finished_at') or report.get('started_at') or 0
        found.append(entry)
    found.sort(key=lambda entry: entry['_at'], reverse=True)
    for entry in found:
        del entry['_at']
    return found


def domain_jobs(domains, every_domain, previous_progress=None, completed=False):
    """One entry per domain: its job described (``describe_job``) with its name, and with
    ``completed`` the figures of its last completed job (None when libvirt kept none).

    ``every_domain``: the domains are all of the host's, and those without a job are left out
    (unless ``completed`` is asked for); a domain asked for by name is always reported."""
    jobs = []
    for dom in domains:
        with translated('Reading the job of %s' % dom.name()):
            stats = dom.jobStats(0) if dom.isActive() else {'type': VIR_DOMAIN_JOB_NONE}
        if every_domain and stats.get('type', VIR_DOMAIN_JOB_NONE) == VIR_DOMAIN_JOB_NONE and not completed:
            continue
        entry = dict(describe_job(stats, previous_progress), name=dom.name())
        if completed:
            try:
                last = dom.jobStats(VIR_DOMAIN_JOB_STATS_COMPLETED)
                entry['completed'] = describe_job(last)
                entry['completed']['downtime_ms'] = last.get('downtime')
            # A libvirtError here means libvirt kept no completed job for this domain.
            except Exception:  # pylint: disable=broad-except
                entry['completed'] = None
        jobs.append(entry)
    return jobs


def migration_info(kvm):
    """virt_migrate_info's run: the jobs of one domain or of all, and the detached migrations."""
    client = kvm.client
    params = kvm.params
    detached = detached_migrations(params['state_dir'], params['name'])
    if params['name'] is not None:
        try:
            domains = [client.lookup_domain(name=params['name'])]
        except DomainNotFoundError:
            if not detached:
                raise
            domains = []  # it left this host with a detached migration: that is the news
    else:
        with translated('Listing domains'):
            domains = client.conn.listAllDomains(0)
    jobs = domain_jobs(domains, every_domain=params['name'] is None, previous_progress=params['previous_progress'],
                       completed=params['completed'])
    return {'changed': False, 'jobs': jobs, 'detached': detached}
