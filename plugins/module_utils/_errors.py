# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Typed errors with a remedy, and libvirt's errors translated into them (private module_utils;
API may change).

Managers raise ``KvmopsError`` subclasses anywhere; only the module wrapper (``_module_wrapper``)
turns one into ``fail_json``. A ``libvirt.libvirtError`` becomes a typed error through
``translated()``::

    with translated("Suspending domain 'vm1'"):
        dom.suspend()
"""

from __future__ import annotations

import contextlib

from ansible_collections.kvmops.migration.plugins.module_utils import _bindings
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_ERR_ARGUMENT_UNSUPPORTED,
    VIR_ERR_AUTH_CANCELLED,
    VIR_ERR_AUTH_FAILED,
    VIR_ERR_AUTH_UNAVAILABLE,
    VIR_ERR_CONFIG_UNSUPPORTED,
    VIR_ERR_INVALID_ARG,
    VIR_ERR_INVALID_CONN,
    VIR_ERR_LIBSSH,
    VIR_ERR_MIGRATE_FINISH_OK,
    VIR_ERR_MIGRATE_PERSIST_FAILED,
    VIR_ERR_MIGRATE_UNSAFE,
    VIR_ERR_NO_CONNECT,
    VIR_ERR_NO_DOMAIN,
    VIR_ERR_OPERATION_ABORTED,
    VIR_ERR_OPERATION_TIMEOUT,
    VIR_ERR_RPC,
    VIR_ERR_SYSTEM_ERROR,
    VIR_ERR_XML_DETAIL,
    VIR_ERR_XML_ERROR,
    VIR_ERR_XML_INVALID_SCHEMA,
    VIR_FROM_REMOTE,
    VIR_FROM_RPC,
)

CONNECTION_ERROR_CODES = frozenset((
    VIR_ERR_NO_CONNECT, VIR_ERR_INVALID_CONN, VIR_ERR_RPC, VIR_ERR_AUTH_FAILED,
    VIR_ERR_AUTH_CANCELLED, VIR_ERR_AUTH_UNAVAILABLE, VIR_ERR_LIBSSH,
))
INPUT_ERROR_CODES = frozenset((
    VIR_ERR_INVALID_ARG, VIR_ERR_XML_ERROR, VIR_ERR_XML_DETAIL, VIR_ERR_XML_INVALID_SCHEMA,
    VIR_ERR_CONFIG_UNSUPPORTED, VIR_ERR_ARGUMENT_UNSUPPORTED,
))
MIGRATION_ERROR_CODES = frozenset((
    VIR_ERR_MIGRATE_PERSIST_FAILED, VIR_ERR_MIGRATE_UNSAFE, VIR_ERR_MIGRATE_FINISH_OK,
    VIR_ERR_OPERATION_ABORTED,
))

# fail_json keys a KvmopsError's details must not override.
RESERVED_RESULT_KEYS = frozenset((
    'msg', 'remedy', 'changed', 'failed', 'exception', 'invocation', 'warnings',
    'deprecations', 'skipped', 'rc', 'ansible_facts',
))


# ---------------------------------------------------------------------------
# Typed errors
# ---------------------------------------------------------------------------

class KvmopsError(Exception):
    """Base class of every error a kvmops.migration manager raises.

    ``msg`` says what failed, ``remedy`` (optional) what the user can do about it,
    ``details`` (optional, JSON-serialisable) is returned alongside in the failed result.
    """

    def __init__(self, msg, remedy=None, details=None):
        super().__init__(msg)
        self.msg = msg
        self.remedy = remedy
        self.details = dict(details or {})

    def __str__(self):
        return self.msg

    def as_fail_kwargs(self):
        """Return keyword arguments for ``module.fail_json()``.

        Details are merged at the top level; keys that ``fail_json`` reserves
        (``msg``, ``changed``, ...) are prefixed with ``detail_`` instead of overriding.
        """
        kwargs = {}
        for key, value in self.details.items():
            kwargs['detail_%s' % key if key in RESERVED_RESULT_KEYS else key] = value
        kwargs['msg'] = self.msg
        if self.remedy:
            kwargs['remedy'] = self.remedy
        return kwargs


class LibvirtConnectionError(KvmopsError):
    """A libvirt connection could not be opened or was lost."""


class DomainNotFoundError(KvmopsError):
    """The requested domain does not exist on the hypervisor."""


class InvalidInputError(KvmopsError):
    """The module's parameters (or XML built from them) are invalid."""


class MigrationError(KvmopsError):
    """A migration (or its setup/teardown) failed."""


class OperationTimeoutError(KvmopsError):
    """An operation or a wait did not complete in time."""


class LibvirtCallError(KvmopsError):
    """A libvirt API call failed for a reason without a more specific class.

    ``code``/``domain`` are libvirt's virErrorNumber/virErrorDomain,
    ``libvirt_message`` is libvirt's own message.
    """

    def __init__(self, msg, remedy=None, details=None, code=None, domain=None, libvirt_message=None):
        super().__init__(msg, remedy=remedy, details=details)
        self.code = code
        self.domain = domain
        self.libvirt_message = libvirt_message


