# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one parser of destinations and of the addresses that reach libvirt or ssh."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.migration.plugins.module_utils import _destination as dst
from ansible_collections.kvmops.migration.plugins.module_utils._client import LibvirtClient
from ansible_collections.kvmops.migration.plugins.module_utils._errors import InvalidInputError


# dest, transport -> uri, host, user, port, transport
ACCEPTED = [
    ('host-b', 'ssh', 'qemu+ssh://host-b/system', 'host-b', None, None, 'ssh'),
    ('host-b', 'tls', 'qemu+tls://host-b/system', 'host-b', None, None, 'tls'),
    ('Host-B.example.org', 'tcp', 'qemu+tcp://Host-B.example.org/system', 'Host-B.example.org', None, None, 'tcp'),
    ('10.0.0.2', 'tcp', 'qemu+tcp://10.0.0.2/system', '10.0.0.2', None, None, 'tcp'),
    ('fd00::2', 'ssh', 'qemu+ssh://[fd00::2]/system', 'fd00::2', None, None, 'ssh'),
    ('admin@host-b', 'ssh', 'qemu+ssh://admin@host-b/system', 'host-b', 'admin', None, 'ssh'),
    ('admin@host-b:2222', 'ssh', 'qemu+ssh://admin@host-b:2222/system', 'host-b', 'admin', 2222, 'ssh'),
    ('root@[fd00::2]:22', 'ssh', 'qemu+ssh://root@[fd00::2]:22/system', 'fd00::2', 'root', 22, 'ssh'),
    ('  host-b ', 'ssh', 'qemu+ssh://host-b/system', 'host-b', None, None, 'ssh'),
    ('qemu+ssh://root@h:2222/system', 'tcp', 'qemu+ssh://root@h:2222/system', 'h', 'root', 2222, 'ssh'),
    ('qemu+tcp://h/system', 'ssh', 'qemu+tcp://h/system', 'h', None, None, 'tcp'),
    ('qemu+tls://h:16514/system', 'ssh', 'qemu+tls://h:16514/system', 'h', None, 16514, 'tls'),
    ('qemu://h/system', 'ssh', 'qemu://h/system', 'h', None, None, 'tls'),
    ('qemu+ssh://[fd00::2]/system', 'ssh', 'qemu+ssh://[fd00::2]/system', 'fd00::2', None, None, 'ssh'),
    ('qemu+ssh://host-b/system?keyfile=/root/.ssh/id_migrate', 'ssh',
     'qemu+ssh://host-b/system?keyfile=/root/.ssh/id_migrate', 'host-b', None, None, 'ssh'),
    ('qemu+ssh://host-b/system?mode=direct&proxy=native&no_tty=1', 'ssh',
     'qemu+ssh://host-b/system?mode=direct&proxy=native&no_tty=1', 'host-b', None, None, 'ssh'),
]


@pytest.mark.parametrize('dest, transport, uri, host, user, port, transport_used', ACCEPTED)
def test_accepted(dest, transport, uri, host, user, port, transport_used):
    parsed = dst.parse_destination(dest, transport)
    assert (parsed.uri, parsed.host, parsed.user, parsed.port, parsed.transport) == (
        uri, host, user, port, transport_used)


