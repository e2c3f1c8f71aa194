# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight's reach into the destination: the remote helper over ssh, and real TCP connections.

Private module_utils file (leading underscore): its API may change without notice.

``SshHelper`` starts ``_remote_helper`` on the destination with the system ssh client and the
destination's own python3, reads its facts and asks it to listen on migration ports;
``tcp_connect_many`` connects from here to many ports at once (only our listener's greeting counts),
``measure_bandwidth`` streams data into the helper's sink; ``resolve`` is this host's name lookup.
"""

from __future__ import annotations

import base64
import errno
import inspect
import json
import os
import selectors
import socket
import subprocess
import time

from ansible_collections.kvmops.migration.plugins.module_utils import _remote_helper
from ansible_collections.kvmops.migration.plugins.module_utils._preflight_spec import MIB


# At most this many ports of the migration range get a test listener (evenly spread, both ends).
MAX_PORTS_TESTED = 128


def sample_ports(low, high, cap=MAX_PORTS_TESTED):
    """Every port of [low, high] if it has at most ``cap`` ports, else ``cap`` evenly spread
    ones including both ends."""
    if high < low:
        return []
    count = high - low + 1
    if count <= cap:
        return list(range(low, high + 1))
    step = (count - 1) / float(cap - 1)
    return sorted(set(low + int(round(i * step)) for i in range(cap)))


def helper_source():
    """The source of ``_remote_helper``, read from wherever this collection's code is: a file in a
    checkout, or the module's Ansiballz zip (importing it above puts it in that zip)."""
    return inspect.getsource(_remote_helper)


def remote_command(request, interpreter='/usr/bin/python3'):
    """The remote shell command that runs the helper with ``request`` under the destination's python3.
    Both travel base64-encoded (letters, digits, + / =): nothing in them needs shell quoting."""
    code = 'import base64;exec(compile(base64.b64decode("%s"),"kvmops_remote_helper","exec"))' % (
        base64.b64encode(helper_source().encode()).decode())
    return ('P=%s; [ -x "$P" ] || P=$(command -v python3) || { echo "no python3 on destination" >&2; exit 127; }; '
            'exec "$P" -c \'%s\' %s' % (interpreter, code, _remote_helper.encode_request(request)))


class SshHelper:
    """The helper process on the destination, reached with the system ssh client."""

    def __init__(self, destination, options=(), connect_timeout=5, popen=subprocess.Popen):
        self.destination = destination
        self.options = list(options or ())
        self.connect_timeout = connect_timeout
        self._popen = popen
        self.proc = None
        self.error = None
        self.facts = None
        self.started = None
        self.elapsed_s = None
        self._buf = b''

    def argv(self, command):
        options = ['-T', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=%d' % self.connect_timeout] + self.options
        return ['ssh'] + self.destination.ssh_argv(options) + [command]

    def start(self, request):
        self.started = time.monotonic()
        try:
            self.proc = self._popen(self.argv(remote_command(request)), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, bufsize=0)
        except OSError as exc:
            self.error = 'cannot run ssh: %s' % exc
            self.proc = None

    def _readline(self, timeout):
        """One line of the helper's stdout, or None (and self.error) on timeout/exit."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b'\n' not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.error = 'no answer from the destination helper within %ds' % timeout
                return None
            sel = selectors.DefaultSelector()
            sel.register(fd, selectors.EVENT_READ)
            ready = sel.select(remaining)
            sel.close()
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                self.proc.wait()
                err = self.proc.stderr.read().decode('utf-8', 'replace').strip()
                self.error = err.splitlines()[-1] if err else 'ssh exited with status %s' % self.proc.returncode
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b'\n', 1)
        return line.decode('utf-8', 'replace')

    def read_facts(self, timeout):
        if self.proc is None:
            return None
        line = self._readline(timeout)
        if line is None:
            return None
        try:
            self.facts = json.loads(line)
        except ValueError:
            self.error = 'unexpected output from the destination helper: %s' % line[:200]
            return None
        self.elapsed_s = time.monotonic() - self.started
        return self.facts

    def listen(self, ports, timeout=10):
        if self.proc is None or self.facts is None:
            return None
        try:
            self.proc.stdin.write(('listen %s\n' % json.dumps(list(ports))).encode())
            self.proc.stdin.flush()
        except (OSError, ValueError) as exc:
            self.error = 'destination helper went away: %s' % exc
            return None
        line = self._readline(timeout)
        if line is None:
            return None
        try:
            return json.loads(line)
        except ValueError:
            self.error = 'unexpected output from the destination helper: %s' % line[:200]
            return None

    def close(self):
        if self.proc is None:
            return
        try:
            self.proc.stdin.write(b'quit\n')
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass


def _errno_code(err):
    if err in (errno.ECONNREFUSED,):
        return 'refused'
    if err in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM):
        return 'unreachable'
    if err in (errno.ETIMEDOUT,):
        return 'timeout'
    return errno.errorcode.get(err, str(err))


def tcp_connect_many(address, ports, timeout=3.0, expect_token=None):
    """Connect to every port of ``address`` at once; {port: {ok, error, ms}}.

    With ``expect_token``, a port only counts if the peer sends "<token> <port>" first: the
    connection reached our listener, not something else.
    """
    family = socket.AF_INET6 if ':' in address else socket.AF_INET
    sel = selectors.DefaultSelector()
    results = {}
    started = {}
    pending = {}
    for port in ports:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        started[port] = time.monotonic()
        rc = s.connect_ex((address, port))
        if rc not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            results[port] = {'ok': False, 'error': _errno_code(rc)}
            s.close()
            continue
        pending[port] = {'sock': s, 'stage': 'connect', 'buf': b''}
        sel.register(s, selectors.EVENT_WRITE, port)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for key, dummy in sel.select(max(0.0, deadline - time.monotonic())):
            port = key.data
            st = pending[port]
            s = st['sock']
            if st['stage'] == 'connect':
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    results[port] = {'ok': False, 'error': _errno_code(err)}
                elif expect_token is None:
                    results[port] = {'ok': True, 'ms': round((time.monotonic() - started[port]) * 1000, 1)}
                else:
                    st['stage'] = 'token'
                    sel.modify(s, selectors.EVENT_READ, port)
                    continue
            else:
                try:
                    data = s.recv(256)
                except OSError as exc:
                    results[port] = {'ok': False, 'error': _errno_code(exc.errno)}
                    data = None
                if data:
                    st['buf'] += data
                    if b'\n' not in st['buf']:
                        continue
                if data is not None:
                    line = st['buf'].split(b'\n', 1)[0].decode('ascii', 'replace')
                    ok = line == '%s %d' % (expect_token, port)
                    results[port] = {'ok': ok, 'error': None if ok else 'wrong_peer',
                                     'ms': round((time.monotonic() - started[port]) * 1000, 1)}
            sel.unregister(s)
            s.close()
            del pending[port]
    for port, st in pending.items():
        results[port] = {'ok': False, 'error': 'timeout'}
        try:
            sel.unregister(st['sock'])
        except (KeyError, ValueError):
            pass
        st['sock'].close()
    sel.close()
    return results


def measure_bandwidth(address, port, token, seconds=3.0, max_bytes=8 * 1024 * MIB, connect_timeout=3.0):
    """Send data to the helper's sink for ``seconds`` (or ``max_bytes``); the rate counts until
    the destination confirmed how much it received."""
    family = socket.AF_INET6 if ':' in address else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(connect_timeout)
    try:
        s.connect((address, port))
        hello = b''
        while b'\n' not in hello:
            chunk = s.recv(256)
            if not chunk:
                return {'error': 'the listener closed the connection'}
            hello += chunk
        if hello.split(b'\n', 1)[0].decode('ascii', 'replace') != '%s %d' % (token, port):
            return {'error': 'port %d answered, but not by our listener' % port}
        s.settimeout(max(seconds, 1.0) + 10)
        block = os.urandom(MIB)
        s.sendall(b'BW\n')
        sent = 0
        start = time.monotonic()
        stop = start + seconds
        while time.monotonic() < stop and sent < max_bytes:
            s.sendall(block)
            sent += len(block)
        s.shutdown(socket.SHUT_WR)
        reply = b''
        while b'\n' not in reply:
            chunk = s.recv(64)
            if not chunk:
                break
            reply += chunk
        elapsed = time.monotonic() - start
        received = int(reply.strip() or 0)
    except (OSError, ValueError) as exc:
        return {'error': str(exc)}
    finally:
        s.close()
    if received <= 0 or elapsed <= 0:
        return {'error': 'the destination received nothing'}
    return {'bytes': received, 'seconds': round(elapsed, 3), 'mib_s': round(received / float(MIB) / elapsed, 1),
            'port': port}


def resolve(address):
    infos = socket.getaddrinfo(address, None, 0, socket.SOCK_STREAM)
    seen = []
    for info in infos:
        ip = info[4][0]
        if ip not in seen:
            seen.append(ip)
    return seen
