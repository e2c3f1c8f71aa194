# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight's helper on the migration destination: facts, probe-file reads, test listeners.

Private module_utils file (leading underscore): its API may change without notice.

This file is never imported on the destination: ``_remote_probe`` reads its source and runs it
there over ssh with the destination's own ``python3`` (``python3 -c <this file> <request>``), so
it uses the standard library only and runs on Python 3.7 and later. Run it by hand the same way:
``python3 _remote_helper.py "$(printf '{"token": "t"}' | base64 -w0)"``.

The request (base64 of a JSON object, the first argument) says what to look at: ``conf_files``
(``key = value`` lines to return), ``files`` (to stat; the ones also in ``read`` have their first
256 bytes returned: the probe files), ``netdevs`` (network devices to describe), ``token`` and
``max_seconds`` (the helper exits after that long whatever happens).

Protocol: the helper prints one JSON line of facts, then reads commands on stdin, one per line:

* ``listen [ports]`` binds each free port of the JSON list and prints ``{"bound": [...], "busy": [...]}``;
* ``quit`` (or the end of stdin) ends it.

Every connection accepted on a bound port first receives ``<token> <port>\\n``, so that the
preflight knows it reached this listener and not something else on that port. A client that then
sends ``BW\\n`` followed by data and closes its sending side receives the number of data bytes
read (a bandwidth sink).
"""

from __future__ import annotations

import base64
import errno
import json
import os
import select
import socket
import stat
import sys
import time

STDIN = 0
BANDWIDTH_HEADER = b'BW\n'
PROBE_READ_BYTES = 256
CONF_READ_BYTES = 1 << 20
RECV_BYTES = 1 << 20
DEFAULT_MAX_SECONDS = 60


def read_text(path, limit=4096):
    """The first ``limit`` characters of a text file, or None when it cannot be read."""
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            return handle.read(limit)
    except OSError:
        return None


def setting_lines(text):
    """The ``key = value`` lines of a libvirt configuration file, comments left out."""
    return [line.strip() for line in text.splitlines() if '=' in line and not line.lstrip().startswith('#')]


def block_device_size(path):
    """Bytes of a block device (its size in stat() is 0), or None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    except OSError:
        return None
    finally:
        os.close(fd)


def file_facts(path, read_head=False):
    """{exists, size, block, regular} of ``path`` as this host sees it; with ``read_head`` also the
    first bytes of a regular file as ``content`` (how a probe file written on the source is seen)."""
    try:
        status = os.stat(path)
    except OSError as exc:
        return {'exists': False, 'error': exc.strerror}
    facts = {'exists': True, 'size': status.st_size, 'block': stat.S_ISBLK(status.st_mode),
             'regular': stat.S_ISREG(status.st_mode)}
    if facts['block']:
        size = block_device_size(path)
        if size is not None:
            facts['size'] = size
    if read_head and facts['regular']:
        try:
            with open(path, 'rb') as handle:
                facts['content'] = handle.read(PROBE_READ_BYTES).decode('ascii', 'replace')
        except OSError as exc:
            facts['read_error'] = exc.strerror
    return facts


def netdev_facts(name):
    """{exists, bridge, operstate} of a network device (a bridge has a ``bridge`` directory in sysfs)."""
    base = os.path.join('/sys/class/net', name)
    operstate = read_text(os.path.join(base, 'operstate'))
    return {'exists': os.path.isdir(base), 'bridge': os.path.isdir(os.path.join(base, 'bridge')),
            'operstate': operstate.strip() if operstate else None}


def gather_facts(request):
    """The first answer: host name, Python version, configuration lines, files and network devices."""
    facts = {'hostname': socket.gethostname(), 'python': sys.version.split()[0], 'conf': {}, 'files': {},
             'netdevs': {}}
    for path in request.get('conf_files', []):
        text = read_text(path, CONF_READ_BYTES)
        facts['conf'][path] = None if text is None else setting_lines(text)
    read = set(request.get('read', []))
    for path in request.get('files', []):
        facts['files'][path] = file_facts(path, read_head=path in read)
    for name in request.get('netdevs', []):
        facts['netdevs'][name] = netdev_facts(name)
    return facts


