# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The module wrapper: what every kvmops.migration module's ``main()`` hands its work to
(private module_utils; API may change).

A module's ``main()`` stays tiny::

    def run_module(kvm):
        client = kvm.client                      # opened lazily, once
        dom = client.lookup_domain(name=kvm.params['name'])
        ...
        return dict(changed=False, ...)

    def main():
        KvmopsModule(argument_spec=dict(name=dict(type='str', required=True)),
                     supports_check_mode=True).run(run_module)

``KvmopsModule`` builds the ``AnsibleModule`` with ``COMMON_ARGUMENT_SPEC``
merged in, makes sure ``libvirt`` can be imported (re-executing the module
under a system Python that has it if needed), and ``run()`` turns
``KvmopsError`` into ``fail_json`` and always closes the libvirt connections.
Managers raise typed exceptions (``_errors``); they never call ``fail_json`` themselves.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.respawn import (
    has_respawned,
    probe_interpreters_for_module,
    respawn_module,
)

from ansible_collections.kvmops.migration.plugins.module_utils import _bindings
from ansible_collections.kvmops.migration.plugins.module_utils._client import DEFAULT_URI, LibvirtClient
from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    KvmopsError,
    is_libvirt_error,
    translate_libvirt_error,
)

COMMON_ARGUMENT_SPEC = dict(
    uri=dict(type='str', default=DEFAULT_URI),
)

# System interpreters that distributions ship python3-libvirt / libvirt-python for.
# Probed in order when the module's own interpreter cannot import libvirt.
RESPAWN_INTERPRETERS = (
    '/usr/bin/python3',
    '/usr/libexec/platform-python',
    '/usr/bin/python3.13',
    '/usr/bin/python3.12',
    '/usr/bin/python3.11',
    '/usr/bin/python3.10',
    '/usr/bin/python3.9',
)


def ensure_libvirt(module):
    """Make sure the ``libvirt`` bindings are importable, or end the module.

    If they are missing from the module's interpreter and the module has not been
    re-executed yet, look for a system Python that has them and re-run the module
    there (``respawn_module`` does not return). Otherwise ``fail_json`` with
    ``missing_required_lib('libvirt-python')`` and an installation hint.
    """
    if _bindings.libvirt is not None:
        return _bindings.libvirt
    if not has_respawned():
        interpreter = probe_interpreters_for_module(list(RESPAWN_INTERPRETERS), 'libvirt')
        if interpreter:
            respawn_module(interpreter)
            # respawn_module() exits; this is only reached if it is mocked out.
            return None
    module.fail_json(msg=missing_required_lib('libvirt-python'), exception=_bindings.LIBVIRT_IMPORT_ERROR,
                     remedy=_bindings.LIBVIRT_INSTALL_HINT, changed=False)
    return None


def merge_argument_spec(argument_spec=None):
    """Return ``COMMON_ARGUMENT_SPEC`` merged with a module's own spec.

    Redefining a common option is a programming error and raises ValueError.
    """
    spec = dict((key, dict(value)) for key, value in COMMON_ARGUMENT_SPEC.items())
    for key, value in (argument_spec or {}).items():
        if key in spec:
            raise ValueError('Option %r is defined by COMMON_ARGUMENT_SPEC (kvmops.migration.connection)' % key)
        spec[key] = value
    return spec


def spec_defaults(argument_spec, **given):
    """The parameters a module with ``argument_spec`` gets when none is set, then ``given``:
    how one module's manager is driven from another module's code (an evacuation runs
    migrations and preflights) with the same defaults a playbook task would have."""
    params = dict((name, option.get('default')) for name, option in argument_spec.items())
    params.update(given)
    return params


class KvmopsModule:
    """AnsibleModule + LibvirtClient + error handling for one module run; the manager context
    (``_context``) of the managers it runs."""

    # A module run may hand its work to a detached process (_detach): it forks before any libvirt
    # connection or thread exists.
    can_detach = True

    def __init__(self, argument_spec=None, require_libvirt=True, module_class=AnsibleModule, **kwargs):
        self.module = module_class(argument_spec=merge_argument_spec(argument_spec), **kwargs)
        if require_libvirt:
            ensure_libvirt(self.module)
        self._client = None

    @property
    def params(self):
        return self.module.params

    @property
    def check_mode(self):
        return self.module.check_mode

    @property
    def diff_mode(self):
        """Whether the task runs with --diff (a result's ``diff`` is returned only then)."""
        return self.module._diff

    @property
    def client(self):
        """The module's LibvirtClient (created on first use; connections open lazily)."""
        if self._client is None:
            self._client = LibvirtClient(self.module)
        return self._client

    def warn(self, msg):
        self.module.warn(msg)

    def close(self):
        if self._client is not None:
            for problem in self._client.close():
                self.module.warn('Closing libvirt connection failed: %s' % problem)

    def fail(self, error):
        """``fail_json`` from a KvmopsError (always ``changed=False``)."""
        kwargs = error.as_fail_kwargs()
        kwargs['changed'] = False
        self.module.fail_json(**kwargs)

    def run(self, manager):
        """Run ``manager(self)`` and exit the module with its result dict.

        KvmopsError (and any libvirtError that escaped untranslated) becomes
        ``fail_json(msg=..., remedy=..., **details, changed=False)``; the client is
        closed before the module exits, whatever happened. Other exceptions
        propagate (Ansible reports them with a traceback).
        """
        error = None
        result = None
        try:
            result = manager(self)
        except KvmopsError as exc:
            error = exc
        except Exception as exc:  # pylint: disable=broad-except
            if not is_libvirt_error(exc):
                raise
            error = translate_libvirt_error(exc, 'Running %s' % getattr(self.module, '_name', 'the module'))
        finally:
            self.close()
        if error is not None:
            self.fail(error)
            return None
        result = dict(result or {})
        result.setdefault('changed', False)
        self.module.exit_json(**result)
        return None
