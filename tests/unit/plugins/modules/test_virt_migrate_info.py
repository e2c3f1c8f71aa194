# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""virt_migrate_info's glue: options reach the job reader, and a domain missing without a detached
migration is a clear failure (the logic itself: tests of _jobinfo)."""

from __future__ import annotations

from ansible_collections.kvmops.migration.plugins.modules import virt_migrate_info


class NoDomains:
    def listAllDomains(self, flags=0):  # noqa: N802
        return []

    def lookupByName(self, name):  # noqa: N802
        import libvirt

        class NotFound(libvirt.libvirtError):
            def __init__(self):
                super().__init__('Domain not found')
                self.err = (42, 10, 'Domain not found', 2, None, None, None, 0, 0)
        raise NotFound()

    def close(self):
        return 0


def test_no_job_no_detached_migration(run_main, tmp_path):
    result, failed = run_main(virt_migrate_info, {'state_dir': str(tmp_path)}, check_mode=True, conn=NoDomains())
    assert not failed and result['changed'] is False
    assert result['jobs'] == [] and result['detached'] == []


def test_an_unknown_domain_fails_with_a_remedy(run_main, tmp_path):
    result, failed = run_main(virt_migrate_info, {'name': 'nope', 'state_dir': str(tmp_path)}, conn=NoDomains())
    assert failed and "No domain with name 'nope'" in result['msg'] and 'virsh' in result['remedy']
