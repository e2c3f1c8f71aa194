# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""refresh_pool: a pool busy with another job (e.g. another migration's storage probe) is waited for;
a pool libvirt stopped because its refresh failed is started again. read_host_file: another host's
small file through libvirt."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import libvirt
import pytest

from ansible_collections.kvmops.migration.plugins.module_utils._errors import KvmopsError
from ansible_collections.kvmops.migration.plugins.module_utils._storage import (
    dir_pool_xml,
    parse_pool_xml,
    read_host_file,
    refresh_pool,
    volume_format,
    volume_xml,
)

BUSY = RuntimeError("internal error: pool 'images' has asynchronous jobs running.")


class Pool:
    """A pool as libvirt runs it: a refresh that fails (other than on a busy pool) stops it."""

    def __init__(self, *errors, active=True, start_error=None):
        self.errors = list(errors)
        self.calls = 0
        self.active = active
        self.starts = 0
        self.start_error = start_error

    def isActive(self):
        return int(self.active)

    def create(self, flags):
        assert flags == 0
        if self.start_error:
            raise self.start_error
        self.starts += 1
        self.active = True

    def refresh(self, flags):
        assert flags == 0
        self.calls += 1
        if not self.active:
            raise RuntimeError("storage pool 'images' is not active")
        if self.errors:
            error = self.errors.pop(0)
            if error is not BUSY:
                self.active = False
            raise error


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_a_busy_pool_is_refreshed_once_the_other_job_is_done():
    pool, clock = Pool(BUSY, BUSY), Clock()
    refresh_pool(pool, timeout_s=10, interval_s=0.1, clock=clock, sleep=clock.sleep)
    assert pool.calls == 3 and clock.now == pytest.approx(0.2)


def test_other_errors_are_not_waited_for():
    pool, clock = Pool(RuntimeError('cannot open directory /x: No such file or directory')), Clock()
    refresh_pool(pool, clock=clock, sleep=clock.sleep)  # started again, refreshed: see below
    assert clock.now == 0


def test_a_pool_busy_for_longer_than_the_timeout_raises_the_busy_error():
    pool, clock = Pool(*[BUSY] * 100), Clock()
    with pytest.raises(RuntimeError, match='asynchronous jobs running'):
        refresh_pool(pool, timeout_s=1, interval_s=0.25, clock=clock, sleep=clock.sleep)
    assert pool.calls == 5


STALE = RuntimeError("cannot read header '/var/lib/libvirt/images/.kvmops-probe-e4dd0238fe4a': Stale file handle")


def test_a_pool_stopped_by_a_failed_refresh_is_started_again_and_refreshed():
    """Another host deleted a file while this refresh read it: libvirt stopped the pool (seen on the
    lab during an evacuation, and every later migration to that host then failed)."""
    pool, clock = Pool(STALE), Clock()
    refresh_pool(pool, clock=clock, sleep=clock.sleep)
    assert pool.active and pool.starts == 1 and pool.calls == 2


def test_a_second_failure_is_raised_and_a_pool_that_was_stopped_is_left_stopped():
    pool, clock = Pool(STALE, STALE), Clock()
    with pytest.raises(RuntimeError, match='Stale file handle'):
        refresh_pool(pool, clock=clock, sleep=clock.sleep)
    assert pool.starts == 1 and pool.calls == 2
    stopped = Pool(active=False)
    with pytest.raises(RuntimeError, match='not active'):
        refresh_pool(stopped, clock=clock, sleep=clock.sleep)
    assert stopped.starts == 0 and not stopped.active


def test_a_pool_that_cannot_be_started_again_raises_the_refresh_error():
    pool, clock = Pool(STALE, start_error=RuntimeError('cannot open directory')), Clock()
    with pytest.raises(RuntimeError, match='Stale file handle'):
        refresh_pool(pool, clock=clock, sleep=clock.sleep)


