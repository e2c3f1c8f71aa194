# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight's reach into the destination: the real remote helper and protocol, run on this
machine (sh -c instead of ssh), and real TCP connections."""

from __future__ import annotations

import socket
import subprocess
import sys

from ansible_collections.kvmops.migration.plugins.module_utils._destination import parse_destination
from ansible_collections.kvmops.migration.plugins.module_utils._remote_probe import (
    SshHelper,
    measure_bandwidth,
    remote_command,
    sample_ports,
    tcp_connect_many,
)


class LocalHelper(SshHelper):
    """The real helper script and protocol, on this machine instead of over SSH."""

    def argv(self, command):
        return ['sh', '-c', command.replace('P=/usr/bin/python3;', 'P=%s;' % _python())]


def _python():
    return sys.executable


def _free_port_range(count=4):
    """A run of free local ports (best effort)."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    base = s.getsockname()[1]
    s.close()
    return base, base + count - 1


class TestSshHelperAndConnections:
    def test_sample_ports(self):
        assert sample_ports(49152, 49215) == list(range(49152, 49216))
        big = sample_ports(10000, 20000, cap=16)
        assert len(big) == 16 and big[0] == 10000 and big[-1] == 20000
        assert sample_ports(5, 4) == []

    def test_facts_listen_connect_and_bandwidth(self, tmp_path):
        probe = tmp_path / 'kvmops-preflight-x.probe'
        probe.write_text('tok123')
        conf = tmp_path / 'qemu.conf'
        conf.write_text('# comment\nmigration_port_min = 49152\n')
        helper = LocalHelper(parse_destination('localhost'))
        helper.start({'token': 'tok123', 'files': [str(probe), str(tmp_path / 'missing')], 'read': [str(probe)],
                      'netdevs': ['lo', 'nonexistent0'], 'conf_files': [str(conf), str(tmp_path / 'nope.conf')],
                      'max_seconds': 20})
        try:
            facts = helper.read_facts(10)
            assert facts, helper.error
            assert facts['hostname'] == socket.gethostname()
            assert facts['files'][str(probe)]['content'] == 'tok123'
            assert facts['files'][str(tmp_path / 'missing')] == {'exists': False, 'error': 'No such file or directory'}
            assert facts['netdevs']['lo']['exists'] and not facts['netdevs']['nonexistent0']['exists']
            assert facts['conf'][str(conf)] == ['migration_port_min = 49152'] and facts['conf'][str(tmp_path / 'nope.conf')] is None
            low, high = _free_port_range()
            blocker = socket.socket()
            blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                blocker.bind(('0.0.0.0', high))
                blocker.listen(1)
                busy_expected = [high]
            except OSError:
                busy_expected = []
            listening = helper.listen(range(low, high + 1))
            blocker.close()
            assert listening, helper.error
            assert high not in listening['bound'] or not busy_expected
            results = tcp_connect_many('127.0.0.1', listening['bound'], timeout=3, expect_token='tok123')
            assert all(r['ok'] for r in results.values()), results
            wrong = tcp_connect_many('127.0.0.1', listening['bound'][:1], timeout=3, expect_token='other')
            assert wrong[listening['bound'][0]]['error'] == 'wrong_peer'
            bw = measure_bandwidth('127.0.0.1', listening['bound'][0], 'tok123', seconds=0.3)
            assert bw.get('mib_s', 0) > 0 and bw['bytes'] > 0, bw
        finally:
            helper.close()
        assert helper.proc.returncode == 0

    def test_ssh_failure_is_reported(self):
        class Failing(SshHelper):
            def argv(self, command):
                return ['sh', '-c', 'echo "ssh: connect to host b port 22: Connection refused" >&2; exit 255']
        helper = Failing(parse_destination('b'))
        helper.start({'token': 't'})
        assert helper.read_facts(5) is None
        assert 'Connection refused' in helper.error
        helper.close()

    def test_remote_command_is_shell_safe(self):
        cmd = remote_command({'token': "it's \"quoted\"", 'files': ['/a b/c']})
        out = subprocess.run(['sh', '-n', '-c', cmd], capture_output=True, check=False)
        assert out.returncode == 0

    def test_connect_refused_and_closed_port(self):
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
        s.close()
        res = tcp_connect_many('127.0.0.1', [port], timeout=2)
        assert res[port] == {'ok': False, 'error': 'refused'}
