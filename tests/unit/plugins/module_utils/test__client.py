# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmops contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import threading
import types

import pytest

from ansible.module_utils import basic
from ansible_collections.kvmops.migration.plugins.module_utils import _bindings, _client, _errors, _libvirt_constants, _module_wrapper

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    import contextlib
    from unittest import mock

    @contextlib.contextmanager
    def patch_module_args(args=None):
        payload = json.dumps(dict(ANSIBLE_MODULE_ARGS=args or {})).encode()
        with mock.patch.object(basic, '_ANSIBLE_ARGS', payload):
            yield


REAL_LIBVIRT = _bindings.libvirt


# ---------------------------------------------------------------------------
# Fakes
# ---------------------------------------------------------------------------

class FakeLibvirtError(Exception):
    def __init__(self, message, code=None, domain=None):
        super().__init__(message)
        self._message = message
        self._code = code
        self._domain = domain

    def get_error_code(self):
        return self._code

    def get_error_domain(self):
        return self._domain

    def get_error_message(self):
        return self._message


class FakeDomain:
    def __init__(self, name, uuid):
        self._name = name
        self._uuid = uuid

    def name(self):
        return self._name

    def UUIDString(self):  # noqa: N802 - libvirt's spelling
        return self._uuid


class FakeConn:
    def __init__(self, uri, domains=(), close_error=None):
        self.uri = uri
        self.domains = dict((d.name(), d) for d in domains)
        self.close_calls = 0
        self.close_error = close_error

    def getURI(self):  # noqa: N802
        return self.uri

    def lookupByName(self, name):  # noqa: N802
        try:
            return self.domains[name]
        except KeyError:
            raise FakeLibvirtError("Domain not found: no domain with matching name '%s'" % name,
                                   code=_libvirt_constants.VIR_ERR_NO_DOMAIN, domain=10) from None

    def lookupByUUIDString(self, uuid):  # noqa: N802
        for dom in self.domains.values():
            if dom.UUIDString() == uuid:
                return dom
        raise FakeLibvirtError("Domain not found: no domain with matching uuid '%s'" % uuid,
                               code=_libvirt_constants.VIR_ERR_NO_DOMAIN, domain=10)

    def isAlive(self):
        return True

    def setKeepAlive(self, interval, count):
        self.keepalive = (interval, count)

    def close(self):
        self.close_calls += 1
        if self.close_error:
            raise self.close_error
        return 0


def make_fake_libvirt(domains=(), fail_uris=None):
    """A stand-in for the libvirt module: open() records calls and returns FakeConn objects."""
    fail_uris = fail_uris or {}
    fake = types.SimpleNamespace(
        libvirtError=FakeLibvirtError,
        VIR_ERR_OK=0, VIR_ERR_NONE=0, VIR_ERR_INTERNAL_ERROR=1, VIR_ERR_SYSTEM_ERROR=38,
        VIR_ERR_NO_DOMAIN=42, VIR_ERR_AUTH_FAILED=45, VIR_ERR_OPERATION_TIMEOUT=68,
        VIR_ERR_MIGRATE_UNSAFE=81, VIR_FROM_QEMU=10, VIR_FROM_RPC=7,
        opened=[], connections=[], event_loop=[],
    )
    # The event loop thread of the client runs virEventRunDefaultImpl forever: make it idle.
    fake.virEventRegisterDefaultImpl = lambda: fake.event_loop.append('registered')
    fake.virEventRunDefaultImpl = lambda: threading.Event().wait(3600)

    def _open(uri):
        fake.opened.append(uri)
        if uri in fail_uris:
            raise fail_uris[uri]
        conn = FakeConn(uri, domains)
        fake.connections.append(conn)
        return conn

    fake.open = _open
    fake.openReadOnly = _open
    return fake


@pytest.fixture
def fake_libvirt(monkeypatch):
    fake = make_fake_libvirt(domains=[FakeDomain('vm1', '11111111-2222-3333-4444-555555555555')])
    monkeypatch.setattr(_bindings, 'libvirt', fake)
    return fake


