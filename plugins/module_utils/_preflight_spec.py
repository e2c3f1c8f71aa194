# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""virt_migrate_preflight's options and its verdict model.

Private module_utils file (leading underscore): its API may change without notice.

A verdict is ``{name, category, guest?, status: ok|warn|fail, detail, remedy}`` (``check``);
``summarize``, ``should_fail`` and ``failure_message`` aggregate a list of them. The checks
that make verdicts are in ``_preflight_checks`` and ``_preflight_storage_checks``, the facts they
judge are gathered by ``_preflight_runner``.
"""

from __future__ import annotations

from ansible_collections.kvmops.migration.plugins.module_utils._module_wrapper import spec_defaults
from ansible_collections.kvmops.migration.plugins.module_utils._destination import TRANSPORTS

OK, WARN, FAIL = 'ok', 'warn', 'fail'
STATUSES = (OK, WARN, FAIL)
FAIL_ON_CHOICES = ('fail', 'warn', 'never')
MIB = 1024 * 1024

# The options of virt_migrate_preflight (documented in plugins/modules/virt_migrate_preflight.py).
# They live here so that virt_evacuate (run_preflight) runs the same checks with the same defaults.
PREFLIGHT_ARGUMENT_SPEC = dict(
    dest=dict(type='str', required=True),
    transport=dict(type='str', choices=list(TRANSPORTS), default='ssh'),
    guests=dict(type='list', elements='str', default=[]),
    fail_on=dict(type='str', choices=list(FAIL_ON_CHOICES), default='fail'),
    measure_bandwidth=dict(type='bool', default=False),
    bandwidth_seconds=dict(type='float', default=3),
    dirty_rate_seconds=dict(type='int', default=1),
    min_bandwidth_mib_s=dict(type='float'),
    memory_margin_mib=dict(type='int', default=256),
    vcpu_overcommit_ratio=dict(type='float', default=4.0),
    storage_probe=dict(type='str', choices=['auto', 'ssh', 'libvirt'], default='auto'),
    ssh_options=dict(type='list', elements='str', default=[]),
    connect_timeout=dict(type='int', default=5),
)


def preflight_params(**given):
    """virt_migrate_preflight's parameters: its defaults, then ``given``."""
    return spec_defaults(PREFLIGHT_ARGUMENT_SPEC, **given)


# ---------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------

def check(name, status, detail, remedy=None, guest=None):
    """One verdict. ``name`` is ``<category>.<what>``; ``remedy`` only for warn/fail."""
    if status not in STATUSES:
        raise ValueError('status must be one of %s, got %r' % (', '.join(STATUSES), status))
    category = name.split('.', 1)[0]
    result = {'name': name, 'category': category, 'status': status, 'detail': detail,
              'remedy': remedy if status != OK else None}
    if guest is not None:
        result['guest'] = guest
    return result


def summarize(checks, skipped=None):
    """Counts per status, the failing/warning checks by label, and the overall verdict."""
    counts = dict((s, 0) for s in STATUSES)
    for c in checks:
        counts[c['status']] += 1

    def label(c):
        return '%s(%s)' % (c['name'], c['guest']) if c.get('guest') else c['name']

    verdict = FAIL if counts[FAIL] else (WARN if counts[WARN] else OK)
    return {
        'verdict': verdict,
        'total': len(checks),
        'ok': counts[OK],
        'warn': counts[WARN],
        'fail': counts[FAIL],
        'failed_checks': [label(c) for c in checks if c['status'] == FAIL],
        'warned_checks': [label(c) for c in checks if c['status'] == WARN],
        'skipped': list(skipped or []),
    }


def should_fail(checks, fail_on='fail'):
    """Whether the module run fails: ``fail`` on any fail, ``warn`` on any warn or fail, ``never``."""
    if fail_on not in FAIL_ON_CHOICES:
        raise ValueError('fail_on must be one of %s' % ', '.join(FAIL_ON_CHOICES))
    if fail_on == 'never':
        return False
    bad = (FAIL,) if fail_on == 'fail' else (FAIL, WARN)
    return any(c['status'] in bad for c in checks)


def failure_message(checks, fail_on):
    bad = [c for c in checks if c['status'] == FAIL or (fail_on == 'warn' and c['status'] == WARN)]
    parts = ['%s%s: %s' % (c['name'], ' (%s)' % c['guest'] if c.get('guest') else '', c['detail'])
             for c in bad[:5]]
    more = ' (and %d more)' % (len(bad) - 5) if len(bad) > 5 else ''
    return 'Preflight found %d blocking problem(s): %s%s' % (len(bad), '; '.join(parts), more)


# ---------------------------------------------------------------------------
# How details name versions and sizes
# ---------------------------------------------------------------------------

def format_version(number):
    """libvirt's packed version (major * 1,000,000 + minor * 1,000 + micro) as a.b.c."""
    if number is None:
        return 'unknown'
    number = int(number)
    return '%d.%d.%d' % (number // 1000000, (number // 1000) % 1000, number % 1000)


def mib(nbytes):
    return round(nbytes / float(MIB), 1)
