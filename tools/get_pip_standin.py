# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline stand-in for ansible-test's get-pip bootstrap script.

``ansible-test sanity --requirements`` bootstraps pip in every virtual
environment it creates by running ``get-pip-<version>.py``, which it downloads
from a host this machine cannot reach.  It first looks for a cached copy at
``~/.ansible/test/cache/get_pip_<version>.py``; ``make sanity`` installs this
file there.

ansible-test runs it with pip install options such as
``--disable-pip-version-check pip==24.2 --no-setuptools --no-wheel``.  This
stand-in bootstraps pip with the interpreter's bundled ``ensurepip`` and then
installs the requested packages from the package index.  ansible-test sets
``PIP_CONFIG_FILE=/dev/null`` and passes only PATH/HOME/LC_ALL, so the machine's
pip configuration is ignored and the CA bundle has to be given explicitly.
"""

from __future__ import annotations

import os
import subprocess
import sys

CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt'
# get-pip.py options that ``pip install`` does not understand.
DROPPED_OPTIONS = frozenset(('--no-setuptools', '--no-wheel'))


def main(argv):
    """Bootstrap pip with ensurepip, then install what ansible-test asked for."""
    subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'])

    options = [arg for arg in argv if arg not in DROPPED_OPTIONS]
    command = [sys.executable, '-m', 'pip', 'install']

    if os.path.exists(CA_BUNDLE):
        command.extend(['--cert', CA_BUNDLE])

    command.extend(options)
    subprocess.check_call(command)


if __name__ == '__main__':
    main(sys.argv[1:])
