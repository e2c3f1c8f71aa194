# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Measure running guests' memory dirty rates through libvirt (client layer; private module_utils).

:func:`measure_dirty_rates` asks QEMU, through ``virDomainStartDirtyRateCalc`` in page-sampling
mode (libvirt >= 7.2, QEMU >= 5.2), to sample every given guest's memory at the same time for
``seconds``, then reads the results from the domain statistics
(``VIR_DOMAIN_STATS_DIRTYRATE``: ``dirtyrate.calc_status``, ``.megabytes_per_second``,
``.calc_period``, ``.calc_start_time``, ``.calc_mode``).  Nothing is migrated and the guest is not
slowed: page sampling hashes 512 sampled pages per GiB (QEMU's default) at the start and the end of
the period (dirty-ring and dirty-bitmap modes need KVM or log dirty pages, so they are not used).

Bounded: every guest is measured at once, the whole call waits at most ``seconds + grace_s``
(by the monotonic ``_waiter``) and reports its own duration; a guest whose result is not there
by then is reported ``timeout``, never waited for.  A guest that cannot be measured is reported
with why: ``unsupported`` (libvirt or QEMU too old), ``paused``, ``not_running``, ``error``.

The same statistics call also reads the vCPU times, so each result carries the share of its
vCPUs' time the guest was busy: an upper bound of ``GuestLoad.writer_cpu_share`` (a guest busy 5 %
of the time cannot need more than 5 % to dirty what it dirties).

A 1-second sample says little about the guest's working set: a writer that fills a 96 MiB set at
64 MiB/s reads 64 MiB/s, and so does one that sweeps its whole memory.  :func:`probe_working_sets`
samples again for ``PROBE_FACTOR`` times as long and :func:`combine_samples` compares the two: if
the longer period dirtied clearly less than its length times the short one's rate, the set
saturated and its size is what the longer period dirtied; otherwise both samples are pooled into
one rate with twice the precision.  The forecast of an evacuation and the preflight use it for
guests whose history does not give a working set, ``strategy: auto`` for a guest it would refuse.

The pure helpers (``*_from_stats``, ``combine_samples``) are unit-tested without libvirt.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace

from ansible_collections.kvmops.migration.plugins.module_utils._errors import (
    OperationTimeoutError,
    is_libvirt_error,
    libvirt_error_details,
)
from ansible_collections.kvmops.migration.plugins.module_utils._host_facts import library_version
from ansible_collections.kvmops.migration.plugins.module_utils._waiter import Waiter
from ansible_collections.kvmops.migration.plugins.module_utils._libvirt_constants import (
    VIR_DOMAIN_DIRTYRATE_MEASURED,
    VIR_DOMAIN_DIRTYRATE_MODE_PAGE_SAMPLING,
    VIR_DOMAIN_PAUSED,
    VIR_DOMAIN_RUNNING,
    VIR_DOMAIN_STATS_DIRTYRATE,
    VIR_DOMAIN_STATS_VCPU,
    VIR_ERR_NO_SUPPORT,
    VIR_ERR_OPERATION_INVALID,
    VIR_ERR_OPERATION_UNSUPPORTED,
)

MIB = 1024 * 1024
LIBVIRT_MIN_VERSION = 7002000  # virDomainStartDirtyRateCalc and VIR_DOMAIN_STATS_DIRTYRATE
STATS = VIR_DOMAIN_STATS_DIRTYRATE | VIR_DOMAIN_STATS_VCPU

DEFAULT_SECONDS = 1
DEFAULT_GRACE_S = 1.5
POLL_INTERVAL_S = 0.1
_STATUS_NAMES = {'unstarted': 0, 'measuring': 1, 'measured': 2}
# QEMU's page sampling hashes 512 pages per GiB of guest memory (its sample-pages default, which
# libvirt does not change): one sampled page stands for 2 MiB, so a sample counts dirtied memory in
# 2 MiB steps and its relative error is about 1/sqrt(count) (a 2 MiB/s writer can read 8 MiB/s).
SAMPLED_BYTES_PER_PAGE = 2 * MIB
# The second, longer sample of probe_working_sets: three times the first, so that a set that
# saturates reads well under three times the first count (measured on the lab: a 64 MiB/s writer
# in a 96 MiB set read 52-68 MiB in 1 s and 84-114 MiB in 3 s; in 2 s it read 84-110 MiB, too
# close to twice the first sample to tell apart from noise).
PROBE_FACTOR = 3
# One-sided z-score above which the longer sample's shortfall is not sampling noise (5 %).
SATURATION_Z = 1.645
_UNSUPPORTED_CODES = (VIR_ERR_NO_SUPPORT, VIR_ERR_OPERATION_UNSUPPORTED)


