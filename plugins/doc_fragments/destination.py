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
      - The destination host, as a host name, an IPv4 or IPv6 address, or C(user@host[:port]) (the connection URI
        is then C(qemu+<transport>://[user@]host[:port]/system)), or a libvirt URI C(qemu+ssh://[user@]host[:port]/system),
        C(qemu+tls://...) or C(qemu+tcp://...) such as C(qemu+tls://host-b/system), whose scheme decides the transport.
      - A URI may carry only the query parameters C(mode), C(proxy), C(no_tty) and C(keyfile) (with C(qemu+ssh)).
        Anything else (other transports such as C(qemu+ext), parameters such as C(command), C(netcat), C(socket)
        or C(no_verify), a host name starting with C(-)) is refused before any connection, because it could run
        a program or turn verification off; see the collection's docs/security.md.
    type: str
    required: true
  transport:
    description: Transport of the libvirt connection to O(dest) when O(dest) is a host name.
    type: str
    choices: [ssh, tls, tcp]
    default: ssh
'''
