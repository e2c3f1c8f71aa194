# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.kvmops.migration.plugins.module_utils._migration_flags import (
    MigrateFlag,
    MigrateParam,
    MigrationSpec,
    build_migration,
)
from ansible_collections.kvmops.migration.plugins.module_utils._migration_options import (
    DEFAULT_OPTIONS,
    MigrationOptionsError,
    validate_options,
    validate_options_before_connecting,
)

RUNNING_PERSISTENT = {"domain_active": True, "domain_persistent": True}
SHUT_OFF = {"domain_active": False, "domain_persistent": True}

LIVE_DEFAULT_FLAGS = ["AUTO_CONVERGE", "LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"]

# Constants newer than some libvirt releases still in use, with the first version
# (libvirt's major * 1e6 + minor * 1e3 + micro) that defines them.
INTRODUCED_IN = {
    "NON_SHARED_SYNCHRONOUS_WRITES": 8_000_000,
    "POSTCOPY_RESUME": 8_005_000,
    "ZEROCOPY": 8_005_000,
    "COMPRESSION_ZLIB_LEVEL": 9_004_000,
    "COMPRESSION_ZSTD_LEVEL": 9_004_000,
}


def options(**overrides):
    merged = dict(RUNNING_PERSISTENT)
    merged.update(overrides)
    return merged


def param_constants():
    return {name: value for name, value in vars(MigrateParam).items() if name.isupper()}


class TestAbi:
    def test_flag_values_are_libvirts_bit_positions(self):
        expected = [
            "LIVE", "PEER2PEER", "TUNNELLED", "PERSIST_DEST", "UNDEFINE_SOURCE", "PAUSED", "NON_SHARED_DISK",
            "NON_SHARED_INC", "CHANGE_PROTECTION", "UNSAFE", "OFFLINE", "COMPRESSED", "ABORT_ON_ERROR",
            "AUTO_CONVERGE", "RDMA_PIN_ALL", "POSTCOPY", "TLS", "PARALLEL", "NON_SHARED_SYNCHRONOUS_WRITES",
            "POSTCOPY_RESUME", "ZEROCOPY",
        ]
        assert [(flag.name, flag.value) for flag in MigrateFlag] == [(name, 1 << bit) for bit, name in enumerate(expected)]

    def test_param_keys(self):
        assert param_constants() == {
            "URI": "migrate_uri",
            "DEST_NAME": "destination_name",
            "DEST_XML": "destination_xml",
            "PERSIST_XML": "persistent_xml",
            "BANDWIDTH": "bandwidth",
            "BANDWIDTH_POSTCOPY": "bandwidth.postcopy",
            "GRAPHICS_URI": "graphics_uri",
            "LISTEN_ADDRESS": "listen_address",
            "MIGRATE_DISKS": "migrate_disks",
            "DISKS_PORT": "disks_port",
            "DISKS_URI": "disks_uri",
            "COMPRESSION": "compression",
            "COMPRESSION_MT_LEVEL": "compression.mt.level",
            "COMPRESSION_MT_THREADS": "compression.mt.threads",
            "COMPRESSION_MT_DTHREADS": "compression.mt.dthreads",
            "COMPRESSION_XBZRLE_CACHE": "compression.xbzrle.cache",
            "COMPRESSION_ZLIB_LEVEL": "compression.zlib.level",
            "COMPRESSION_ZSTD_LEVEL": "compression.zstd.level",
            "AUTO_CONVERGE_INITIAL": "auto_converge.initial",
            "AUTO_CONVERGE_INCREMENT": "auto_converge.increment",
            "PARALLEL_CONNECTIONS": "parallel.connections",
            "TLS_DESTINATION": "tls.destination",
        }

    def test_constants_match_installed_libvirt_python(self):
        libvirt = pytest.importorskip(
            "libvirt", reason="libvirt-python is not importable, so the local constants cannot be cross-checked"
        )
        installed = libvirt.getVersion()
        ours = [("VIR_MIGRATE_" + flag.name, flag.name, flag.value) for flag in MigrateFlag]
        ours += [("VIR_MIGRATE_PARAM_" + name, name, value) for name, value in param_constants().items()]
        for libvirt_name, short_name, value in ours:
            if hasattr(libvirt, libvirt_name):
                assert getattr(libvirt, libvirt_name) == value, libvirt_name
            else:
                # Only constants newer than the installed libvirt may be missing.
                assert installed < INTRODUCED_IN.get(short_name, 0), "%s missing from libvirt %d" % (libvirt_name, installed)