@dataclass(frozen=True)
class DirtyRateResult:
    """One guest's measurement.  ``status``: measured, unsupported, paused, not_running, timeout,
    error; ``message`` says why there is no rate.  ``measured_at``: epoch seconds of the reading.
    After :func:`probe_working_sets`: ``samples`` holds each sample's ``[seconds, bytes/s]``,
    ``dirty_rate_bps`` their combination and ``working_set_bytes`` the set they show saturated
    (None: not saturated, or not probed)."""

    name: str
    status: str
    dirty_rate_bps: float | None = None
    calc_period_s: int | None = None
    mode: str | None = None
    vcpu_busy_share: float | None = None
    measured_at: float | None = None
    message: str = ''
    working_set_bytes: float | None = None
    samples: tuple = ()

    def as_dict(self) -> dict:
        view = asdict(self)
        view['samples'] = [list(sample) for sample in self.samples]  # as a module's JSON result gives them
        return view


@dataclass(frozen=True)
class DirtyRateReport:
    """All guests' results and what the measuring cost (``elapsed_s``, at most ``budget_s`` plus
    the libvirt calls' own latency)."""

    results: tuple
    seconds: int
    budget_s: float
    elapsed_s: float
    probe_seconds: int = 0

    def result(self, name) -> DirtyRateResult | None:
        return next((result for result in self.results if result.name == name), None)

    def as_dict(self) -> dict:
        return {'seconds': self.seconds, 'probe_seconds': self.probe_seconds, 'budget_s': self.budget_s,
                'elapsed_s': round(self.elapsed_s, 3), 'results': [result.as_dict() for result in self.results]}


# ---------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------

def calc_status_from_stats(stats) -> int | None:
    """``dirtyrate.calc_status`` as virDomainDirtyRateStatus (libvirt gives an int; a name is accepted)."""
    status = stats.get('dirtyrate.calc_status')
    if isinstance(status, str):
        return _STATUS_NAMES.get(status.strip().lower())
    return None if status is None else int(status)


def dirty_rate_from_stats(stats) -> dict | None:
    """The finished measurement in ``stats`` (one ``domainListGetStats`` dict), or None."""
    if calc_status_from_stats(stats) != VIR_DOMAIN_DIRTYRATE_MEASURED or 'dirtyrate.megabytes_per_second' not in stats:
        return None
    period = stats.get('dirtyrate.calc_period')
    return {'dirty_rate_bps': float(stats['dirtyrate.megabytes_per_second']) * MIB,  # MiB/s, despite the name
            'calc_period_s': None if period is None else int(period),
            'mode': stats.get('dirtyrate.calc_mode') or 'page-sampling',  # calc_mode: libvirt >= 8.1
            'start_time': stats.get('dirtyrate.calc_start_time')}


def vcpu_time_from_stats(stats) -> tuple | None:
    """(total vCPU time in ns, number of vCPUs) from ``vcpu.<n>.time``, or None if not reported."""
    times = [value for key, value in stats.items()
             if key.startswith('vcpu.') and key.endswith('.time') and key.count('.') == 2]
    return (sum(times), len(times)) if times else None


def busy_share(before, after, elapsed_s) -> float | None:
    """Share of its vCPUs' time the guest used between two ``vcpu_time_from_stats`` readings."""
    if not before or not after or elapsed_s <= 0 or after[1] == 0:
        return None
    share = (after[0] - before[0]) / (elapsed_s * 1e9 * after[1])
    return round(min(1.0, max(0.0, share)), 3)


def is_fresh(before_stats, after_stats) -> bool:
    """True when ``after_stats`` holds a measurement that was not already there before ours.

    ``calc_start_time`` is QEMU's monotonic clock in seconds, not comparable with ours, so the
    test is that it changed.  A calculation already running when ours was asked for (QEMU then
    ignores ours) counts: it started less than its period ago.
    """
    if dirty_rate_from_stats(after_stats) is None:
        return False
    if calc_status_from_stats(before_stats) != VIR_DOMAIN_DIRTYRATE_MEASURED:
        return True
    return before_stats.get('dirtyrate.calc_start_time') != after_stats.get('dirtyrate.calc_start_time')


@dataclass(frozen=True)
class SampleEstimate:
    """What two samples of one guest say: its dirty rate and, when the longer one shows the set
    saturated, its working set (None otherwise); ``z``: the saturation test's score."""

    rate_bps: float
    working_set_bytes: float | None
    z: float