# dest -> a word of the reason given
REFUSED = [
    ('qemu+ext://host-b/system?command=/tmp/x', 'scheme qemu+ext'),
    ('qemu+ssh://host-b/system?command=/tmp/x', 'names a program libvirt runs on this host'),
    ('qemu+ssh://host-b/system?no_verify=1', 'verification off'),
    ('qemu+tls://host-b/system?no_verify=1', 'verification off'),
    ('qemu+ssh://host-b/system?netcat=/tmp/x', 'runs on the destination'),
    ('qemu+ssh://host-b/system?socket=/x;id', 'command libvirt runs on the destination'),
    ('qemu+ssh://host-b/system?name=qemu%2Bext:///system', 'another URI'),
    ('qemu+tls://host-b/system?pkipath=/tmp/pki', 'CA certificates'),
    ('qemu+tls://host-b/system?tls_priority=NONE', 'weak or no encryption'),
    ('qemu+tls://host-b/system?keyfile=/k', 'with tls'),
    ('qemu+ssh://host-b/system?keyfile=relative/key', 'absolute path'),
    ('qemu+ssh://host-b/system?keyfile=/a/../etc/shadow', 'absolute path'),
    ('qemu+ssh://host-b/system?mode=evil', 'auto, direct, legacy'),
    ('qemu+ssh://host-b/system?mode=direct&mode=legacy', 'twice'),
    ('qemu+ssh://host-b/system?frobnicate=1', 'not one of those known to be safe'),
    ('qemu+ssh://host-b/system?x', 'name=value'),
    ('qemu+libssh://host-b/system?known_hosts_verify=ignore', 'scheme qemu+libssh'),
    ('qemu+libssh2://host-b/system', 'scheme qemu+libssh2'),
    ('qemu+unix:///system', 'scheme qemu+unix'),
    ('xen+ssh://host-b/system', 'scheme xen+ssh'),
    ('qemu:///system', 'names no host'),
    ('qemu+ssh://', 'names no host'),
    ('qemu+ssh://host-b/session', '/system'),
    ('qemu+ssh://host-b/', '/system'),
    ('qemu+ssh://host-b/system#x', 'fragment'),
    ('qemu+ssh://root:secret@host-b/system', 'password'),
    ('qemu+ssh://-oProxyCommand=x/system', 'not a host name'),
    ('qemu+ssh://host-b:0/system', 'port'),
    ('qemu+ssh://host-b:99999/system', 'port'),
    ('qemu+ssh://[fd00::2/system', 'IPv6'),
    ('-oProxyCommand=x', 'not a host name'),
    ('-host-b', 'not a host name'),
    ('host-b;id', 'not a host name'),
    ('host-b id', 'neither a host name nor a URI'),
    ('host b', 'neither a host name nor a URI'),
    ('$(id)', 'not a host name'),
    ('`id`', 'not a host name'),
    ('hôst', 'not a host name'),
    ('host_b', 'not a host name'),
    ('host-b.', 'not a host name'),
    ('host-.example', 'not a host name'),
    ('a' * 64, 'not a host name'),
    ('1.2.3', 'IPv4'),
    ('999.1.1.1', 'IPv4'),
    ('fe80::1%eth0', 'IPv6'),
    ('a/b', 'neither a host name nor a URI'),
    ('host-b?x=1', 'neither a host name nor a URI'),
    ('-l@host-b', 'not a user name'),
    ('@host-b', 'not a user name'),
    ('root@host-b:ssh', 'port'),
    ('root@host-b:', 'port'),
    ('[host-b]:22', 'IPv6'),
    ('', 'empty'),
    ('   ', 'empty'),
]


@pytest.mark.parametrize('dest, reason', REFUSED)
def test_refused_with_the_accepted_forms(dest, reason):
    with pytest.raises(InvalidInputError) as err:
        dst.parse_destination(dest, 'ssh')
    assert reason in err.value.msg
    assert 'qemu+ssh://[user@]host[:port]/system' in err.value.remedy and 'user@host[:port]' in err.value.remedy


def test_an_unknown_transport_is_refused():
    with pytest.raises(InvalidInputError) as err:
        dst.parse_destination('host-b', 'ext')
    assert 'ssh, tls, tcp' in err.value.remedy


def test_the_uri_is_rebuilt_escaped_not_passed_through():
    parsed = dst.parse_destination('qemu+ssh://root@host-b:2222/system?keyfile=%2Froot%2Fk', 'tls')
    assert parsed.uri == 'qemu+ssh://root@host-b:2222/system?keyfile=/root/k'
    assert parsed.keyfile == '/root/k' and parsed.ssh_port == 2222


def test_ssh_argv_ends_its_options_before_the_destination():
    parsed = dst.parse_destination('qemu+ssh://admin@host-b:2222/system?keyfile=/k', 'ssh')
    assert parsed.ssh_argv(['-o', 'BatchMode=yes']) == [
        '-p', '2222', '-l', 'admin', '-i', '/k', '-o', 'BatchMode=yes', '--', 'host-b']
    assert dst.parse_destination('host-b', 'tls').ssh_argv() == ['--', 'host-b']
    # The libvirt port of a tls URI is not ssh's.
    assert dst.parse_destination('qemu+tls://host-b:16514/system').ssh_argv() == ['--', 'host-b']
    assert dst.parse_destination('root@host-b', 'ssh').ssh_target == 'root@host-b'


