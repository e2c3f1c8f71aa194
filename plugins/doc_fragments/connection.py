# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Options of COMMON_ARGUMENT_SPEC in plugins/module_utils/_module_wrapper.py, shared by every module.
    DOCUMENTATION = r'''
options:
  uri:
    description:
      - libvirt connection URI the module uses on the managed host it runs on.
      - The default is the local system hypervisor. A local URI may name its socket, for example
        C(qemu:///system?socket=/run/libvirt/libvirt-sock) (query parameters C(socket) and C(mode) only); a remote
        URI is accepted in the forms of M(kvmops.migration.virt_migrate)'s O(kvmops.migration.virt_migrate#module:dest).
        Transports and parameters that run a program (C(qemu+ext), C(command), ...) are refused before connecting.
      - The connection is opened once per module run and closed when the module ends.
    type: str
    default: qemu:///system
requirements:
  - libvirt-python (for example the C(python3-libvirt) package) on the managed host.
    If the Python interpreter running the module cannot import C(libvirt), the module
    re-runs itself under a system Python that can (C(/usr/bin/python3) first).
'''