def combine_samples(short_bps, short_s, long_bps, long_s) -> SampleEstimate:
    """Combine a short sample and a longer one (rates in bytes/s over periods in seconds).

    Without saturation the longer period dirties ``long_s / short_s`` times what the short one
    did.  Counting in sampled pages (Poisson counts of mean m and m x k, k = long_s / short_s), the
    shortfall ``k x n_short - n_long`` has variance about (k^2 + k) x m, m estimated from both
    counts pooled; a shortfall over SATURATION_Z standard deviations is saturation.  The set then
    holds what the longer period dirtied (a sequential writer fills it exactly; a random one
    leaves some pages of it untouched, so the figure is a floor) and the rate is the short
    sample's.  Otherwise the two are pooled: dirtied bytes over seconds."""
    if short_s <= 0 or long_s <= short_s:
        raise ValueError('the long sample must be longer than the short one, got %r and %r s' % (short_s, long_s))
    short_set, long_set = short_bps * short_s, long_bps * long_s
    k = float(long_s) / short_s
    n_short, n_long = short_set / SAMPLED_BYTES_PER_PAGE, long_set / SAMPLED_BYTES_PER_PAGE
    mean = (n_short + n_long) / (1 + k)
    z = (k * n_short - n_long) / math.sqrt((k * k + k) * mean) if mean > 0 else 0.0
    if z >= SATURATION_Z:
        return SampleEstimate(rate_bps=float(short_bps), working_set_bytes=float(max(long_set, short_set)), z=z)
    return SampleEstimate(rate_bps=(short_set + long_set) / (short_s + long_s), working_set_bytes=None, z=z)


# ---------------------------------------------------------------------------
# The measurement
# ---------------------------------------------------------------------------

def resident_bytes(dom):
    """The QEMU process's resident memory (libvirt's memory stat ``rss``, KiB, as bytes), None when
    unknown.  Every prediction takes its floor of the guest's zero pages from it
    (``_strategy.guest_load``): virt_migrate's, the preflight's and the evacuation forecast's."""
    try:
        rss = dom.memoryStats().get('rss')
    except Exception:  # pylint: disable=broad-except
        return None  # an older libvirt or a stopped guest: no estimate, the safe assumption stays
    return rss * 1024 if rss else None


def _failure(name, exc, doing):
    """A result for a libvirt error raised while ``doing``; anything else propagates."""
    if not is_libvirt_error(exc):
        raise exc
    info = libvirt_error_details(exc)
    if info['libvirt_error_code'] in _UNSUPPORTED_CODES:
        return DirtyRateResult(name, 'unsupported', message='%s: not supported by this hypervisor (%s); QEMU 5.2 or '
                               'later is needed' % (doing, info['libvirt_error_message']))
    if info['libvirt_error_code'] == VIR_ERR_OPERATION_INVALID:
        return DirtyRateResult(name, 'not_running', message='%s: %s' % (doing, info['libvirt_error_message']))
    return DirtyRateResult(name, 'error', message='%s failed: %s' % (doing, info['libvirt_error_message']))


def _state_result(name, state):
    if state == VIR_DOMAIN_PAUSED:
        return DirtyRateResult(name, 'paused', message='paused: a paused guest dirties nothing, so a measurement '
                               'would say nothing about its load once it runs; migration history is used if any')
    return DirtyRateResult(name, 'not_running', message='not running: only a running guest has a dirty rate')


def _stats_by_name(conn, doms):
    return dict((dom.name(), stats) for dom, stats in conn.domainListGetStats(doms, STATS))