def _libvirt_error_class():
    """Return ``libvirt.libvirtError``, or None when the bindings are not importable."""
    libvirt = _bindings.libvirt
    return getattr(libvirt, 'libvirtError', None) if libvirt is not None else None


def is_libvirt_error(exc):
    """True if ``exc`` is a ``libvirt.libvirtError``."""
    error_class = _libvirt_error_class()
    return error_class is not None and isinstance(exc, error_class)


def _constant_name(prefix, value, exclude=()):
    """Reverse-look up a libvirt constant name (e.g. 42 -> VIR_ERR_NO_DOMAIN), if possible."""
    libvirt = _bindings.libvirt
    if libvirt is None or value is None:
        return None
    for name in dir(libvirt):
        if name.startswith(prefix) and name not in exclude and getattr(libvirt, name, None) == value:
            return name
    return None


def _safe_call(exc, method):
    func = getattr(exc, method, None)
    if func is None:
        return None
    try:
        return func()
    except Exception:  # pylint: disable=broad-except
        return None


def libvirt_error_details(exc):
    """Return a JSON-serialisable dict describing a libvirt error."""
    code = _safe_call(exc, 'get_error_code')
    domain = _safe_call(exc, 'get_error_domain')
    message = _safe_call(exc, 'get_error_message') or str(exc)
    return dict(
        libvirt_error_code=code,
        # VIR_ERR_NONE/WARNING/ERROR are error *levels* sharing values with codes 0-2.
        libvirt_error_name=_constant_name('VIR_ERR_', code, exclude=('VIR_ERR_NONE', 'VIR_ERR_WARNING', 'VIR_ERR_ERROR')),
        libvirt_error_domain=domain,
        libvirt_error_domain_name=_constant_name('VIR_FROM_', domain),
        libvirt_error_message=message,
    )


def translate_libvirt_error(exc, action, error_class=None, remedy=None, details=None):
    """Turn a ``libvirt.libvirtError`` raised while doing ``action`` into a typed KvmopsError.

    ``action`` is a human phrase such as ``"Connecting to qemu+ssh://b/system"``; the
    message reads ``"<action> failed: <libvirt's message>"``. The class is chosen from the
    libvirt error code unless ``error_class`` forces one. libvirt's code, domain and message
    are always in ``details``. ``remedy``/``details`` given here take precedence.
    """
    info = libvirt_error_details(exc)
    code = info['libvirt_error_code']
    message = '%s failed: %s' % (action, info['libvirt_error_message'])
    merged = dict(info)
    merged.update(details or {})

    if error_class is None:
        if code == VIR_ERR_NO_DOMAIN:
            error_class = DomainNotFoundError
        elif code in CONNECTION_ERROR_CODES or (
                code == VIR_ERR_SYSTEM_ERROR and info['libvirt_error_domain'] in (VIR_FROM_RPC, VIR_FROM_REMOTE)):
            error_class = LibvirtConnectionError
        elif code == VIR_ERR_OPERATION_TIMEOUT:
            error_class = OperationTimeoutError
        elif code in MIGRATION_ERROR_CODES:
            error_class = MigrationError
        elif code in INPUT_ERROR_CODES:
            error_class = InvalidInputError
        else:
            error_class = LibvirtCallError

    if remedy is None:
        remedy = default_remedy(error_class, code)

    if issubclass(error_class, LibvirtCallError):
        error = error_class(message, remedy=remedy, details=merged, code=code,
                            domain=info['libvirt_error_domain'], libvirt_message=info['libvirt_error_message'])
    else:
        error = error_class(message, remedy=remedy, details=merged)
    error.__cause__ = exc
    return error


def default_remedy(error_class, code):
    if error_class is LibvirtConnectionError:
        if code in (VIR_ERR_AUTH_FAILED, VIR_ERR_AUTH_CANCELLED, VIR_ERR_AUTH_UNAVAILABLE):
            return ('Check the credentials for this URI: SSH keys/known_hosts for qemu+ssh, '
                    'SASL/TLS setup for qemu+tcp/qemu+tls, polkit rules for local non-root access.')
        return ('Check that the libvirt daemon (libvirtd or virtqemud) is running on the target host, '
                'that the URI is correct and that the host is reachable (firewall, DNS, SSH).')
    if error_class is DomainNotFoundError:
        return 'Check the domain name or UUID with `virsh -c <uri> list --all`; names are case-sensitive.'
    if error_class is OperationTimeoutError:
        return 'The hypervisor did not answer in time; check its load and retry, or raise the timeout.'
    if error_class is MigrationError and code == VIR_ERR_MIGRATE_UNSAFE:
        return ('libvirt considers this migration unsafe (disks not on storage it recognises as shared, '
                'or a disk cache mode other than none); use shared storage, copy the storage, '
                'or explicitly accept the risk.')
    return None


@contextlib.contextmanager
def translated(action, error_class=None, remedy=None, details=None):
    """Context manager translating a libvirtError raised inside it::

        with translated("Suspending domain 'vm1'"):
            dom.suspend()
    """
    try:
        yield
    except Exception as exc:  # pylint: disable=broad-except
        if not is_libvirt_error(exc):
            raise
        raise translate_libvirt_error(exc, action, error_class=error_class, remedy=remedy, details=details) from exc