class ExitJson(Exception):
    def __init__(self, kwargs):
        super().__init__(kwargs)
        self.kwargs = kwargs


class FailJson(Exception):
    def __init__(self, kwargs):
        super().__init__(kwargs)
        self.kwargs = kwargs


@pytest.fixture
def module_exits(monkeypatch):
    def exit_json(self, **kwargs):
        raise ExitJson(kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs['msg'] = msg
        raise FailJson(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)


def new_module(args=None, argument_spec=None, **kwargs):
    with patch_module_args(args or {}):
        return _module_wrapper.KvmopsModule(argument_spec=argument_spec or {}, **kwargs)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

class TestKvmopsError:
    def test_fail_kwargs_merge_details_and_remedy(self):
        err = _errors.MigrationError('it broke', remedy='fix it', details=dict(phase='finish', msg='clash'))
        kwargs = err.as_fail_kwargs()
        assert kwargs == dict(msg='it broke', remedy='fix it', phase='finish', detail_msg='clash')
        assert str(err) == 'it broke'

    def test_fail_kwargs_without_remedy(self):
        assert _errors.InvalidInputError('bad').as_fail_kwargs() == dict(msg='bad')

    def test_all_typed_errors_are_kvmops_errors(self):
        for cls in (_errors.LibvirtConnectionError, _errors.DomainNotFoundError, _errors.InvalidInputError,
                    _errors.MigrationError, _errors.OperationTimeoutError, _errors.LibvirtCallError):
            assert issubclass(cls, _errors.KvmopsError)


class TestTranslateLibvirtError:
    @pytest.mark.parametrize('code, domain, expected', [
        (_libvirt_constants.VIR_ERR_NO_DOMAIN, 10, _errors.DomainNotFoundError),
        (_libvirt_constants.VIR_ERR_NO_CONNECT, 13, _errors.LibvirtConnectionError),
        (_libvirt_constants.VIR_ERR_AUTH_FAILED, 13, _errors.LibvirtConnectionError),
        (_libvirt_constants.VIR_ERR_SYSTEM_ERROR, _libvirt_constants.VIR_FROM_RPC, _errors.LibvirtConnectionError),
        (_libvirt_constants.VIR_ERR_SYSTEM_ERROR, 10, _errors.LibvirtCallError),
        (_libvirt_constants.VIR_ERR_OPERATION_TIMEOUT, 10, _errors.OperationTimeoutError),
        (_libvirt_constants.VIR_ERR_MIGRATE_UNSAFE, 10, _errors.MigrationError),
        (_libvirt_constants.VIR_ERR_XML_ERROR, 10, _errors.InvalidInputError),
        (_libvirt_constants.VIR_ERR_OPERATION_INVALID, 10, _errors.LibvirtCallError),
        (None, None, _errors.LibvirtCallError),
    ])
    def test_class_from_code(self, fake_libvirt, code, domain, expected):
        exc = FakeLibvirtError('libvirt says no', code=code, domain=domain)
        err = _errors.translate_libvirt_error(exc, 'Frobbing domain vm1')
        assert type(err) is expected  # pylint: disable=unidiomatic-typecheck
        assert err.msg == 'Frobbing domain vm1 failed: libvirt says no'
        assert err.details['libvirt_error_code'] == code
        assert err.details['libvirt_error_domain'] == domain
        assert err.details['libvirt_error_message'] == 'libvirt says no'
        assert err.__cause__ is exc

    def test_names_codes_from_bindings(self, fake_libvirt):
        err = _errors.translate_libvirt_error(FakeLibvirtError('x', code=42, domain=10), 'Doing')
        assert err.details['libvirt_error_name'] == 'VIR_ERR_NO_DOMAIN'
        assert err.details['libvirt_error_domain_name'] == 'VIR_FROM_QEMU'

    def test_error_levels_are_not_used_as_code_names(self, fake_libvirt):
        err = _errors.translate_libvirt_error(FakeLibvirtError('x', code=0), 'Doing')
        assert err.details['libvirt_error_name'] == 'VIR_ERR_OK'

    def test_call_error_carries_code_domain_message(self, fake_libvirt):
        err = _errors.translate_libvirt_error(FakeLibvirtError('boom', code=1, domain=10), 'Doing')
        assert isinstance(err, _errors.LibvirtCallError)
        assert (err.code, err.domain, err.libvirt_message) == (1, 10, 'boom')

    def test_forced_class_remedy_and_details(self, fake_libvirt):
        err = _errors.translate_libvirt_error(FakeLibvirtError('nope', code=1), 'Migrating vm1',
                                              error_class=_errors.MigrationError, remedy='retry',
                                              details=dict(uri='qemu+tcp://b/system'))
        assert isinstance(err, _errors.MigrationError)
        assert err.remedy == 'retry'
        assert err.details['uri'] == 'qemu+tcp://b/system'

    def test_default_remedies(self, fake_libvirt):
        conn = _errors.translate_libvirt_error(FakeLibvirtError('refused', code=38, domain=7), 'Connecting')
        assert 'daemon' in conn.remedy
        auth = _errors.translate_libvirt_error(FakeLibvirtError('denied', code=45), 'Connecting')
        assert 'credentials' in auth.remedy
        unsafe = _errors.translate_libvirt_error(FakeLibvirtError('unsafe', code=81), 'Migrating')
        assert 'shared storage' in unsafe.remedy

    def test_works_without_bindings(self, monkeypatch):
        monkeypatch.setattr(_bindings, 'libvirt', None)
        err = _errors.translate_libvirt_error(FakeLibvirtError('gone', code=42), 'Looking up')
        assert isinstance(err, _errors.DomainNotFoundError)
        assert err.details['libvirt_error_name'] is None

    def test_translated_context_manager(self, fake_libvirt):
        with pytest.raises(_errors.OperationTimeoutError) as info:
            with _errors.translated('Pausing vm1'):
                raise FakeLibvirtError('timed out', code=68)
        assert info.value.msg == 'Pausing vm1 failed: timed out'

    def test_translated_leaves_other_errors_alone(self, fake_libvirt):
        with pytest.raises(KeyError):
            with _errors.translated('Pausing vm1'):
                raise KeyError('x')

    def test_translated_without_a_more_specific_class_is_a_libvirt_call_error(self, fake_libvirt):
        with pytest.raises(_errors.LibvirtCallError, match='^Resuming vm1 failed: nope$'):
            with _errors.translated('Resuming vm1'):
                raise FakeLibvirtError('nope', code=55)


# ---------------------------------------------------------------------------
# LibvirtClient
# ---------------------------------------------------------------------------

class TestLibvirtClient:
    def test_uri_resolution(self):
        assert _client.LibvirtClient().uri == 'qemu:///system'
        assert _client.LibvirtClient(params=dict(uri='test:///default')).uri == 'test:///default'
        module = types.SimpleNamespace(params=dict(uri='qemu+ssh://a/system'))
        assert _client.LibvirtClient(module).uri == 'qemu+ssh://a/system'
        assert _client.LibvirtClient(module, uri='qemu:///session').uri == 'qemu:///session'

    def test_lazy_and_opened_once(self, fake_libvirt):
        client = _client.LibvirtClient(uri='qemu:///system')
        assert not fake_libvirt.opened
        first = client.conn
        assert client.conn is first
        client.lookup_domain(name='vm1')
        client.lookup_domain(name='vm1')
        assert fake_libvirt.opened == ['qemu:///system']

    def test_peers_cached_per_uri_and_all_closed(self, fake_libvirt):
        client = _client.LibvirtClient(uri='qemu:///system')
        local = client.conn
        peer = client.open_peer('qemu+tcp://b/system')
        assert client.open_peer('qemu+tcp://b/system') is peer
        assert client.open_peer('qemu:///system') is local
        assert fake_libvirt.opened == ['qemu:///system', 'qemu+tcp://b/system']
        assert client.open_uris == ['qemu:///system', 'qemu+tcp://b/system']
        assert client.close() == []
        assert local.close_calls == 1 and peer.close_calls == 1
        assert client.close() == []
        assert local.close_calls == 1 and peer.close_calls == 1
        assert client.open_uris == []

    def test_close_reports_but_survives_errors(self, fake_libvirt):
        client = _client.LibvirtClient()
        client.conn.close_error = RuntimeError('socket gone')
        peer = client.open_peer('qemu+tcp://b/system')
        problems = client.close()
        assert problems == ['qemu:///system: socket gone']
        assert peer.close_calls == 1

    def test_context_manager_closes(self, fake_libvirt):
        with _client.LibvirtClient() as client:
            conn = client.conn
        assert conn.close_calls == 1

    def test_context_manager_closes_on_error(self, fake_libvirt):
        with pytest.raises(ValueError):
            with _client.LibvirtClient() as client:
                conn = client.conn
                raise ValueError('x')
        assert conn.close_calls == 1

    def test_connection_failure_is_typed(self, monkeypatch):
        fake = make_fake_libvirt(fail_uris={'qemu+tcp://b/system': FakeLibvirtError(
            'unable to connect to server at b:16509: Connection refused', code=38, domain=7)})
        monkeypatch.setattr(_bindings, 'libvirt', fake)
        client = _client.LibvirtClient(uri='qemu+tcp://b/system')
        with pytest.raises(_errors.LibvirtConnectionError) as info:
            client.conn
        err = info.value
        assert err.msg.startswith('Connecting to libvirt at qemu+tcp://b/system failed: unable to connect')
        assert err.details['uri'] == 'qemu+tcp://b/system'
        assert err.remedy
        assert client.open_uris == []

    def test_connection_failure_wins_over_code_mapping(self, monkeypatch):
        fake = make_fake_libvirt(fail_uris={'x:///': FakeLibvirtError('odd', code=42)})
        monkeypatch.setattr(_bindings, 'libvirt', fake)
        with pytest.raises(_errors.LibvirtConnectionError):
            _client.LibvirtClient(uri='x:///').conn

    def test_open_returning_none(self):
        client = _client.LibvirtClient(opener=lambda uri: None)
        with pytest.raises(_errors.LibvirtConnectionError, match='returned no connection'):
            client.conn

    def test_no_bindings(self, monkeypatch):
        monkeypatch.setattr(_bindings, 'libvirt', None)
        with pytest.raises(_errors.LibvirtConnectionError, match='bindings are not importable'):
            _client.LibvirtClient().conn

    def test_readonly_uses_open_read_only(self, fake_libvirt):
        calls = []
        fake_libvirt.openReadOnly = lambda uri: calls.append(uri) or FakeConn(uri)
        _client.LibvirtClient(readonly=True).conn
        assert calls == ['qemu:///system']

    def test_lookup_by_name_and_uuid(self, fake_libvirt):
        client = _client.LibvirtClient()
        assert client.lookup_domain(name='vm1').name() == 'vm1'
        assert client.lookup_domain(uuid='11111111-2222-3333-4444-555555555555').name() == 'vm1'

    def test_lookup_missing_domain(self, fake_libvirt):
        client = _client.LibvirtClient()
        with pytest.raises(_errors.DomainNotFoundError) as info:
            client.lookup_domain(name='ghost')
        err = info.value
        assert err.msg == "No domain with name 'ghost' on qemu:///system"
        assert 'virsh -c qemu:///system list --all --name' in err.remedy
        assert err.details['name'] == 'ghost'
        assert err.details['libvirt_error_code'] == 42

    def test_lookup_on_peer(self, fake_libvirt):
        client = _client.LibvirtClient()
        peer = client.open_peer('qemu+tcp://b/system')
        with pytest.raises(_errors.DomainNotFoundError, match="on qemu\\+tcp://b/system$"):
            client.lookup_domain(uuid='00000000-0000-0000-0000-000000000000', conn=peer)

    @pytest.mark.parametrize('kwargs', [dict(), dict(name='a', uuid='b')])
    def test_lookup_needs_exactly_one_key(self, fake_libvirt, kwargs):
        with pytest.raises(_errors.InvalidInputError):
            _client.LibvirtClient().lookup_domain(**kwargs)
        assert not fake_libvirt.opened

    def test_open_peer_needs_uri(self, fake_libvirt):
        with pytest.raises(_errors.InvalidInputError):
            _client.LibvirtClient().open_peer('')


@pytest.mark.skipif(REAL_LIBVIRT is None, reason='libvirt-python not installed')
class TestRealTestDriver:
    """libvirt's in-process test driver (test:///default): no daemon involved."""

    def test_lookup_and_close(self):
        with _client.LibvirtClient(uri='test:///default') as client:
            assert client.lookup_domain(name='test').name() == 'test'
            with pytest.raises(_errors.DomainNotFoundError) as info:
                client.lookup_domain(name='ghost')
            assert info.value.details['libvirt_error_name'] == 'VIR_ERR_NO_DOMAIN'
            conn = client.conn
        assert client.open_uris == []
        with pytest.raises(REAL_LIBVIRT.libvirtError):
            conn.getURI()

    def test_bad_uri_is_connection_error(self):
        with pytest.raises(_errors.LibvirtConnectionError):
            _client.LibvirtClient(uri='bogus-driver:///nowhere').conn


# ---------------------------------------------------------------------------
# Import guard / respawn
# ---------------------------------------------------------------------------

class TestEnsureLibvirt:
    @pytest.fixture
    def no_libvirt(self, monkeypatch):
        monkeypatch.setattr(_bindings, 'libvirt', None)
        monkeypatch.setattr(_bindings, 'LIBVIRT_IMPORT_ERROR', 'Traceback: No module named libvirt')
        calls = dict(probe=[], respawn=[])

        def probe(paths, name):
            calls['probe'].append((list(paths), name))
            return calls.get('probe_result')

        def respawn(interpreter):
            calls['respawn'].append(interpreter)
            raise SystemExit(0)

        monkeypatch.setattr(_module_wrapper, 'probe_interpreters_for_module', probe)
        monkeypatch.setattr(_module_wrapper, 'respawn_module', respawn)
        monkeypatch.setattr(_module_wrapper, 'has_respawned', lambda: calls.get('respawned', False))
        return calls

    def test_present_does_nothing(self, fake_libvirt):
        module = types.SimpleNamespace(fail_json=pytest.fail)
        assert _module_wrapper.ensure_libvirt(module) is fake_libvirt

    def test_respawns_under_system_python(self, no_libvirt):
        no_libvirt['probe_result'] = '/usr/bin/python3'
        with pytest.raises(SystemExit):
            _module_wrapper.ensure_libvirt(types.SimpleNamespace(fail_json=pytest.fail))
        assert no_libvirt['respawn'] == ['/usr/bin/python3']
        paths, name = no_libvirt['probe'][0]
        assert name == 'libvirt'
        assert paths[:2] == ['/usr/bin/python3', '/usr/libexec/platform-python']

    def test_fails_when_no_interpreter_has_it(self, no_libvirt, module_exits):
        with pytest.raises(FailJson) as info:
            new_module()
        result = info.value.kwargs
        assert 'libvirt-python' in result['msg']
        assert result['exception'] == 'Traceback: No module named libvirt'
        assert 'python3-libvirt' in result['remedy']
        assert result['changed'] is False
        assert no_libvirt['respawn'] == []

    def test_no_second_respawn(self, no_libvirt, module_exits):
        no_libvirt['respawned'] = True
        no_libvirt['probe_result'] = '/usr/bin/python3'
        with pytest.raises(FailJson):
            new_module()
        assert no_libvirt['probe'] == [] and no_libvirt['respawn'] == []

    def test_not_required(self, no_libvirt, module_exits):
        kvm = new_module(require_libvirt=False)
        assert kvm.params['uri'] == 'qemu:///system'

    @pytest.mark.skipif(not os.path.exists('/usr/lib/python3/dist-packages/libvirt.py'),
                        reason="Debian's python3-libvirt is not installed")
    def test_real_probe_finds_debian_python3_libvirt(self):
        from ansible.module_utils.common.respawn import probe_interpreters_for_module
        found = probe_interpreters_for_module(list(_module_wrapper.RESPAWN_INTERPRETERS), 'libvirt')
        assert found == '/usr/bin/python3'


# ---------------------------------------------------------------------------
# KvmopsModule
# ---------------------------------------------------------------------------

class TestKvmopsModule:
    def test_common_spec_merged(self, fake_libvirt, module_exits):
        kvm = new_module(dict(name='vm1', uri='test:///default'), dict(name=dict(type='str', required=True)),
                         supports_check_mode=True)
        assert kvm.params == dict(name='vm1', uri='test:///default')
        assert kvm.client.uri == 'test:///default'
        assert kvm.client is kvm.client
        assert kvm.check_mode is False

    def test_redefining_common_option_is_an_error(self):
        with pytest.raises(ValueError, match='uri'):
            _module_wrapper.merge_argument_spec(dict(uri=dict(type='str')))

    def test_merge_does_not_mutate_common_spec(self):
        spec = _module_wrapper.merge_argument_spec(dict(x=dict(type='int')))
        spec['uri']['default'] = 'changed'
        assert _module_wrapper.COMMON_ARGUMENT_SPEC['uri']['default'] == 'qemu:///system'

    def test_spec_defaults_are_the_defaults_then_what_is_given(self):
        spec = dict(a=dict(type='int', default=1), b=dict(type='str'), c=dict(type='bool', default=True))
        assert _module_wrapper.spec_defaults(spec) == dict(a=1, b=None, c=True)
        assert _module_wrapper.spec_defaults(spec, b='x', c=False) == dict(a=1, b='x', c=False)
        assert spec['a'] == dict(type='int', default=1)  # the spec itself is untouched

    def test_module_gets_the_common_uri_option(self, fake_libvirt, module_exits):
        with patch_module_args(dict(uri='qemu:///session')):
            kvm = _module_wrapper.KvmopsModule(dict(), supports_check_mode=True)
        assert isinstance(kvm, _module_wrapper.KvmopsModule)
        assert kvm.params['uri'] == 'qemu:///session'

    def test_run_success_exits_and_closes(self, fake_libvirt, module_exits):
        kvm = new_module()

        def manager(k):
            k.client.lookup_domain(name='vm1')
            k.client.open_peer('qemu+tcp://b/system')
            return dict(changed=True, domain='vm1')

        with pytest.raises(ExitJson) as info:
            kvm.run(manager)
        assert info.value.kwargs == dict(changed=True, domain='vm1')
        assert [c.close_calls for c in fake_libvirt.connections] == [1, 1]

    def test_run_defaults_changed_false(self, fake_libvirt, module_exits):
        with pytest.raises(ExitJson) as info:
            new_module().run(lambda k: None)
        assert info.value.kwargs == dict(changed=False)

    def test_run_turns_typed_error_into_fail_json(self, fake_libvirt, module_exits):
        kvm = new_module()

        def manager(k):
            k.client.lookup_domain(name='ghost')

        with pytest.raises(FailJson) as info:
            kvm.run(manager)
        result = info.value.kwargs
        assert result['msg'] == "No domain with name 'ghost' on qemu:///system"
        assert result['changed'] is False
        assert result['remedy']
        assert result['name'] == 'ghost'
        assert result['libvirt_error_code'] == 42
        assert fake_libvirt.connections[0].close_calls == 1

    def test_run_translates_escaped_libvirt_error(self, fake_libvirt, module_exits):
        def manager(k):
            raise FakeLibvirtError('internal', code=1)

        with pytest.raises(FailJson) as info:
            new_module().run(manager)
        assert info.value.kwargs['msg'].endswith('failed: internal')
        assert info.value.kwargs['changed'] is False

    def test_run_closes_on_unexpected_error(self, fake_libvirt, module_exits):
        kvm = new_module()

        def manager(k):
            k.client.conn
            raise KeyError('bug')

        with pytest.raises(KeyError):
            kvm.run(manager)
        assert fake_libvirt.connections[0].close_calls == 1

    def test_close_problems_become_warnings(self, fake_libvirt, module_exits, monkeypatch):
        kvm = new_module()
        warnings = []
        monkeypatch.setattr(kvm.module, 'warn', warnings.append)

        def manager(k):
            k.client.conn.close_error = RuntimeError('gone')
            return {}

        with pytest.raises(ExitJson):
            kvm.run(manager)
        assert warnings == ['Closing libvirt connection failed: qemu:///system: gone']

    def test_fail_json_output_is_json(self, fake_libvirt, capsys):
        """End to end through the real fail_json: the module prints JSON and exits 1."""
        def manager(k):
            raise _errors.MigrationError('Migration of vm1 failed', remedy='Check the network',
                                         details=dict(phase='perform', changed=True))

        with patch_module_args({}):
            kvm = _module_wrapper.KvmopsModule(argument_spec={})
            with pytest.raises(SystemExit) as info:
                kvm.run(manager)
        assert info.value.code == 1
        result = json.loads(capsys.readouterr().out)
        assert result['failed'] is True
        assert result['changed'] is False
        assert result['msg'] == 'Migration of vm1 failed'
        assert result['remedy'] == 'Check the network'
        assert result['phase'] == 'perform'
        assert result['detail_changed'] is True


def test_remote_connections_get_keepalive_and_local_ones_do_not(fake_libvirt, monkeypatch):
    monkeypatch.setattr(_client, '_EVENT_LOOP_STARTED', [])
    client = _client.LibvirtClient(uri='qemu:///system')
    assert not hasattr(client.conn, 'keepalive')
    peer = client.open_peer('qemu+ssh://host-b/system')
    assert peer.keepalive == (_client.KEEPALIVE_INTERVAL_S, _client.KEEPALIVE_COUNT)
    assert fake_libvirt.event_loop == ['registered']
    client.open_peer('qemu+tls://host-c/system')
    assert fake_libvirt.event_loop == ['registered']  # one event loop per process


def test_reopen_if_dead_replaces_a_dead_connection_once(fake_libvirt):
    client = _client.LibvirtClient(uri='qemu:///system')
    first = client.conn
    assert client.reopen_if_dead('qemu:///system') is first
    first.isAlive = lambda: False
    second = client.reopen_if_dead('qemu:///system')
    assert second is not first and first.close_calls == 1
    assert client.open_uris == ['qemu:///system']


def test_a_shared_connection_is_used_but_never_closed_by_the_borrower(fake_libvirt):
    owner = _client.LibvirtClient(uri='qemu+ssh://host-b/system')
    shared = owner.conn
    borrower = _client.LibvirtClient(uri='qemu:///system')
    borrower.share('qemu+ssh://host-b/system', shared)
    assert borrower.open_peer('qemu+ssh://host-b/system') is shared
    assert fake_libvirt.opened == ['qemu+ssh://host-b/system']  # no second handshake
    local = borrower.conn
    assert borrower.close() == []
    assert shared.close_calls == 0 and local.close_calls == 1
    assert borrower.open_uris == []
    owner.close()
    assert shared.close_calls == 1


def test_sharing_does_not_replace_a_connection_the_client_has(fake_libvirt):
    client = _client.LibvirtClient(uri='qemu:///system')
    own = client.open_peer('qemu+ssh://host-b/system')
    other = _client.LibvirtClient(uri='qemu+ssh://host-b/system').conn
    client.share('qemu+ssh://host-b/system', other)
    assert client.open_peer('qemu+ssh://host-b/system') is own
    client.close()
    assert own.close_calls == 1 and other.close_calls == 0


def test_a_dead_shared_connection_is_replaced_by_an_own_one_and_left_to_its_owner(fake_libvirt):
    shared = _client.LibvirtClient(uri='qemu+ssh://host-b/system').conn
    client = _client.LibvirtClient(uri='qemu:///system')
    client.share('qemu+ssh://host-b/system', shared)
    shared.isAlive = lambda: False
    fresh = client.reopen_if_dead('qemu+ssh://host-b/system')
    assert fresh is not shared and shared.close_calls == 0
    client.close()
    assert fresh.close_calls == 1 and shared.close_calls == 0