def measure_dirty_rates(domains, seconds=DEFAULT_SECONDS, conn=None, grace_s=DEFAULT_GRACE_S,
                        clock=time.monotonic, wall_clock=time.time, sleep=time.sleep) -> DirtyRateReport:
    """Measure the dirty rate of every ``virDomain`` in ``domains`` at once, for ``seconds``.

    ``conn``: their connection (default: the first domain's).  Never raises for one guest's
    problem: each result says what happened.  ``clock``/``sleep``/``wall_clock`` are injectable.
    """
    seconds = int(seconds)
    if seconds < 1:
        raise ValueError('seconds must be at least 1 (QEMU measures whole seconds), got %r' % (seconds,))
    waiter = Waiter(seconds + grace_s, interval_s=POLL_INTERVAL_S, clock=clock, sleep=sleep)
    domains = list(domains)
    results, pending = {}, {}

    def report():
        ordered = tuple(results[dom.name()] for dom in domains)
        return DirtyRateReport(results=ordered, seconds=seconds, budget_s=seconds + grace_s, elapsed_s=waiter.elapsed())

    if not domains:
        return report()
    conn = conn or domains[0].connect()
    version = library_version(conn)
    if version is not None and version < LIBVIRT_MIN_VERSION:
        for dom in domains:
            results[dom.name()] = DirtyRateResult(dom.name(), 'unsupported', message=(
                'libvirt %d.%d.%d on the host has no dirty-rate measurement (virDomainStartDirtyRateCalc came with '
                '7.2.0)' % (version // 1000000, version // 1000 % 1000, version % 1000)))
        return report()
    for dom in domains:
        try:
            state = dom.state()[0]
        except Exception as exc:  # pylint: disable=broad-except
            results[dom.name()] = _failure(dom.name(), exc, 'reading the state')
            continue
        if state == VIR_DOMAIN_RUNNING:
            pending[dom.name()] = dom
        else:
            results[dom.name()] = _state_result(dom.name(), state)
    before, before_t = {}, clock()
    if pending:
        try:
            before = _stats_by_name(conn, list(pending.values()))
        except Exception as exc:  # pylint: disable=broad-except
            for name in pending:
                results[name] = _failure(name, exc, 'reading the domain statistics')
            pending.clear()
    for name, dom in list(pending.items()):
        try:
            dom.startDirtyRateCalc(seconds, VIR_DOMAIN_DIRTYRATE_MODE_PAGE_SAMPLING)
        except AttributeError:
            results[name] = DirtyRateResult(name, 'unsupported', message=(
                'the libvirt Python bindings here have no startDirtyRateCalc (libvirt-python 7.2 or later is needed)'))
            del pending[name]
        except Exception as exc:  # pylint: disable=broad-except
            results[name] = _failure(name, exc, 'starting the dirty-rate calculation')
            del pending[name]
    if pending:
        # No result can exist before the period has passed: sleep through it, then poll.
        sleep(min(float(seconds), waiter.remaining()))

        def collect():
            after = _stats_by_name(conn, list(pending.values()))
            now = clock()
            for name in list(pending):
                stats = after.get(name, {})
                if is_fresh(before.get(name, {}), stats):
                    figures = dirty_rate_from_stats(stats)
                    share = busy_share(vcpu_time_from_stats(before.get(name, {})), vcpu_time_from_stats(stats),
                                       now - before_t)
                    results[name] = DirtyRateResult(name, 'measured', dirty_rate_bps=figures['dirty_rate_bps'],
                                                    calc_period_s=figures['calc_period_s'], mode=figures['mode'],
                                                    vcpu_busy_share=share, measured_at=wall_clock())
                    del pending[name]
            return not pending

        try:
            waiter.wait_until(collect, description='dirty-rate results')
        except OperationTimeoutError:
            pass
        except Exception as exc:  # pylint: disable=broad-except
            for name in list(pending):
                results[name] = _failure(name, exc, 'reading the dirty-rate results')
            pending.clear()
    for name in pending:
        results[name] = DirtyRateResult(name, 'timeout', message=(
            'no result within %.1f s (measuring %d s): the host may be overloaded; the prediction falls back to '
            'migration history' % (seconds + grace_s, seconds)))
    return report()


def measured_rate(report, name):
    """The rate ``report`` measured for guest ``name`` (bytes/s), None when it measured none."""
    result = report.result(name) if report is not None else None
    return result.dirty_rate_bps if result is not None and result.status == 'measured' else None


def probe_working_sets(domains, first, seconds=None, measure=None) -> DirtyRateReport:
    """Sample again, for ``seconds`` (default PROBE_FACTOR times ``first``'s period), the guests of ``domains`` (virDomain) whose result in
    ``first`` (a DirtyRateReport) is ``measured``, all at once, and return ``first`` with those
    results combined (:func:`combine_samples`); a guest whose second sample failed keeps its
    first result.  The report's ``elapsed_s`` and ``budget_s`` count both measurements.
    ``measure``: how to sample (default :func:`measure_dirty_rates`; its signature)."""
    wanted = [dom for dom in domains if measured_rate(first, dom.name())]  # a guest dirtying nothing has no set
    if not wanted:
        return first
    seconds = seconds or PROBE_FACTOR * first.seconds
    second = (measure or measure_dirty_rates)(wanted, seconds=seconds)
    results = []
    for result in first.results:
        again = second.result(result.name)
        if again is not None and again.status == 'measured':
            short_s = result.calc_period_s or first.seconds
            long_s = again.calc_period_s or seconds
            estimate = combine_samples(result.dirty_rate_bps, short_s, again.dirty_rate_bps, long_s)
            # The higher busy share: it bounds what the writer needs, and more is the safe side.
            shares = [share for share in (result.vcpu_busy_share, again.vcpu_busy_share) if share is not None]
            result = replace(result, dirty_rate_bps=estimate.rate_bps, working_set_bytes=estimate.working_set_bytes,
                             samples=((short_s, result.dirty_rate_bps), (long_s, again.dirty_rate_bps)),
                             vcpu_busy_share=max(shares) if shares else None, measured_at=again.measured_at)
        results.append(result)
    return replace(first, results=tuple(results), probe_seconds=seconds, budget_s=first.budget_s + second.budget_s,
                   elapsed_s=first.elapsed_s + second.elapsed_s)
