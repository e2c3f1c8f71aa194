# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared libvirt connection layer for the kvmops.migration modules.

This is a private module_utils file (leading underscore): its API may change
between releases without notice.

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
Managers raise typed exceptions; they never call ``fail_json`` themselves.
"""

from __future__ import annotations

import contextlib
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.respawn import (
    has_respawned,
    probe_interpreters_for_module,
    respawn_module,
)

LIBVIRT_IMPORT_ERROR = None
try:
    import libvirt
except ImportError:
    libvirt = None
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()


DEFAULT_URI = 'qemu:///system'

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

LIBVIRT_INSTALL_HINT = (
    'Install the libvirt Python bindings for the Python interpreter Ansible uses on the managed host: '
    'the python3-libvirt package (Debian/Ubuntu/Fedora/RHEL), or `pip install libvirt-python` '
    '(needs libvirt development headers, pkg-config and a C compiler).'
)

# libvirt error codes (virErrorNumber); stable ABI values, so translation also works
# when the bindings are absent (unit tests) or older than the constant.
VIR_ERR_NO_SUPPORT = 3
VIR_ERR_NO_CONNECT = 5
VIR_ERR_INVALID_CONN = 6
VIR_ERR_INVALID_ARG = 8
VIR_ERR_XML_ERROR = 27
VIR_ERR_XML_DETAIL = 35
VIR_ERR_SYSTEM_ERROR = 38
VIR_ERR_RPC = 39
VIR_ERR_NO_DOMAIN = 42
VIR_ERR_NO_NETWORK = 43
VIR_ERR_AUTH_FAILED = 45
VIR_ERR_NO_STORAGE_POOL = 49
VIR_ERR_OPERATION_INVALID = 55
VIR_ERR_CONFIG_UNSUPPORTED = 67
VIR_ERR_OPERATION_TIMEOUT = 68
VIR_ERR_MIGRATE_PERSIST_FAILED = 69
VIR_ERR_ARGUMENT_UNSUPPORTED = 74
VIR_ERR_OPERATION_ABORTED = 78
VIR_ERR_AUTH_CANCELLED = 79
VIR_ERR_MIGRATE_UNSAFE = 81
VIR_ERR_OPERATION_UNSUPPORTED = 84
VIR_ERR_XML_INVALID_SCHEMA = 92
VIR_ERR_MIGRATE_FINISH_OK = 93
VIR_ERR_AUTH_UNAVAILABLE = 94
VIR_ERR_LIBSSH = 98
# virErrorDomain values
VIR_FROM_REMOTE = 13
VIR_FROM_RPC = 7

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
    return getattr(libvirt, 'libvirtError', None) if libvirt is not None else None


def is_libvirt_error(exc):
    """True if ``exc`` is a ``libvirt.libvirtError``."""
    error_class = _libvirt_error_class()
    return error_class is not None and isinstance(exc, error_class)


def _constant_name(prefix, value, exclude=()):
    """Reverse-look up a libvirt constant name (e.g. 42 -> VIR_ERR_NO_DOMAIN), if possible."""
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
        remedy = _default_remedy(error_class, code)

    if issubclass(error_class, LibvirtCallError):
        error = error_class(message, remedy=remedy, details=merged, code=code,
                            domain=info['libvirt_error_domain'], libvirt_message=info['libvirt_error_message'])
    else:
        error = error_class(message, remedy=remedy, details=merged)
    error.__cause__ = exc
    return error


def _default_remedy(error_class, code):
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


# ---------------------------------------------------------------------------
# Import guard / respawn
# ---------------------------------------------------------------------------

def ensure_libvirt(module):
    """Make sure the ``libvirt`` bindings are importable, or end the module.

    If they are missing from the module's interpreter and the module has not been
    re-executed yet, look for a system Python that has them and re-run the module
    there (``respawn_module`` does not return). Otherwise ``fail_json`` with
    ``missing_required_lib('libvirt-python')`` and an installation hint.
    """
    if libvirt is not None:
        return libvirt
    if not has_respawned():
        interpreter = probe_interpreters_for_module(list(RESPAWN_INTERPRETERS), 'libvirt')
        if interpreter:
            respawn_module(interpreter)
            # respawn_module() exits; this is only reached if it is mocked out.
            return None
    module.fail_json(msg=missing_required_lib('libvirt-python'), exception=LIBVIRT_IMPORT_ERROR,
                     remedy=LIBVIRT_INSTALL_HINT, changed=False)
    return None


# ---------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------

# Keepalive for remote connections: a peer whose link is cut is declared dead after about
# KEEPALIVE_INTERVAL_S * (KEEPALIVE_COUNT + 1) seconds instead of blocking until TCP gives up.
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3
_EVENT_LOOP_STARTED = []


def _ensure_event_loop():
    """libvirt only sends keepalives and delivers domain events from a running event loop:
    start the default one once, in a daemon thread, before the first connection is opened."""
    if _EVENT_LOOP_STARTED or libvirt is None:
        return
    import threading
    libvirt.virEventRegisterDefaultImpl()

    def run():
        while True:
            libvirt.virEventRunDefaultImpl()
    threading.Thread(target=run, name='libvirt-event-loop', daemon=True).start()
    _EVENT_LOOP_STARTED.append(True)


def _is_remote(uri):
    head, dummy_sep, rest = uri.partition('://')
    return '+' in head or not rest.startswith('/')


class LibvirtClient:
    """Owns the libvirt connections a module uses.

    ``conn`` is the connection to ``uri`` (the local hypervisor by default), opened on
    first use and then reused; ``open_peer(uri)`` opens (once per URI) and caches further
    connections, e.g. to a migration destination. ``close()`` closes all of them. Nothing
    reconnects per call: a lost connection surfaces as a typed error. ``share(uri, conn)``
    lends this client a connection another client owns (libvirt connections are thread-safe):
    it is used like one of its own but never closed by this client.
    """

    def __init__(self, module=None, uri=None, params=None, readonly=False, opener=None):
        if params is None and module is not None:
            params = module.params
        params = params or {}
        self.module = module
        self.uri = uri or params.get('uri') or DEFAULT_URI
        self.readonly = readonly
        self._opener = opener
        self._connections = {}
        self._order = []
        self._shared = set()  # URIs whose connection belongs to another client

    # -- connection management -------------------------------------------------
    def _open(self, uri):
        # Before anything is opened: a libvirt URI can name a program to run (_destination).
        from ansible_collections.kvmops.migration.plugins.module_utils._destination import check_libvirt_uri
        check_libvirt_uri(uri)
        if self._opener is not None:
            opener = self._opener
        else:
            if libvirt is None:
                raise LibvirtConnectionError(
                    'Cannot connect to %s: the libvirt Python bindings are not importable' % uri,
                    remedy=LIBVIRT_INSTALL_HINT, details=dict(uri=uri))
            opener = libvirt.openReadOnly if self.readonly else libvirt.open
            # Before any connection is opened: keepalives (remote peers) and domain events
            # (the migration-iteration event on the local source) need the loop running.
            _ensure_event_loop()
        action = 'Connecting to libvirt at %s' % uri
        with translated(action, error_class=LibvirtConnectionError, details=dict(uri=uri)):
            conn = opener(uri)
            if self._opener is None and _is_remote(uri):
                conn.setKeepAlive(KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT)
        if conn is None:
            raise LibvirtConnectionError('%s failed: libvirt returned no connection' % action,
                                         remedy=_default_remedy(LibvirtConnectionError, None),
                                         details=dict(uri=uri))
        return conn

    def _get(self, uri):
        conn = self._connections.get(uri)
        if conn is None:
            conn = self._open(uri)
            self._connections[uri] = conn
            self._order.append(uri)
        return conn

    @property
    def conn(self):
        """The connection to ``self.uri``, opened on first access."""
        return self._get(self.uri)

    def open_peer(self, uri):
        """Return a managed connection to ``uri`` (opened once, cached, closed by ``close()``)."""
        if not uri:
            raise InvalidInputError('A peer libvirt URI is required')
        return self._get(uri)

    def share(self, uri, conn):
        """Use ``conn``, an open connection owned by another client, for ``uri`` (e.g. one
        destination connection for every migration of an evacuation, instead of an SSH handshake
        each). Ignored when this client already has a connection to ``uri``."""
        if uri not in self._connections:
            self._connections[uri] = conn
            self._order.append(uri)
            self._shared.add(uri)

    def _forget(self, uri):
        """Drop the connection to ``uri`` from this client and return it if this client owns it."""
        conn = self._connections.pop(uri, None)
        self._order.remove(uri)
        if uri in self._shared:
            self._shared.discard(uri)
            return None
        return conn

    def reopen_if_dead(self, uri):
        """The connection to `uri`, opened anew if the cached one died (e.g. its libvirtd was
        restarted). Only for the checks that must look at a host after such a fault; normal
        calls never reconnect. Returns None if the host cannot be reached now."""
        conn = self._connections.get(uri)
        try:
            if conn is not None and conn.isAlive():
                return conn
        except Exception:  # pylint: disable=broad-except
            pass
        owned = self._forget(uri) if conn is not None else None
        if owned is not None:
            try:
                owned.close()
            except Exception:  # pylint: disable=broad-except
                pass
        try:
            return self._get(uri)
        except LibvirtConnectionError:
            return None

    @property
    def open_uris(self):
        """URIs of the connections currently open, in opening order."""
        return list(self._order)

    def close(self):
        """Close every connection this client opened (not the shared ones). Safe to call more than once."""
        errors = []
        while self._order:
            uri = self._order[-1]
            conn = self._forget(uri)
            if conn is None:
                continue
            try:
                conn.close()
            except Exception as exc:  # pylint: disable=broad-except
                errors.append('%s: %s' % (uri, exc))
        return errors

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    # -- lookups -------------------------------------------------------------
    def lookup_domain(self, name=None, uuid=None, conn=None):
        """Return the ``virDomain`` with this name or UUID (exactly one of them).

        Looks on ``conn`` if given (e.g. a peer connection), else on ``self.conn``.
        Raises DomainNotFoundError if it does not exist.
        """
        if (name is None) == (uuid is None):
            raise InvalidInputError('Exactly one of name or uuid is needed to look up a domain',
                                    details=dict(name=name, uuid=uuid))
        if conn is None:
            conn = self.conn
            uri = self.uri
        else:
            uri = self._uri_of(conn)
        key, value = ('name', name) if name is not None else ('uuid', uuid)
        action = 'Looking up domain with %s %r on %s' % (key, value, uri)
        try:
            with translated(action, details={'uri': uri, key: value}):
                if name is not None:
                    return conn.lookupByName(name)
                return conn.lookupByUUIDString(uuid)
        except DomainNotFoundError as exc:
            raise DomainNotFoundError(
                'No domain with %s %r on %s' % (key, value, uri),
                remedy=('Check the %s with `virsh -c %s list --all --%s`; names are case-sensitive, '
                        'and a transient domain disappears once it stops.' % (key, uri, key)),
                details=exc.details,
            ) from exc.__cause__

    def _uri_of(self, conn):
        for uri, known in self._connections.items():
            if known is conn:
                return uri
        try:
            return conn.getURI()
        except Exception:  # pylint: disable=broad-except
            return '<unknown uri>'


# ---------------------------------------------------------------------------
# Module wrapper
# ---------------------------------------------------------------------------

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