# id, option overrides, expected flag names, expected params, expected max_downtime_ms
VALID_CASES = [
    ("live defaults", {}, LIVE_DEFAULT_FLAGS, {}, None),
    (
        "live without auto-converge, kept on source",
        {"auto_converge": False, "persistent": False, "undefine_source": False},
        ["LIVE", "PEER2PEER"], {}, None,
    ),
    (
        "live tuned",
        {
            "bandwidth": 1000, "max_downtime": 300, "auto_converge_initial": 30, "auto_converge_increment": 15,
            "migrate_uri": "tcp://10.0.0.2", "listen_address": "10.0.0.2", "abort_on_error": True, "unsafe": True,
        },
        sorted(LIVE_DEFAULT_FLAGS + ["ABORT_ON_ERROR", "UNSAFE"]),
        {
            "bandwidth": 1000, "auto_converge.initial": 30, "auto_converge.increment": 15,
            "migrate_uri": "tcp://10.0.0.2", "listen_address": "10.0.0.2",
        },
        300,
    ),
    ("bandwidth 0 means unlimited", {"bandwidth": 0}, LIVE_DEFAULT_FLAGS, {}, None),
    (
        "postcopy allowed with its bandwidth",
        {"allow_postcopy": True, "postcopy_bandwidth": 200},
        sorted(LIVE_DEFAULT_FLAGS + ["POSTCOPY"]), {"bandwidth.postcopy": 200}, None,
    ),
    (
        "copy all storage, chosen disks",
        {"copy_storage": "all", "migrate_disks": ("vda", "vdb"), "disks_port": 49153},
        sorted(LIVE_DEFAULT_FLAGS + ["NON_SHARED_DISK"]), {"migrate_disks": ["vda", "vdb"], "disks_port": 49153}, None,
    ),
    (
        "incremental storage over a unix socket",
        {"copy_storage": "incremental", "disks_uri": "unix:///run/nbd.sock"},
        sorted(LIVE_DEFAULT_FLAGS + ["NON_SHARED_INC"]), {"disks_uri": "unix:///run/nbd.sock"}, None,
    ),
    (
        "tls with certificate name",
        {"tls": True, "tls_destination": "hv2.example.com"},
        sorted(LIVE_DEFAULT_FLAGS + ["TLS"]), {"tls.destination": "hv2.example.com"}, None,
    ),
    ("tunnelled", {"tunnelled": True}, sorted(LIVE_DEFAULT_FLAGS + ["TUNNELLED"]), {}, None),
    (
        "parallel with zstd",
        {"parallel_connections": 4, "compression": {"methods": ["zstd"], "level": 3}},
        sorted(LIVE_DEFAULT_FLAGS + ["COMPRESSED", "PARALLEL"]),
        {"parallel.connections": 4, "compression": ["zstd"], "compression.zstd.level": 3}, None,
    ),
    (
        "parallel with zlib",
        {"parallel_connections": 2, "compression": {"methods": ["zlib"], "level": 9}},
        sorted(LIVE_DEFAULT_FLAGS + ["COMPRESSED", "PARALLEL"]),
        {"parallel.connections": 2, "compression": ["zlib"], "compression.zlib.level": 9}, None,
    ),
    (
        "xbzrle and mt fully tuned",
        {"compression": {"methods": ["xbzrle", "mt"], "level": 0, "threads": 8, "dthreads": 2, "xbzrle_cache": 1 << 30}},
        sorted(LIVE_DEFAULT_FLAGS + ["COMPRESSED"]),
        {
            "compression": ["xbzrle", "mt"], "compression.mt.level": 0, "compression.mt.threads": 8,
            "compression.mt.dthreads": 2, "compression.xbzrle.cache": 1 << 30,
        },
        None,
    ),
    (
        "compression without methods names libvirt's default",
        {"compression": {}}, sorted(LIVE_DEFAULT_FLAGS + ["COMPRESSED"]), {"compression": ["xbzrle"]}, None,
    ),
    (
        "rename and new definitions",
        {"dest_name": "web1-new", "dest_xml": "<domain/>", "persistent_xml": "<domain/>", "graphics_uri": "spice://hv2"},
        LIVE_DEFAULT_FLAGS,
        {"destination_name": "web1-new", "destination_xml": "<domain/>", "persistent_xml": "<domain/>",
         "graphics_uri": "spice://hv2"},
        None,
    ),
    (
        "paused keeps transfer options, drops live-only ones",
        {"mode": "paused", "bandwidth": 500, "copy_storage": "all", "max_downtime": 100, "allow_postcopy": True},
        ["NON_SHARED_DISK", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"], {"bandwidth": 500}, None,
    ),
    ("offline", dict(SHUT_OFF, mode="offline"), ["OFFLINE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"], {}, None),
    (
        "offline keeps the source definition and renames",
        dict(SHUT_OFF, mode="offline", undefine_source=False, dest_name="db2"),
        ["OFFLINE", "PEER2PEER", "PERSIST_DEST"], {"destination_name": "db2"}, None,
    ),
    (
        "transient domain made persistent on the destination",
        {"domain_persistent": False, "undefine_source": False},
        ["AUTO_CONVERGE", "LIVE", "PEER2PEER", "PERSIST_DEST"], {}, None,
    ),
    (
        "None means default",
        {"mode": None, "persistent": None, "auto_converge": None, "bandwidth": None},
        LIVE_DEFAULT_FLAGS, {}, None,
    ),
]


@pytest.mark.parametrize(
    "overrides, flag_names, params, max_downtime_ms",
    [case[1:] for case in VALID_CASES],
    ids=[case[0] for case in VALID_CASES],
)
def test_build_migration(overrides, flag_names, params, max_downtime_ms):
    spec = build_migration(options(**overrides))
    assert spec.flag_names == flag_names
    assert spec.params == params
    assert spec.max_downtime_ms == max_downtime_ms
    assert spec.flags == sum(MigrateFlag[name] for name in flag_names)


# id, option overrides, substrings the message must contain (the problem and the fix)
ERROR_CASES = [
    ("unknown mode", {"mode": "warp"}, ["mode='warp'", "use one of live, paused, offline"]),
    ("unknown copy_storage", {"copy_storage": "some"}, ["copy_storage='some'", "use one of none, all, incremental"]),
    ("fact missing", {"domain_active": None}, ["domain_active is missing", "pass it as a boolean"]),
    ("live on shut-off domain", SHUT_OFF, ["mode=live needs a running guest", "use mode=offline"]),
    ("paused on shut-off domain", dict(SHUT_OFF, mode="paused"), ["mode=paused needs a running guest", "start the domain"]),
    ("offline on running domain", {"mode": "offline"}, ["domain is running", "use mode=live", "shut the domain down"]),
    (
        "offline with storage",
        dict(SHUT_OFF, mode="offline", copy_storage="all"),
        ["cannot copy storage (copy_storage=all)", "set copy_storage=none"],
    ),
    ("offline not persistent", dict(SHUT_OFF, mode="offline", persistent=False), ["no definition", "persistent=true"]),
    ("offline tunnelled", dict(SHUT_OFF, mode="offline", tunnelled=True), ["no data to tunnel", "tunnelled=false"]),
    (
        "undefine a transient domain",
        {"domain_persistent": False},
        ["domain is transient", "set undefine_source=false"],
    ),
    (
        "postcopy tunnelled",
        {"allow_postcopy": True, "tunnelled": True},
        ["allow_postcopy=true cannot be combined with tunnelled=true", "set allow_postcopy=false"],
    ),
    (
        "parallel tunnelled",
        {"parallel_connections": 4, "tunnelled": True},
        ["parallel_connections cannot be combined with tunnelled=true", "remove parallel_connections"],
    ),
    ("tls tunnelled", {"tls": True, "tunnelled": True}, ["tls=true cannot be combined", "set tls=false"]),
    (
        "storage tunnelled",
        {"copy_storage": "all", "tunnelled": True},
        ["copy_storage=all cannot be combined with tunnelled=true", "set tunnelled=false"],
    ),
    (
        "migrate_uri tunnelled",
        {"migrate_uri": "tcp://hv2", "tunnelled": True},
        ["migrate_uri cannot be combined with tunnelled=true", "remove migrate_uri"],
    ),
    (
        "migrate_disks without storage copy",
        {"migrate_disks": ["vda"]},
        ["migrate_disks is set but copy_storage=none", "set copy_storage=all"],
    ),
    ("disks_port without storage copy", {"disks_port": 49153}, ["disks_port is set", "or remove disks_port"]),
    ("migrate_disks not a list", {"copy_storage": "all", "migrate_disks": "vda"}, ["must be a list of disk target"]),
    ("negative bandwidth", {"bandwidth": -1}, ["bandwidth=-1 is out of range", "from 0 to 1000000 MiB/s"]),
    ("absurd bandwidth", {"bandwidth": 10 ** 9}, ["bandwidth=1000000000 is out of range"]),
    ("bool as bandwidth", {"bandwidth": True}, ["bandwidth=True is out of range"]),
    (
        "absurd postcopy bandwidth",
        {"allow_postcopy": True, "postcopy_bandwidth": 2_000_000},
        ["postcopy_bandwidth=2000000 is out of range"],
    ),
    ("postcopy bandwidth without postcopy", {"postcopy_bandwidth": 100}, ["set allow_postcopy=true"]),
    ("downtime zero", {"max_downtime": 0}, ["max_downtime=0 is out of range", "from 1 to 600000 ms"]),
    ("downtime huge", {"max_downtime": 600_001}, ["max_downtime=600001 is out of range"]),
    ("parallel zero", {"parallel_connections": 0}, ["parallel_connections=0 is out of range", "from 1 to 255"]),
    ("parallel too many", {"parallel_connections": 256}, ["parallel_connections=256 is out of range"]),
    ("throttle over 99", {"auto_converge_initial": 100}, ["auto_converge_initial=100 is out of range"]),
    (
        "throttle tuning without auto-converge",
        {"auto_converge": False, "auto_converge_increment": 10},
        ["auto_converge_increment tunes auto-convergence", "set auto_converge=true"],
    ),
    ("tls_destination without tls", {"tls_destination": "hv2"}, ["set tls=true"]),
    ("persistent_xml without persistence", {"persistent": False, "persistent_xml": "<domain/>"}, ["persistent=true"]),
    ("disks_port out of range", {"copy_storage": "all", "disks_port": 70000}, ["disks_port=70000 is out of range"]),
    ("compression not a dict", {"compression": "zstd"}, ["compression must be a dict"]),
    ("compression methods not a list", {"compression": {"methods": "zstd"}}, ["methods must be a list"]),
    ("unknown compression", {"compression": {"methods": ["lz4"]}}, ["lz4 unknown", "use xbzrle, mt, zlib, zstd"]),
    ("duplicate method", {"compression": {"methods": ["mt", "mt"]}}, ["lists a method twice"]),
    (
        "zstd without parallel",
        {"compression": {"methods": ["zstd"]}},
        ["zstd only works with parallel migration", "set parallel_connections"],
    ),
    (
        "xbzrle with parallel",
        {"parallel_connections": 2, "compression": {"methods": ["xbzrle"]}},
        ["xbzrle is not supported with parallel migration", "use zlib or zstd"],
    ),
    (
        "default method with parallel",
        {"parallel_connections": 2, "compression": {}},
        ["xbzrle is not supported with parallel migration"],
    ),
    (
        "zlib and zstd together",
        {"parallel_connections": 2, "compression": {"methods": ["zlib", "zstd"]}},
        ["choose zlib or zstd, not both"],
    ),
    ("mt level 10", {"compression": {"methods": ["mt"], "level": 10}}, ["compression.level (mt)=10", "from 0 to 9"]),
    (
        "zlib level 0",
        {"parallel_connections": 2, "compression": {"methods": ["zlib"], "level": 0}},
        ["compression.level (zlib)=0", "from 1 to 9"],
    ),
    (
        "zstd level 21",
        {"parallel_connections": 2, "compression": {"methods": ["zstd"], "level": 21}},
        ["compression.level (zstd)=21", "from 1 to 20"],
    ),
    ("level for xbzrle", {"compression": {"methods": ["xbzrle"], "level": 1}}, ["add one of them to methods"]),
    ("threads without mt", {"compression": {"threads": 4}}, ["compression.threads tunes the mt method"]),
    ("threads zero", {"compression": {"methods": ["mt"], "threads": 0}}, ["compression.threads=0 is out of range"]),
    ("dthreads too many", {"compression": {"methods": ["mt"], "dthreads": 256}}, ["compression.dthreads=256"]),
    ("cache without xbzrle", {"compression": {"methods": ["mt"], "xbzrle_cache": 1 << 20}}, ["add xbzrle to methods"]),
    (
        "cache too small",
        {"compression": {"xbzrle_cache": 2048}},
        ["xbzrle_cache=2048 is not a power of two of at least 4096 bytes", "use e.g. 268435456"],
    ),
    ("cache not a power of two", {"compression": {"xbzrle_cache": 3 << 20}}, ["xbzrle_cache=3145728 is not"]),
]


@pytest.mark.parametrize(
    "overrides, fragments", [case[1:] for case in ERROR_CASES], ids=[case[0] for case in ERROR_CASES]
)
def test_invalid_options_name_problem_and_fix(overrides, fragments):
    with pytest.raises(MigrationOptionsError) as caught:
        build_migration(options(**overrides))
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message
    assert isinstance(caught.value, ValueError)


def test_validate_options_returns_none_for_valid_options():
    assert validate_options(options()) is None


def test_all_problems_are_reported_at_once():
    with pytest.raises(MigrationOptionsError) as caught:
        validate_options(options(tunnelled=True, tls=True, allow_postcopy=True, bandwidth=-5))
    assert len(caught.value.problems) == 3
    assert str(caught.value).startswith("3 problems with the migration options: (1) ")


def test_structural_problems_stop_further_checks():
    with pytest.raises(MigrationOptionsError) as caught:
        validate_options({"mode": "live", "bandwidth": -1})
    assert caught.value.problems == [
        "the domain fact domain_active is missing: pass it as a boolean (read it from the source domain before "
        "building the migration).",
        "the domain fact domain_persistent is missing: pass it as a boolean (read it from the source domain before "
        "building the migration).",
    ]


class TestBeforeConnecting:
    """What can be refused before any host is contacted: the domain facts are not known yet."""

    @pytest.mark.parametrize("overrides, fragment", [
        ({"bandwidth": -1}, "bandwidth=-1 is out of range"),
        ({"tunnelled": True, "allow_postcopy": True}, "allow_postcopy=true cannot be combined with tunnelled=true"),
        ({"postcopy_bandwidth": 5}, "set allow_postcopy=true or remove it"),
        ({"mode": "offline", "copy_storage": "all"}, "mode=offline moves only the definition, it cannot copy"),
        ({"mode": "bogus"}, "mode='bogus' is not a migration mode"),
    ])
    def test_conflicts_that_do_not_depend_on_the_domain_are_refused(self, overrides, fragment):
        with pytest.raises(MigrationOptionsError) as caught:
            validate_options_before_connecting(dict(overrides))
        assert fragment in str(caught.value)

    @pytest.mark.parametrize("overrides", [
        {}, {"mode": None}, {"mode": "paused"}, {"mode": "offline"}, {"allow_postcopy": True, "postcopy_bandwidth": 5},
        {"undefine_source": True, "persistent": False},
    ])
    def test_options_valid_for_some_domain_pass(self, overrides):
        assert validate_options_before_connecting(dict(overrides)) is None

    def test_the_callers_options_are_not_modified(self):
        given = {"mode": "live", "bandwidth": 10}
        validate_options_before_connecting(given)
        assert given == {"mode": "live", "bandwidth": 10}


class TestNotes:
    def test_transient_on_destination_and_undefined_on_source_is_allowed_but_explained(self):
        spec = build_migration(options(persistent=False))
        assert spec.flag_names == ["AUTO_CONVERGE", "LIVE", "PEER2PEER", "UNDEFINE_SOURCE"]
        assert any("disappears when it shuts down" in note for note in spec.notes)

    def test_paused_lists_ignored_live_options(self):
        spec = build_migration(options(mode="paused", max_downtime=100, allow_postcopy=True))
        assert "mode=paused does not run pre-copy; ignored: max_downtime, allow_postcopy." in spec.notes

    def test_paused_with_defaults_mentions_no_ignored_option(self):
        spec = build_migration(options(mode="paused"))
        assert spec.notes == ["mode=paused pauses the guest for the whole transfer; its downtime is the transfer time."]

    def test_offline_lists_ignored_transfer_options(self):
        spec = build_migration(dict(SHUT_OFF, mode="offline", bandwidth=100, tls=True, max_downtime=50))
        assert spec.notes == ["mode=offline transfers no data; ignored: bandwidth, tls, max_downtime."]
        assert spec.params == {}

    def test_live_defaults_have_no_notes(self):
        assert build_migration(options()).notes == []


class TestSpec:
    def test_properties_follow_flags(self):
        spec = build_migration(options(allow_postcopy=True))
        assert spec.postcopy_enabled and spec.auto_converge_enabled
        spec = build_migration(options(auto_converge=False))
        assert not spec.postcopy_enabled and not spec.auto_converge_enabled

    def test_as_dict(self):
        spec = build_migration(options(bandwidth=10, max_downtime=200))
        assert spec.as_dict() == {
            "flags": int(MigrateFlag.LIVE | MigrateFlag.PEER2PEER | MigrateFlag.PERSIST_DEST
                         | MigrateFlag.UNDEFINE_SOURCE | MigrateFlag.AUTO_CONVERGE),
            "flag_names": LIVE_DEFAULT_FLAGS,
            "params": {"bandwidth": 10},
            "notes": [],
            "max_downtime_ms": 200,
        }

    def test_flags_is_a_plain_int(self):
        assert type(build_migration(options()).flags) is int  # pylint: disable=unidiomatic-typecheck

    def test_params_are_a_copy_of_the_callers_list(self):
        disks = ["vda"]
        spec = build_migration(options(copy_storage="all", migrate_disks=disks))
        disks.append("vdb")
        assert spec.params["migrate_disks"] == ["vda"]

    def test_unknown_option_keys_are_ignored(self):
        assert build_migration(options(name="web1", dest_uri="qemu+tls://hv2/system")).flag_names == LIVE_DEFAULT_FLAGS

    def test_spec_is_immutable(self):
        spec = MigrationSpec(flags=1, params={}, notes=[])
        with pytest.raises(AttributeError):
            spec.flags = 2


@given(
    mode=st.sampled_from(["live", "paused", "offline"]),
    active=st.booleans(),
    persistent_domain=st.booleans(),
    overrides=st.fixed_dictionaries(
        {},
        optional={
            "persistent": st.booleans(),
            "undefine_source": st.booleans(),
            "copy_storage": st.sampled_from(["none", "all", "incremental"]),
            "tunnelled": st.booleans(),
            "tls": st.booleans(),
            "allow_postcopy": st.booleans(),
            "auto_converge": st.booleans(),
            "parallel_connections": st.integers(-1, 300),
            "bandwidth": st.integers(-10, 2_000_000),
            "max_downtime": st.integers(-1, 700_000),
            "compression": st.fixed_dictionaries(
                {"methods": st.lists(st.sampled_from(["xbzrle", "mt", "zlib", "zstd"]), max_size=3)},
                optional={"level": st.integers(-1, 25), "threads": st.integers(0, 300)},
            ),
        },
    ),
)
def test_any_options_either_build_a_consistent_spec_or_explain_why_not(mode, active, persistent_domain, overrides):
    opts = dict(overrides, mode=mode, domain_active=active, domain_persistent=persistent_domain)
    try:
        spec = build_migration(opts)
    except MigrationOptionsError as error:
        assert error.problems and all(problem.endswith(".") for problem in error.problems)
        return
    flags = MigrateFlag(spec.flags)
    assert MigrateFlag.PEER2PEER in flags
    assert (MigrateFlag.LIVE in flags) == (mode == "live")
    assert (MigrateFlag.OFFLINE in flags) == (mode == "offline")
    assert not (MigrateFlag.POSTCOPY in flags and MigrateFlag.TUNNELLED in flags)
    assert not (MigrateFlag.NON_SHARED_DISK in flags and MigrateFlag.NON_SHARED_INC in flags)
    assert all(value is not None for value in spec.params.values())
    if mode == "offline":
        assert MigrateFlag.PERSIST_DEST in flags and not active


def test_defaults_table_covers_every_documented_option():
    documented = {
        "mode", "persistent", "undefine_source", "copy_storage", "migrate_disks", "migrate_uri", "listen_address",
        "bandwidth", "postcopy_bandwidth", "max_downtime", "compression", "parallel_connections", "tls",
        "tls_destination", "tunnelled", "auto_converge", "auto_converge_initial", "auto_converge_increment",
        "allow_postcopy", "unsafe", "abort_on_error", "dest_name", "dest_xml", "persistent_xml", "graphics_uri",
        "disks_port", "disks_uri",
    }
    assert set(DEFAULT_OPTIONS) == documented
