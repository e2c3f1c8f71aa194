# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The libvirt connections a module uses (private module_utils; API may change).

``LibvirtClient`` opens a connection on first use and keeps it (keepalive on remote ones),
looks domains up, and closes everything at the end; libvirt's errors reach the caller as
typed errors (``_errors``). The module wrapper (``_module_wrapper.KvmopsModule``) gives each
module run one client.
"""

from __future__ import annotations

from ansible_collections.kvmops.migration.plugins.module_utils import _bindings
from ansible_collections.kvmops.migration.plugins.module_utils._destination import check_libvirt_uri
from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    DomainNotFoundError,
    InvalidInputError,
    LibvirtConnectionError,
    default_remedy,
    translated,
)

DEFAULT_URI = 'qemu:///system'

# Keepalive for remote connections: a peer whose link is cut is declared dead after about
# KEEPALIVE_INTERVAL_S * (KEEPALIVE_COUNT + 1) seconds instead of blocking until TCP gives up.
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3
_EVENT_LOOP_STARTED = []


def _ensure_event_loop():
    """libvirt only sends keepalives and delivers domain events from a running event loop:
    start the default one once, in a daemon thread, before the first connection is opened."""
    libvirt = _bindings.libvirt
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
        check_libvirt_uri(uri)
        if self._opener is not None:
            opener = self._opener
        else:
            libvirt = _bindings.libvirt
            if libvirt is None:
                raise LibvirtConnectionError(
                    'Cannot connect to %s: the libvirt Python bindings are not importable' % uri,
                    remedy=_bindings.LIBVIRT_INSTALL_HINT, details=dict(uri=uri))
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
                                         remedy=default_remedy(LibvirtConnectionError, None),
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
