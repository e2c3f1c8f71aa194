# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The libvirt Python bindings, imported in this one place (private module_utils; API may change).

``libvirt`` is the module, or None when the interpreter cannot import it: the typed errors
(``_errors``), the connections (``_client``) and the module wrapper (``_module_wrapper``) read
it as ``_bindings.libvirt`` when they run, so that the wrapper can re-run the module under a
Python that has it, and the unit tests can replace it in one place.
"""

from __future__ import annotations

import traceback

LIBVIRT_IMPORT_ERROR = None
try:
    # Not used here: the other files read it as _bindings.libvirt.
    import libvirt  # noqa: F401 pylint: disable=unused-import
except ImportError:
    libvirt = None
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()

LIBVIRT_INSTALL_HINT = (
    'Install the libvirt Python bindings for the Python interpreter Ansible uses on the managed host: '
    'the python3-libvirt package (Debian/Ubuntu/Fedora/RHEL), or `pip install libvirt-python` '
    '(needs libvirt development headers, pkg-config and a C compiler).'
)
