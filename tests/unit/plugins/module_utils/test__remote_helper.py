# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight's remote helper as Python: its functions in this process, the file run as a script
by a separate python3 (as on the destination), and its source as the module ships it."""

from __future__ import annotations

import ast
import inspect
import json
import os
import select
import socket
import subprocess
import sys
import zipfile

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils import _remote_helper as helper
from ansible_collections.kvmops.migration.plugins.module_utils._remote_probe import helper_source, remote_command

HELPER_PATH = inspect.getsourcefile(helper)
# The interpreters the script is run with: this one, and the system python3 a destination has.
INTERPRETERS = [sys.executable] + [path for path in ('/usr/bin/python3',) if os.path.exists(path)]


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_gather_facts(tmp_path):
    conf = tmp_path / 'libvirtd.conf'
    conf.write_text('# listen_tls = 0\nlisten_tcp = 1\n  tcp_port = "16509"\nnot a setting\n')
    probe = tmp_path / 'probe'
    probe.write_text('token-1')
    facts = helper.gather_facts({'conf_files': [str(conf), str(tmp_path / 'none.conf')],
                                 'files': [str(probe), str(tmp_path / 'gone')], 'read': [str(probe)],
                                 'netdevs': ['lo', 'nonexistent0']})
    assert facts['hostname'] == socket.gethostname() and facts['python'] == sys.version.split()[0]
    assert facts['conf'] == {str(conf): ['listen_tcp = 1', 'tcp_port = "16509"'], str(tmp_path / 'none.conf'): None}
    assert facts['files'][str(probe)] == {'exists': True, 'size': 7, 'block': False, 'regular': True,
                                          'content': 'token-1'}
    assert facts['files'][str(tmp_path / 'gone')] == {'exists': False, 'error': 'No such file or directory'}
    assert facts['netdevs']['lo']['exists'] and not facts['netdevs']['lo']['bridge']
    assert facts['netdevs']['nonexistent0'] == {'exists': False, 'bridge': False, 'operstate': None}


def test_a_file_not_asked_to_be_read_is_only_described(tmp_path):
    path = tmp_path / 'disk.img'
    path.write_bytes(b'\0' * 4096)
    assert helper.file_facts(str(path)) == {'exists': True, 'size': 4096, 'block': False, 'regular': True}
    assert 'content' not in helper.file_facts(str(tmp_path), read_head=True)  # a directory is not read


def test_a_peer_is_a_bandwidth_sink_only_after_the_header():
    class Sock:
        sent = b''

        def setblocking(self, flag):
            pass

        def sendall(self, data):
            Sock.sent += data

        def close(self):
            pass

    sink = helper.Peer(Sock())
    for chunk in (b'B', b'W\nabc', b'defg'):
        sink.feed(chunk)
    sink.finish()
    assert sink.sink and sink.received == 7 and Sock.sent == b'7\n'
    plain = helper.Peer(Sock())
    plain.feed(b'hello')
    plain.finish()
    assert not plain.sink and Sock.sent == b'7\n'  # a plain connect test gets no count


def test_listen_reports_a_port_in_use_as_busy():
    listeners = helper.Listeners('t')
    with socket.socket() as taken:
        taken.bind(('0.0.0.0', 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        free = free_port()
        answer = listeners.listen([busy, free])
    assert answer == {'bound': [free], 'busy': [busy]}
    for sock, dummy_port in listeners.listening.values():
        sock.close()


def test_request_round_trip():
    request = {'token': "it's", 'files': ['/a b']}
    assert helper.decode_request(helper.encode_request(request)) == request


def read_line(proc, timeout=10):
    ready = select.select([proc.stdout], [], [], timeout)[0]
    assert ready, 'no answer from the helper within %ss' % timeout
    return json.loads(proc.stdout.readline())


@pytest.mark.parametrize('python', INTERPRETERS)
def test_the_file_runs_as_a_script(python, tmp_path):
    probe = tmp_path / 'probe'
    probe.write_text('tok')
    request = {'token': 'tok', 'files': [str(probe)], 'read': [str(probe)], 'max_seconds': 20}
    proc = subprocess.Popen([python, '-I', HELPER_PATH, helper.encode_request(request)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        facts = read_line(proc)
        assert facts['files'][str(probe)]['content'] == 'tok'
        port = free_port()
        proc.stdin.write('listen %s\n' % json.dumps([port]))
        proc.stdin.flush()
        assert read_line(proc) == {'bound': [port], 'busy': []}
        with socket.create_connection(('127.0.0.1', port), timeout=5) as conn:
            assert conn.makefile('rb').readline() == ('tok %d\n' % port).encode()
            conn.sendall(b'BW\n' + b'x' * 100000)
            conn.shutdown(socket.SHUT_WR)
            assert conn.makefile('rb').readline() == b'100000\n'
        proc.stdin.write('quit\n')
        proc.stdin.flush()
        assert proc.wait(10) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()


@pytest.mark.parametrize('python', INTERPRETERS)
def test_the_shipped_command_runs_the_same_code(python):
    """What SshHelper sends: the source as an argument of python3 -c, run by sh as ssh's remote shell would."""
    command = remote_command({'token': 't', 'max_seconds': 5}, interpreter=python)
    proc = subprocess.run(['sh', '-c', command], input='quit\n', capture_output=True, text=True, timeout=30,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[0])['hostname'] == socket.gethostname()


def test_the_source_is_python_37_and_stdlib_only():
    source = helper_source()
    tree = ast.parse(source, feature_version=(3, 7))  # a SyntaxError for anything newer
    modules = {alias.name.split('.')[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module.split('.')[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert modules <= set(sys.stdlib_module_names), modules - set(sys.stdlib_module_names)


def test_the_source_is_read_from_a_zip_as_ansiballz_ships_module_utils(tmp_path):
    """Ansiballz puts the module_utils a module imports into a zip and imports them from there."""
    package = 'ansible_collections/kvmops/migration/plugins/module_utils'
    payload = tmp_path / 'payload.zip'
    with zipfile.ZipFile(str(payload), 'w') as archive:
        for depth in range(1, len(package.split('/')) + 1):
            archive.writestr('/'.join(package.split('/')[:depth]) + '/__init__.py', '')
        archive.write(HELPER_PATH, package + '/_remote_helper.py')
    code = ('import inspect, sys; sys.path.insert(0, sys.argv[1]); '
            'from ansible_collections.kvmops.migration.plugins.module_utils import _remote_helper as h; '
            'assert h.__file__.startswith(sys.argv[1]), h.__file__; sys.stdout.write(inspect.getsource(h))')
    out = subprocess.run([sys.executable, '-I', '-c', code, str(payload)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout == helper_source()
