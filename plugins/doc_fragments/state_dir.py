# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # `state_dir` of virt_migrate, virt_migrate_info, virt_blockcopy, virt_evacuate and virt_rolling_round. Its default is
    # DEFAULT_STATE_DIR in plugins/module_utils/_statefile.py (every spec uses that constant;
    # tests/unit/plugins/test_doc_fragments.py checks this text against it).
    DOCUMENTATION = r'''
options:
  state_dir:
    description:
      - Directory on the host the module runs on where the collection keeps its state; give every module the same one.
      - It holds the results of M(kvmops.migration.virt_migrate) runs (C(<state_dir>/migrations/<uuid>.json), read by
        M(kvmops.migration.virt_migrate_info) and by the next run for the same guest), the journal of a cold migration
        (C(<state_dir>/migrations/<uuid>.cold.json)), the guests' locks (C(<state_dir>/guests/<uuid>.lock)), and the maintenance
        mark (C(maintenance.json)), the record of moved guests (C(evacuation.json)), the lock and the progress logs of
        M(kvmops.migration.virt_evacuate), and a host's progress in a rolling maintenance round (C(rolling.json)) of
        M(kvmops.migration.virt_rolling_round).
    type: path
    default: /var/lib/libvirt/kvmops
'''
