# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Project rules that a grep can enforce (docs/security.md)."""

from __future__ import annotations

import os
import re
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tracked_files():
    out = subprocess.run(['git', 'ls-files'], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if os.path.isfile(os.path.join(REPO, f))]


def read(path):
    with open(os.path.join(REPO, path), errors='replace') as handle:
        return handle.read()


def test_host_key_checking_is_never_disabled():
    pattern = re.compile(r'StrictHostKeyChecking[ =]+no|host_key_checking\s*=\s*False', re.I)
    offenders = [f for f in tracked_files() if not f.endswith('.md') and pattern.search(read(f))]
    assert offenders == []


def test_plugins_use_libvirt_python_not_virsh():
    pattern = re.compile(r'''['"]virsh['"]''')
    offenders = [f for f in tracked_files() if f.startswith('plugins/') and pattern.search(read(f))]
    assert offenders == []


def test_no_sanity_ignore_entries():
    ignores = [f for f in tracked_files() if re.match(r'tests/sanity/ignore-.*\.txt$', f)]
    entries = [line for f in ignores for line in read(f).splitlines() if line.strip() and not line.startswith('#')]
    assert entries == []


def test_tls_verification_is_never_disabled():
    # libvirt: ?no_verify=1 in URIs, tls_no_verify_certificate = 1; QEMU: *_x509_verify = 0;
    # verify=False / validate_certs off (Python or YAML); Python's ssl without certificate checks.
    pattern = re.compile(r'''no_verify\w*['"]?\s*[=:]\s*['"]?(1|true|yes)\b'''
                         r'''|(\b|_x509_)verify['"]?\s*[=:]\s*['"]?(0|false|no)\b'''
                         r'''|validate_certs['"]?\s*[=:]\s*['"]?(0|false|no)\b'''
                         r'''|_create_unverified_context|CERT_NONE''', re.I)
    offenders = [f for f in tracked_files() if f.startswith(('plugins/', 'roles/', 'playbooks/'))
                 and not f.endswith('.md') and pattern.search(read(f))]
    assert offenders == []