def test_storage_probes_of_one_process_run_one_at_a_time(monkeypatch):
    """An evacuation's migrations probe their storage at once; a probe file deleted while another
    host's refresh reads it makes that refresh fail, so the probes take turns."""
    import threading
    import time

    from ansible_collections.kvmops.migration.plugins.module_utils import _storage

    inside, most = [], []

    def probe(*args):
        inside.append(args)
        most.append(len(inside))
        time.sleep(0.01)
        inside.pop()
        return True

    monkeypatch.setattr(_storage, '_probe', probe)
    threads = [threading.Thread(target=_storage.is_shared, args=(None, None, '/d', 'host-a', 'host-%d' % i))
               for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(most) == 6 and max(most) == 1


# --- read_host_file: a small file of another host, through its libvirt connection ----------------
class LibvirtError(libvirt.libvirtError):
    """A libvirtError with the code and errno libvirt would give."""

    def __init__(self, msg, code=1, errno=0):
        super().__init__(msg)
        self.code, self.errno = code, errno

    def get_error_code(self):
        return self.code

    def get_error_domain(self):
        return 18  # VIR_FROM_STORAGE

    def get_error_message(self):
        return str(self)

    def get_int1(self):
        return self.errno


class Stream:
    def __init__(self, data):
        self.data, self.finished = data, False

    def recv(self, nbytes):
        chunk, self.data = self.data[:nbytes], self.data[nbytes:]
        return chunk

    def finish(self):
        self.finished = True


class Volume:
    def __init__(self, conn, data):
        self.conn, self.data = conn, data

    def info(self):
        return [0, len(self.data), 4096]

    def download(self, stream, offset, length, flags):
        assert (offset, length, flags) == (0, len(self.data), 0)
        stream.data = self.data


class DirPool:
    def __init__(self, conn, files):
        self.conn, self.files, self.destroyed = conn, files, False

    def storageVolLookupByName(self, name):
        if name not in self.files:
            raise LibvirtError("Storage volume not found: no storage vol with matching name '%s'" % name, code=50)
        return Volume(self.conn, self.files[name])

    def destroy(self):
        self.destroyed = True


class Host:
    """A host's libvirt with no pool defined: a transient one is made for the directory."""

    def __init__(self, directories):
        self.directories = directories
        self.pools, self.streams = [], []

    def listAllStoragePools(self, flags):
        return []

    def storagePoolCreateXML(self, xml, flags):
        path = xml.split('<path>')[1].split('</path>')[0]
        if path not in self.directories:
            raise LibvirtError("cannot open directory '%s': No such file or directory" % path, code=38, errno=2)
        self.pools.append(DirPool(self, self.directories[path]))
        return self.pools[-1]

    def newStream(self, flags):
        self.streams.append(Stream(b''))
        return self.streams[-1]


def test_read_host_file_reads_the_file_through_a_transient_pool_and_leaves_nothing():
    mark = b'{"host": "host-b", "maintenance": true}'
    host = Host({'/var/lib/libvirt/kvmops': {'maintenance.json': mark}})
    assert read_host_file(host, '/var/lib/libvirt/kvmops/maintenance.json', 'host-b') == mark
    assert [pool.destroyed for pool in host.pools] == [True]
    assert [stream.finished for stream in host.streams] == [True]


def test_read_host_file_without_the_directory_or_the_file_is_none():
    host = Host({'/var/lib/libvirt/kvmops': {'evacuation.json': b'{}'}})
    assert read_host_file(host, '/var/lib/libvirt/kvmops/maintenance.json', 'host-b') is None
    assert read_host_file(host, '/var/lib/libvirt/missing/maintenance.json', 'host-b') is None
    assert all(pool.destroyed for pool in host.pools)


def test_read_host_file_refuses_a_large_file_and_reports_other_errors_by_host():
    host = Host({'/d': {'big': b'x' * 100}})
    with pytest.raises(KvmopsError, match='100 bytes, more than the 10 expected'):
        read_host_file(host, '/d/big', 'host-b', limit=10)

    class Refusing(Host):
        def storagePoolCreateXML(self, xml, flags):
            raise LibvirtError("operation failed: Storage source conflict with pool: 'images'", code=9)
    with pytest.raises(KvmopsError, match='host-b.*Storage source conflict'):
        read_host_file(Refusing({}), '/d/maintenance.json', 'host-b')


# --- _probe_seen: the destination's side of the shared-storage probe --------------------------------
class StoppedPool:
    """A pool defined at a directory that libvirt stopped (its refresh failed while the mount was down)."""

    def __init__(self, name, path):
        self._name, self.path = name, path

    def XMLDesc(self, flags):
        return "<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>" % (self._name, self.path)

    def isActive(self):
        return 0

    def name(self):
        return self._name


class HostWithStoppedPool(Host):
    """libvirt refuses a second pool at the path of a defined one, running or not."""

    def __init__(self, pool):
        super().__init__({})
        self.stopped = pool

    def listAllStoragePools(self, flags):
        return [self.stopped]

    def storagePoolCreateXML(self, xml, flags):
        raise LibvirtError("operation failed: Storage source conflict with pool: '%s'" % self.stopped.name(), code=9)


def test_the_probe_is_seen_or_not_seen_through_a_transient_pool():
    from ansible_collections.kvmops.migration.plugins.module_utils._storage import _probe_seen
    host = Host({'/img': {'.kvmops-probe-1': b''}})
    assert _probe_seen(host, '/img', '.kvmops-probe-1', 'host-b') is True
    assert _probe_seen(host, '/img', '.kvmops-probe-2', 'host-b') is False  # another storage at the same path
    assert _probe_seen(host, '/elsewhere', '.kvmops-probe-1', 'host-b') is False  # no such directory there
    assert all(pool.destroyed for pool in host.pools)


def test_a_destination_whose_storage_cannot_be_read_is_an_error_not_unshared_storage():
    """Seen on the lab after a link outage: host-b's GlusterFS mount was down, libvirt stopped its pool,
    and the module said "not on storage shared with host-b" and suggested copying the disk."""
    from ansible_collections.kvmops.migration.plugins.module_utils._errors import MigrationError
    from ansible_collections.kvmops.migration.plugins.module_utils._storage import _probe_seen
    host = HostWithStoppedPool(StoppedPool('shared', '/var/lib/libvirt/images'))
    with pytest.raises(MigrationError) as err:
        _probe_seen(host, '/var/lib/libvirt/images', '.kvmops-probe-1', 'host-b')
    assert 'Cannot tell whether /var/lib/libvirt/images is shared storage: host-b cannot read it' in err.value.msg
    assert 'Storage source conflict' in err.value.msg and 'its storage pool shared there is stopped' in err.value.msg
    assert 'mounted and readable on host-b' in err.value.remedy


def test_pool_and_volume_xml_keep_names_and_paths_as_data():
    pool = ET.fromstring(dir_pool_xml("kvmops-<x>", "/srv/it's & <that>"))
    assert pool.get('type') == 'dir' and pool.findtext('name') == 'kvmops-<x>'
    assert pool.findtext('./target/path') == "/srv/it's & <that>"
    vol = ET.fromstring(volume_xml("it's.qcow2", 64 * 1024 * 1024, 'qcow2'))
    assert vol.findtext('name') == "it's.qcow2" and vol.findtext('capacity') == str(64 * 1024 * 1024)
    assert vol.find('capacity').get('unit') == 'bytes' and vol.find('./target/format').get('type') == 'qcow2'
    # Without an allocation libvirt allocates the whole capacity (as before); a sparse copy target asks for 0.
    assert vol.find('allocation') is None
    assert ET.fromstring(volume_xml('v', 4096, 'raw', allocation=0)).findtext('allocation') == '0'


def test_pool_and_volume_facts():
    xml = "<pool type='dir'><name>local</name><target><path>/var/lib/libvirt/local</path></target></pool>"
    assert parse_pool_xml(xml) == {'type': 'dir', 'target_path': '/var/lib/libvirt/local'}
    assert parse_pool_xml("<pool type='iscsi-direct'><name>x</name></pool>")['target_path'] is None
    assert parse_pool_xml(dir_pool_xml('p', '/srv/a&b')) == {'type': 'dir', 'target_path': '/srv/a&b'}
    assert volume_format("<volume><target><format type='qcow2'/></target></volume>") == 'qcow2'
    assert volume_format('<volume/>') is None
    assert volume_format(volume_xml('v', 1, 'qcow2')) == 'qcow2'