def bind_listener(port):
    """A listening, non-blocking socket on ``port`` of every address: IPv6 with IPv4 mapped where
    the host has IPv6, else IPv4. OSError when the port is in use."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        sock = None
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(('::', port))
        except (OSError, AttributeError) as exc:  # AttributeError: a Python without IPV6_V6ONLY
            sock.close()
            sock = None
            if getattr(exc, 'errno', None) == errno.EADDRINUSE:
                raise  # in use: IPv4 on the same port would be too
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(('0.0.0.0', port))
        except OSError:
            sock.close()
            raise
    try:
        sock.listen(8)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class Peer:
    """One accepted connection: its first bytes decide whether it feeds the bandwidth sink."""

    def __init__(self, sock):
        self.sock = sock
        self.head = b''
        self.sink = False
        self.received = 0

    def feed(self, data):
        if self.sink:
            self.received += len(data)
            return
        self.head += data
        if self.head.startswith(BANDWIDTH_HEADER):
            self.sink = True
            self.received = len(self.head) - len(BANDWIDTH_HEADER)
        elif len(self.head) >= len(BANDWIDTH_HEADER):
            self.head = b''  # not a bandwidth test: a plain connect test, data ignored

    def finish(self):
        """The peer closed its side: a sink answers how many bytes it read, then the connection closes."""
        if self.sink:
            try:
                self.sock.setblocking(True)
                self.sock.sendall(('%d\n' % self.received).encode())
            except OSError:
                pass
        self.sock.close()


class Listeners:
    """The test listeners on migration ports and the connections they accepted."""

    def __init__(self, token):
        self.token = token.encode()
        self.listening = {}  # fd -> (socket, port)
        self.peers = {}      # fd -> Peer

    def listen(self, ports):
        bound, busy = [], []
        for port in ports:
            try:
                sock = bind_listener(port)
            except OSError:
                busy.append(port)
                continue
            self.listening[sock.fileno()] = (sock, port)
            bound.append(port)
        return {'bound': bound, 'busy': busy}

    def fds(self):
        return list(self.listening) + list(self.peers)

    def ready(self, fd):
        if fd in self.listening:
            self._accept(*self.listening[fd])
        elif fd in self.peers:
            self._receive(fd)

    def _accept(self, listener, port):
        try:
            sock, dummy_address = listener.accept()
        except OSError:
            return
        try:
            sock.setblocking(True)
            sock.sendall(self.token + b' ' + str(port).encode() + b'\n')
            sock.setblocking(False)
        except OSError:
            sock.close()
            return
        self.peers[sock.fileno()] = Peer(sock)

    def _receive(self, fd):
        peer = self.peers[fd]
        try:
            data = peer.sock.recv(RECV_BYTES)
        except OSError:
            data = b''
        if data:
            peer.feed(data)
        else:
            del self.peers[fd]
            peer.finish()


def answer(stream, message):
    stream.write(json.dumps(message) + '\n')
    stream.flush()


def serve(request, stdin_fd=STDIN, stdout=None, clock=time.time):
    """Answer commands on ``stdin_fd`` and serve the listeners until ``quit``, the end of stdin, or
    ``max_seconds``."""
    stdout = stdout or sys.stdout
    listeners = Listeners(request['token'])
    end = clock() + request.get('max_seconds', DEFAULT_MAX_SECONDS)
    pending = b''
    while clock() < end:
        readable = select.select([stdin_fd] + listeners.fds(), [], [], 0.5)[0]
        for fd in readable:
            if fd != stdin_fd:
                listeners.ready(fd)
                continue
            data = os.read(stdin_fd, 65536)
            if not data:
                return
            pending += data
            while b'\n' in pending:
                line, pending = pending.split(b'\n', 1)
                command, dummy_sep, argument = line.decode().partition(' ')
                if command == 'quit':
                    return
                if command == 'listen':
                    answer(stdout, listeners.listen(json.loads(argument)))


def decode_request(text):
    return json.loads(base64.b64decode(text).decode())


def encode_request(request):
    return base64.b64encode(json.dumps(request).encode()).decode()


def main(argv):
    """Facts first, then commands until the end; the exit status is 0 (1 with a traceback on a bug)."""
    request = decode_request(argv[1])
    answer(sys.stdout, gather_facts(request))
    serve(request)


if __name__ == '__main__':
    main(sys.argv)