@pytest.mark.parametrize('host, uri', [('host-b', 'qemu+ssh://host-b/system'), ('fd00::3', 'qemu+ssh://[fd00::3]/system')])
def test_host_uri_takes_host_names_and_addresses_only(host, uri):
    assert dst.host_uri(host, 'ssh') == uri


@pytest.mark.parametrize('host', ['root@host-b', 'qemu+ssh://host-b/system', '-oProxyCommand=x', 'host-b:22', ''])
def test_host_uri_refuses_anything_else(host):
    with pytest.raises(InvalidInputError) as err:
        dst.host_uri(host, 'ssh')
    assert 'host name' in err.value.remedy


@pytest.mark.parametrize('uri', [
    'qemu:///system', 'qemu:///session', 'test:///default', 'qemu+unix:///system',
    'qemu:///system?socket=/run/libvirt/libvirt-sock', 'qemu+unix:///system?mode=legacy',
    'qemu+ssh://host-b/system', 'qemu+tls://host-b/system',
])
def test_libvirt_uris_a_client_may_open(uri):
    assert dst.check_libvirt_uri(uri) == uri


@pytest.mark.parametrize('uri, reason', [
    ('qemu+ext:///system?command=/tmp/x', 'local URI'),
    ('qemu+ext://host-b/system?command=/tmp/x', 'scheme qemu+ext'),
    ('qemu:///system?command=/tmp/x', 'command'),
    ('qemu:///system?socket=relative', 'absolute path'),
    ('qemu+ssh:///system', 'local URI'),
    ('qemu+ssh://host-b/system?no_verify=1', 'verification off'),
    ('host-b', 'not a libvirt URI'),
    ('', 'not a libvirt URI'),
])
def test_libvirt_uris_refused(uri, reason):
    with pytest.raises(InvalidInputError) as err:
        dst.check_libvirt_uri(uri)
    assert reason in err.value.msg


def test_a_client_refuses_a_uri_that_runs_a_program_before_opening_anything():
    opened = []
    client = LibvirtClient(uri='qemu+ext:///system?command=/tmp/x', opener=opened.append)
    with pytest.raises(InvalidInputError):
        dummy = client.conn
    with pytest.raises(InvalidInputError):
        LibvirtClient(opener=opened.append).open_peer('qemu+ssh://host-b/system?command=/tmp/x')
    assert opened == []


@pytest.mark.parametrize('value', ['tcp://10.0.0.2', 'tcp://10.0.0.2:49152', 'tcp://host-b.mig/', 'rdma://10.1.0.2:4000',
                                   'tcp://[fd00::2]:49152'])
def test_migrate_uri_accepted(value):
    assert dst.check_migrate_uri(value) == value


@pytest.mark.parametrize('value, reason', [
    ('unix:///run/x.sock', 'not a network data stream'),
    ('exec://cat', 'not a network data stream'),
    ('tcp://', 'only a host and a port'),
    ('tcp://host-b/x', 'only a host and a port'),
    ('tcp://user@host-b', 'only a host and a port'),
    ('tcp://host-b?x=1', 'only a host and a port'),
    ('tcp://-oops', 'not a host name'),
    ('tcp://host-b:99999', 'port'),
    ('10.0.0.2', 'not a URI'),
])
def test_migrate_uri_refused(value, reason):
    with pytest.raises(InvalidInputError) as err:
        dst.check_migrate_uri(value)
    assert reason in err.value.msg and 'tcp://HOST[:PORT]' in err.value.remedy


@pytest.mark.parametrize('value, checked', [('10.0.0.2', '10.0.0.2'), ('::', '::'), ('[fd00::2]', 'fd00::2'),
                                            ('mig.host-b.example', 'mig.host-b.example')])
def test_listen_address_accepted(value, checked):
    assert dst.check_listen_address(value) == checked


@pytest.mark.parametrize('value', ['10.0.0.2:4000', 'tcp://10.0.0.2', '-x', 'a b', ''])
def test_listen_address_refused(value):
    with pytest.raises(InvalidInputError):
        dst.check_listen_address(value)


def test_data_stream_options_are_checked_only_when_given():
    dst.check_data_stream(None, None)
    with pytest.raises(InvalidInputError):
        dst.check_data_stream('exec://x', None)
    with pytest.raises(InvalidInputError):
        dst.check_data_stream(None, 'a;b')
