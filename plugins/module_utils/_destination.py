# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one parser of what a user names as another hypervisor, and of the addresses that reach libvirt.

Private module_utils file (leading underscore): its API may change without notice.

Everything a user gives that libvirt or ssh will act on passes through here first, before any
connection: ``parse_destination`` (virt_migrate's and the preflight's ``dest``, the evacuation's
hosts), ``check_libvirt_uri`` (every URI a ``LibvirtClient`` opens, the ``uri`` option included),
``check_migrate_uri`` and ``check_listen_address`` (virt_migrate's QEMU data stream options).

Why so strict: a libvirt URI is a program invocation. ``qemu+ext://h/system?command=/tmp/x`` runs
``/tmp/x`` as root on the source (tried on the lab), ``?netcat=`` and ``?socket=`` end up in the
shell command libvirt runs on the destination over ssh, ``no_verify`` set to 1 accepts unknown ssh host
keys or any TLS certificate, and a host name starting with ``-`` is an ssh option. So only the
forms below are accepted; the URI handed to libvirt is rebuilt from the checked parts, never
passed through as typed.

Accepted destinations:

* a host name made of RFC 1123 labels (``host-b``, ``host-b.example.org``), an IPv4 or IPv6
  address, optionally ``user@`` before and ``:port`` after it (``[addr]:port`` for IPv6);
* ``qemu+ssh://[user@]host[:port]/system``, ``qemu+tls://...``, ``qemu+tcp://...``, and
  ``qemu://host/system`` (libvirt's TLS default), with no query except ``URI_PARAMETERS``.

Each allowed query parameter, and why it is safe:

* ``mode`` (auto, direct, legacy) only chooses which daemon on the destination answers
  (virtqemud or libvirtd); both are the system daemons the URI already names.
* ``proxy`` (auto, native, netcat) only chooses between libvirt's two built-in ways of reaching
  that daemon on the destination; neither value names a program.
* ``no_tty`` (0, 1) makes ssh fail instead of asking for a password: stricter, never looser.
* ``keyfile`` (an absolute path) picks the private key this side authenticates with; libvirt
  passes it to ssh as the argument of ``-i``, so it cannot become an option, and it changes who
  we are, not whom we trust.

Refused (``REFUSED_PARAMETERS`` says why in the message): ``command``, ``netcat``, ``socket``,
``name``, ``no_verify``, ``pkipath``, ``tls_priority``, ``known_hosts``, ``known_hosts_verify``,
``sshauth`` and anything else. Transports ``ext``, ``unix`` (only for the local connection),
``libssh``, ``libssh2`` and other drivers are refused as destinations.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError

TRANSPORTS = ('ssh', 'tls', 'tcp')
# URI scheme -> transport. A qemu URI with a host and no transport is TLS to libvirt.
SCHEMES = {'qemu+ssh': 'ssh', 'qemu+tls': 'tls', 'qemu+tcp': 'tcp', 'qemu': 'tls'}
SYSTEM_PATH = '/system'

ACCEPTED_FORMS = (
    'a host name (host-b, host-b.example.org), an IPv4 or IPv6 address, user@host[:port] '
    '([IPv6]:port with a port), or a URI qemu+ssh://[user@]host[:port]/system, qemu+tls://host[:port]/system '
    'or qemu+tcp://host[:port]/system; query parameters only mode, proxy, no_tty and keyfile, with qemu+ssh')

HOST_FORMS = 'a host name (host-b, host-b.example.org) or an IPv4 or IPv6 address'

_LABEL = re.compile(r'^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$')
_USER = re.compile(r'^[A-Za-z_][A-Za-z0-9_.-]{0,31}$')
_PORT = re.compile(r'^[0-9]{1,5}$')
_SAFE_PATH = re.compile(r'^/[A-Za-z0-9_./@+-]*$')

# Why a parameter that libvirt knows is refused (named in the message).
REFUSED_PARAMETERS = {
    'command': 'it names a program libvirt runs on this host',
    'netcat': 'it names a program libvirt runs on the destination',
    'socket': 'it is put into the command libvirt runs on the destination',
    'name': 'it makes the destination daemon open another URI than the one checked here',
    'no_verify': 'it turns host key or certificate verification off',
    'pkipath': 'it replaces the CA certificates the destination is verified against',
    'tls_priority': 'it can enable weak or no encryption',
    'known_hosts': 'it replaces the host keys the destination is verified against (libssh transports only)',
    'known_hosts_verify': 'it can turn host key verification off (libssh transports only)',
    'sshauth': 'it is for the libssh transports, which are not accepted',
}


def _one_of(*values):
    def check(value):
        return value in values
    check.accepted = ', '.join(values)
    return check


def _absolute_path(value):
    return bool(_SAFE_PATH.match(value)) and '/../' not in value + '/'


_absolute_path.accepted = 'an absolute path of letters, digits and _ . / @ + -'

# transport -> {parameter: validator}. Only qemu+ssh takes parameters; why each is safe: above.
URI_PARAMETERS = {
    'ssh': {
        'mode': _one_of('auto', 'direct', 'legacy'),
        'proxy': _one_of('auto', 'native', 'netcat'),
        'no_tty': _one_of('0', '1'),
        'keyfile': _absolute_path,
    },
    'tls': {},
    'tcp': {},
}
# The local connection (the modules' uri option) may name its UNIX socket: a local path, no program.
LOCAL_URI_PARAMETERS = {'mode': URI_PARAMETERS['ssh']['mode'], 'socket': _absolute_path}


class Destination:
    """A checked destination. ``uri`` is what libvirt opens (rebuilt from the parts); ``port`` is
    the one given (ssh's for transport ssh, libvirt's for tls/tcp); ``params`` the query."""

    def __init__(self, host, transport, user=None, port=None, params=(), scheme=None):
        self.host = host
        self.transport = transport
        self.user = user
        self.port = port
        self.params = tuple(params)
        self.scheme = scheme or 'qemu+%s' % transport

    @property
    def uri(self):
        host = '[%s]' % self.host if ':' in self.host else self.host
        authority = '%s%s%s' % ('%s@' % self.user if self.user else '', host, ':%d' % self.port if self.port else '')
        # '+' and spaces stay escaped: libvirt reads a '+' in a query as a space.
        query = '?' + urlencode(self.params, safe='/', quote_via=quote) if self.params else ''
        return '%s://%s%s%s' % (self.scheme, authority, SYSTEM_PATH, query)

    @property
    def ssh_port(self):
        """The port ssh connects to, when the destination names one for ssh."""
        return self.port if self.transport == 'ssh' else None

    @property
    def keyfile(self):
        return dict(self.params).get('keyfile')

    @property
    def ssh_target(self):
        """How messages name the ssh login: ``user@host`` or ``host``."""
        return '%s@%s' % (self.user, self.host) if self.user else self.host

    def ssh_argv(self, options=()):
        """ssh's arguments up to and including the destination: login, port and key of this
        destination, then ``options``, then ``--`` so that nothing after can be read as an option."""
        argv = []
        if self.ssh_port:
            argv += ['-p', str(self.ssh_port)]
        if self.user:
            argv += ['-l', self.user]
        if self.keyfile:
            argv += ['-i', self.keyfile]
        return argv + list(options) + ['--', self.host]

    def __repr__(self):
        return 'Destination(%r)' % self.uri


def _refuse(what, value, problem, accepted=ACCEPTED_FORMS):
    raise InvalidInputError('%s=%r is refused: %s' % (what, value, problem),
                            remedy='Give %s. Nothing was contacted.' % accepted)


def check_transport(transport, what='transport'):
    if transport not in TRANSPORTS:
        _refuse(what, transport, 'not a transport', 'one of %s' % ', '.join(TRANSPORTS))
    return transport


def is_address(host):
    """Whether ``host`` is an IPv4 or IPv6 address (without zone, without brackets)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return '%' not in host


def check_host(host, what='dest', accepted=ACCEPTED_FORMS):
    """``host`` if it is an IP address or a host name of RFC 1123 labels; else InvalidInputError.
    A leading ``-`` (an ssh option), spaces, shell characters or a zone index never pass."""
    if not isinstance(host, str) or not host:
        _refuse(what, host, 'no host name', accepted)
    if is_address(host):
        return host
    labels = host.split('.')
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        _refuse(what, host, 'not a host name (letters, digits and inner hyphens, dot-separated) nor an IP address',
                accepted)
    if labels[-1].isdigit():
        _refuse(what, host, 'looks like an IPv4 address but is not one', accepted)
    return host


def _port(text, what, value, accepted=ACCEPTED_FORMS):
    if not _PORT.match(text or '') or not 1 <= int(text) <= 65535:
        _refuse(what, value, 'the port %r is not a number from 1 to 65535' % text, accepted)
    return int(text)


def _split_host_port(text, what, value, accepted=ACCEPTED_FORMS):
    """(host, port or None) of ``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address."""
    if text.startswith('['):
        host, sep, rest = text[1:].partition(']')
        if not sep or not is_address(host) or ':' not in host:
            _refuse(what, value, 'brackets hold an IPv6 address', accepted)
        if rest and not rest.startswith(':'):
            _refuse(what, value, 'unexpected %r after the address' % rest, accepted)
        return host, _port(rest[1:], what, value, accepted) if rest else None
    if text.count(':') > 1:
        if not is_address(text):
            _refuse(what, value, 'not an IPv6 address (write [address]:port to give a port)', accepted)
        return text, None
    host, sep, port = text.partition(':')
    return check_host(host, what, accepted), _port(port, what, value, accepted) if sep else None


def _user(text, what, value):
    if not _USER.match(text):
        _refuse(what, value, 'the user %r is not a user name' % text)
    return text


def parse_destination(dest, transport='ssh', what='dest'):
    """``dest`` as a Destination; InvalidInputError listing the accepted forms otherwise.
    ``transport`` applies to a host name; a URI names its own."""
    if not isinstance(dest, str) or not dest.strip():
        _refuse(what, dest, 'empty')
    dest = dest.strip()
    if '://' in dest:
        return _parse_uri(dest, what)
    check_transport(transport)
    if any(c.isspace() or ord(c) < 32 for c in dest) or '/' in dest or '?' in dest:
        _refuse(what, dest, 'neither a host name nor a URI')
    user = None
    if '@' in dest:
        user, dummy_sep, dest_host = dest.partition('@')
        user = _user(user, what, dest)
    else:
        dest_host = dest
    host, port = _split_host_port(dest_host, what, dest)
    return Destination(host, transport, user=user, port=port)


def _parse_uri(uri, what):
    if any(c.isspace() or ord(c) < 32 for c in uri):
        _refuse(what, uri, 'a URI has no spaces or control characters')
    scheme = uri.split('://', 1)[0]
    if scheme not in SCHEMES:
        _refuse(what, uri, 'scheme %s:// is not accepted (only qemu+ssh, qemu+tls, qemu+tcp: ext, unix, libssh, '
                'libssh2 and other drivers can run programs, reach only this host or skip checks)' % scheme)
    transport = SCHEMES[scheme]
    try:
        parts = urlsplit(uri)
    except ValueError as exc:  # e.g. an unclosed [IPv6 bracket
        _refuse(what, uri, str(exc))
    authority = parts.netloc
    if not authority:
        _refuse(what, uri, 'the URI names no host: a destination is another hypervisor')
    if parts.fragment or '#' in uri:
        _refuse(what, uri, 'a URI fragment (#...) is not accepted')
    if parts.path != SYSTEM_PATH:
        _refuse(what, uri, 'the path must be /system (the system daemon), not %r' % (parts.path or ''))
    user = None
    if '@' in authority:
        user, dummy_sep, authority = authority.rpartition('@')
        if ':' in user:
            _refuse(what, uri, 'a password in the URI is not accepted')
        user = _user(user, what, uri)
    host, port = _split_host_port(authority, what, uri)
    params = _query(parts.query, transport, what, uri)
    return Destination(host, transport, user=user, port=port, params=params, scheme=scheme)


def _query(query, transport, what, uri, allowed=None):
    allowed = URI_PARAMETERS[transport] if allowed is None else allowed
    try:
        params = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        _refuse(what, uri, 'the query %r is not name=value pairs' % query)
    seen = set()
    for name, value in params:
        if name in seen:
            _refuse(what, uri, 'parameter %s is given twice' % name)
        seen.add(name)
        if name not in allowed:
            why = REFUSED_PARAMETERS.get(name, 'it is not one of those known to be safe')
            _refuse(what, uri, 'URI parameter %s is not accepted%s: %s' % (
                name, '' if transport == 'ssh' else ' with %s' % transport, why))
        if not allowed[name](value):
            _refuse(what, uri, 'URI parameter %s=%r: expected %s' % (name, value, allowed[name].accepted))
    return params


def host_uri(host, transport, what='hosts'):
    """The libvirt URI of a hypervisor given by host name or address only (the evacuation's hosts)."""
    return Destination(check_host(host, what, HOST_FORMS), check_transport(transport)).uri


def check_libvirt_uri(uri, what='uri'):
    """``uri`` if a LibvirtClient may open it: a local URI (``driver:///path``, ``driver+unix:///path``,
    query only ``socket`` and ``mode``) or a destination URI that ``parse_destination`` accepts."""
    if not isinstance(uri, str) or '://' not in uri:
        _refuse(what, uri, 'not a libvirt URI', 'qemu:///system, or a URI such as qemu+ssh://host-b/system')
    scheme, dummy_sep, rest = uri.partition('://')
    if rest.startswith('/'):
        driver, dummy_plus, transport = scheme.partition('+')
        if not re.match(r'^[a-z][a-z0-9-]*$', driver) or transport not in ('', 'unix'):
            _refuse(what, uri, 'a local URI is driver:///path or driver+unix:///path',
                    'qemu:///system or qemu+unix:///system?socket=/path/to/socket')
        if any(c.isspace() or ord(c) < 32 for c in uri) or '#' in uri:
            _refuse(what, uri, 'a URI has no spaces, control characters or fragment')
        _query(urlsplit(uri).query, 'unix', what, uri, allowed=LOCAL_URI_PARAMETERS)
        return uri
    parse_destination(uri, what=what)
    return uri


def check_migrate_uri(value, what='migrate_uri'):
    """``value`` if it is a QEMU data stream URI libvirt accepts for a network: ``tcp://host[:port]``
    or ``rdma://host[:port]`` (``unix://`` needs a qemu+unix destination, which is refused)."""
    accepted = 'tcp://HOST[:PORT] or rdma://HOST[:PORT], HOST a host name or an address ([IPv6])'
    if not isinstance(value, str) or '://' not in value:
        _refuse(what, value, 'not a URI', accepted)
    scheme, dummy_sep, rest = value.partition('://')
    if scheme not in ('tcp', 'rdma'):
        _refuse(what, value, 'scheme %s:// is not a network data stream' % scheme, accepted)
    authority = rest[:-1] if rest.endswith('/') else rest
    if not authority or any(c in authority for c in '/?#@ \t'):
        _refuse(what, value, 'only a host and a port may follow %s://' % scheme, accepted)
    _split_host_port(authority, what, value, accepted)
    return value


def check_listen_address(value, what='listen_address'):
    """``value`` if it is an address (or host name) for the destination's QEMU to listen on."""
    if isinstance(value, str) and value.startswith('[') and value.endswith(']'):
        value = value[1:-1]
    if not is_address(value or ''):
        check_host(value, what, HOST_FORMS)
    return value


def check_data_stream(migrate_uri=None, listen_address=None):
    """virt_migrate's QEMU data stream options, each when given (None: libvirt chooses)."""
    if migrate_uri is not None:
        check_migrate_uri(migrate_uri)
    if listen_address is not None:
        check_listen_address(listen_address)
