# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The destination hypervisor of one migration: `dest` and `transport` of virt_migrate and
    # virt_migrate_preflight, which resolve them to the same libvirt URI.
    DOCUMENTATION = r'''
options:
  dest:
    description:
      - The destination host, as a host name (the connection URI is then C(qemu+<transport>://<dest>/system))
        or a full libvirt URI such as C(qemu+tls://host-b/system).
    type: str
    required: true
  transport:
    description: Transport of the libvirt connection to O(dest) when O(dest) is a host name.
    type: str
    choices: [ssh, tls, tcp]
    default: ssh
'''
