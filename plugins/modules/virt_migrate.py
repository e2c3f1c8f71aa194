#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: virt_migrate
short_description: Live, cold and offline migration of a libvirt guest that converges and never loses it
version_added: 0.1.0
description:
  - Moves a libvirt/KVM guest from the host the module runs on to another host.
  - C(live) migration runs peer to peer (the source libvirtd drives it) under a convergence
    policy that watches the job's statistics every O(poll_interval) seconds and at the end of
    every memory pass (libvirt's migration-iteration event); it raises the
    allowed downtime step by step up to O(max_downtime), lets QEMU throttle the guest
    (auto-converge), switches to post-copy only when O(allow_postcopy=true), and aborts
    cleanly at the completion timeout, with advice on what would make the guest converge.
  - Before a live job starts, with the default O(strategy=auto), the module predicts how each strategy would do
    from the guest's measured dirty rate and its migration history, starts the first one allowed that meets
    O(max_downtime) and O(timeout), or refuses before anything moves, saying what would work. The result carries
    the prediction beside the real figures, and each migration's figures are recorded in the guest's own
    metadata for the next prediction.
  - After every attempt, successful or not, the module looks at B(both) hosts and repairs
    what a failed attempt left behind (a paused source is resumed, an incoming copy on the
    destination is destroyed, a definition left on the source after a switch-over is
    removed), then reports where the guest runs and where it is defined. It never trusts
    the migration's return code alone.
  - Repairs never make the guest lost, duplicated or rolled back. Nothing is repaired while a
    migration or block job is active on either host (the task waits for it to end first). Once
    post-copy has started the source copy is never resumed (the destination has run and written
    to the disks since); an interrupted post-copy is reported with the operator procedure. A
    persistent definition exists at every instant (the destination is defined, from the source's
    own persistent definition with its secrets, before the source definition is removed), and the
    repair stops at the first step that fails.
  - One operation per guest at a time. The run holds a lock of the guest on the source host
    (C(<state_dir>/guests/<uuid>.lock)) from the first look to the last check; a second run for
    the same guest waits up to O(lock_timeout), then refuses naming the running operation. The
    migration is driven by a detached process on the source whether the task waits or not, so a
    module killed mid-run (an async timeout, a killed controller) does not leave a job nothing
    bounds; the driver applies the policy and the timeout and verifies the end, and the next run
    waits for it and returns its result. A job found running with no driver (its process was
    killed) is adopted by the next run, which watches it under its policy and timeout, then verifies it.
  - C(cold) migration is undone when a step after the shutdown fails (copy, definition, start on
    the destination); what the run made on the destination is removed and the guest is started
    again on the source, and a rollback that could not reach the destination is finished by the next run.
  - Idempotent. A guest already running (or, for O(mode=offline), defined) on the destination
    and absent from the source is reported as C(changed=false).
  - Bad input gets a clear message and changes nothing; check mode validates everything it
    can (flags, parameters, destination connection, storage) and reports the plan.
author:
  - kvmops.migration contributors (@kvmops)
extends_documentation_fragment:
  - kvmops.migration.connection
  - kvmops.migration.destination
  - kvmops.migration.state_dir
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Validates and connects to both hosts, returns the plan; moves nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
    details: Runs on the source hypervisor; needs libvirt-python there.
options:
  name:
    description: Name of the domain to migrate. One of O(name) or O(uuid) is required.
    type: str
  uuid:
    description: UUID of the domain to migrate.
    type: str
  mode:
    description:
      - C(live) moves the running guest while it keeps running (pre-copy, optionally post-copy).
      - C(cold) shuts the guest down (graceful, within O(shutdown_timeout), then destroyed if
        O(force_shutdown=true)), moves its definition, copies its disks that are not on storage
        both hosts share, starts it on the destination if it was running, and removes it from the source.
      - C(offline) moves only the definition of a shut-off domain.
      - C(paused) is libvirt's non-live migration (C(virsh migrate) without C(--live)) - the guest
        is paused for the whole transfer and resumed on the destination; it always finishes and
        its downtime is the transfer time.
    type: str
    choices: [live, cold, offline, paused]
    default: live
  persistent:
    description: Define the domain persistently on the destination (C(virsh migrate --persistent)).
    type: bool
    default: true
  undefine_source:
    description: Remove the definition from the source after a successful migration (C(--undefinesource)).
    type: bool
    default: true
  copy_storage:
    description:
      - Copy disks during a live migration (C(--copy-storage-all) / C(--copy-storage-inc)) for guests
        whose disks are not on shared storage. A storage pool at the disk's directory is created on the
        destination when it is missing, so libvirt can pre-create the volumes.
    type: str
    choices: [none, all, incremental]
    default: none
  remove_source_storage:
    description:
      - After a migration that copied disks (O(copy_storage) in live mode, non-shared disks in cold mode),
        delete the source copies of those disks - only once both hosts were checked and the guest runs
        (or, cold, is defined) on the destination. Without it the source images stay, and moving the guest
        back later with a storage copy is refused until they are removed.
    type: bool
    default: false
  migrate_disks:
    description: Target devices (for example V(vda)) to copy when O(copy_storage) is not V(none); default all writable disks.
    type: list
    elements: str
  migrate_uri:
    description:
      - Where the migration data stream goes, for example C(tcp://10.10.0.12) for a dedicated migration
        network. Default is the destination's host name as libvirt resolves it.
      - Only C(tcp://HOST[:PORT]) and C(rdma://HOST[:PORT]) are accepted (HOST a host name or an address, C([IPv6])).
    type: str
  listen_address:
    description: Address (or host name) the destination QEMU listens on for the incoming stream, for example V(10.10.0.12).
    type: str
  bandwidth:
    description: Bandwidth limit of the pre-copy phase in MiB/s; V(0) means unlimited.
    type: int
  postcopy_bandwidth:
    description: Bandwidth limit of the post-copy phase in MiB/s. Needs O(allow_postcopy=true).
    type: int
  postcopy_resume_after:
    description:
      - Seconds that a failed post-copy's stream (the guest split between the hosts) may make no progress, counted
        from when the destination answers again, before the task pauses it and resumes the migration on a new
        connection (RV(postcopy_recovery)). Until then QEMU's own stream may still recover by itself - after an
        outage TCP retransmits with a backoff of up to two minutes, hence the default.
      - Lower it where a broken stream is known to be dead at once (e.g. TCP gives up quickly on these hosts);
        the guest's vCPUs wait for the pages it still needs all that time.
    type: int
    default: 150
  max_downtime:
    description:
      - Upper bound, in milliseconds, of the pause at the end of a live migration. The policy starts
        below it and raises the downtime per memory pass, never above this bound.
    type: int
    default: 500
  compression:
    description: Compression of the migration stream.
    type: dict
    suboptions:
      methods:
        description: Methods; V(zlib) and V(zstd) need O(parallel_connections).
        type: list
        elements: str
        choices: [xbzrle, mt, zlib, zstd]
      level:
        description: Compression level of V(mt), V(zlib) or V(zstd).
        type: int
      threads:
        description: Compression threads (V(mt)).
        type: int
      dthreads:
        description: Decompression threads (V(mt)).
        type: int
      xbzrle_cache:
        description: Size of the xbzrle page cache in bytes.
        type: int
  parallel_connections:
    description: Number of parallel data connections (multifd, C(--parallel-connections)).
    type: int
  tls:
    description: Encrypt the data stream with QEMU's native TLS (C(--tls)); needs migration certificates on both hosts.
    type: bool
    default: false
  tunnelled:
    description: Carry the data through the libvirtd connection (C(--tunnelled)). Excludes post-copy, TLS and parallel connections.
    type: bool
    default: false
  auto_converge:
    description:
      - Let QEMU throttle the guest's vCPUs when memory passes stop shrinking (C(--auto-converge)).
        libvirt can only set this when the job starts; QEMU then engages it by itself when needed,
        and the module records when it did.
    type: bool
    default: true
  auto_converge_initial:
    description:
      - Initial CPU throttle in percent once auto-converge engages.
      - When not set, 50 (QEMU's own default of 20 takes minutes to matter when a memory pass lasts seconds).
    type: int
  auto_converge_increment:
    description:
      - Throttle increment in percent each time QEMU raises it (every second non-converging pass).
      - When not set, 25 (QEMU's default is 10).
    type: int
  allow_postcopy:
    description:
      - Allow the policy to switch to post-copy, by default after the first memory pass that leaves more than
        O(max_downtime) can send (O(policy.postcopy_start)), and in any case when pre-copy stalls. Post-copy always
        finishes, but a network failure during post-copy can freeze and lose the guest (its memory is split
        between the hosts), so it is never part of the default policy.
      - With O(precheck=true) (the default) a live migration with post-copy allowed is refused, before anything
        moves, between hosts of different QEMU releases (major.minor; check C(versions.postcopy)) - the destination
        reads the guest's device state only at the switch-over, and a refusal there costs the guest in post-copy
        (pre-copy fails safely instead).
    type: bool
    default: false
  unsafe:
    description: Migrate even if libvirt considers it unsafe (C(--unsafe)). Only when you know the storage is coherent.
    type: bool
    default: false
  policy:
    description: Tuning of the convergence policy; the defaults need no tuning.
    type: dict
    suboptions:
      downtime_steps:
        description: Number of steps from the first downtime to O(max_downtime).
        type: int
        default: 5
      stall_window:
        description: Memory passes over which progress is judged.
        type: int
        default: 3
      min_progress_ratio:
        description: A window whose smallest remaining size is not below this ratio of the earlier smallest is a stall.
        type: float
        default: 0.9
      postcopy_after_stalled_passes:
        description: Stalled passes (with downtime at its bound) before switching to post-copy, if allowed.
        type: int
        default: 2
      postcopy_start:
        description:
          - With O(allow_postcopy=true), when to switch to post-copy before any stall.
          - V(after_first_pass) - at the end of a memory pass whose dirty set does not fit in O(max_downtime) at the
            measured bandwidth (pre-copy would need another pass). This is what C(virsh migrate --postcopy
            --postcopy-after-precopy) does, except that a guest whose first pass leaves little to send finishes in
            pre-copy.
          - V(when_outpaced) - once the measured dirty rate is at least O(policy.min_progress_ratio) times the
            measured bandwidth (pre-copy cannot converge). QEMU's first dirty-rate figure can be low, so this can
            come a pass late.
          - V(when_stalled) - only after O(policy.postcopy_after_stalled_passes) stalled passes with the downtime
            at its bound (the rule that always applies).
          - No effect without O(allow_postcopy).
        type: str
        choices: [after_first_pass, when_outpaced, when_stalled]
        default: after_first_pass
      stalled_abort_passes:
        description: Stalled passes, with nothing left to try, before aborting early instead of waiting for O(timeout).
        type: int
        default: 12
  strategy:
    description:
      - How a live migration converges (the collection's docs/migration-policy.md explains the prediction and the choice).
      - V(auto) - before the job starts, measure the guest's dirty rate (libvirt's page sampling, for
        O(dirty_rate_seconds), nothing is migrated), take the bandwidth from the guest's earlier migrations without
        a bandwidth cap (its history, kept in its domain metadata) or else from O(bandwidth), predict every strategy,
        and start the first one that the options allow and that meets O(max_downtime) and O(timeout) - pre-copy,
        then auto-converge (O(auto_converge)), then post-copy (O(allow_postcopy)). When none does, the guest is
        sampled again for three times O(dirty_rate_seconds) first (a short sample counts in 2 MiB steps and cannot
        tell a small working set from the whole memory); if still none does, the task fails before anything moves
        and RV(decision) and RV(remedy) say what would work, unless O(try_anyway=true).
      - With V(auto) the levers allowed beyond the choice stay as safety nets (QEMU only throttles a guest that
        does not converge; post-copy only starts on a stall), and at every pass end the job's own figures are
        played forward again (RV(course)) - as soon as the chosen strategy will not meet the limits, post-copy
        starts (when allowed and it would) or the job is aborted, with what would work.
      - Without a dirty rate or a bandwidth (nothing measured, no history, no cap), or with a storage copy (the
        model covers memory only), V(auto) runs as V(adaptive); RV(strategy.note) says why.
      - V(precopy) (no throttle, no post-copy), V(auto_converge) and V(postcopy) (needs O(allow_postcopy=true)) run
        that strategy alone, and are refused like V(auto) when predicted not to meet the limits.
      - V(adaptive) predicts nothing - the policy decides pass by pass with every allowed lever, as before V(auto).
      - The strategies are for O(mode=live); other modes ignore V(auto) and refuse the others.
    type: str
    choices: [auto, precopy, auto_converge, postcopy, adaptive]
    default: auto
  try_anyway:
    description:
      - Start the migration even when the prediction says that no allowed strategy meets the limits (V(auto) then
        runs as V(adaptive), an explicit O(strategy) as named). The policy then aborts it at the limits, or switches
        to post-copy where that is allowed; no course check aborts it early.
    type: bool
    default: false
  dirty_rate_seconds:
    description:
      - Seconds (1 to 10) that libvirt samples the guest's dirty rate for the O(strategy) prediction; the
        measurement waits at most 1.5 s longer, and RV(dirty_rate) reports what it took. Before a refusal the
        guest is sampled again for three times as long (see O(strategy)).
    type: int
    default: 1
  timeout:
    description:
      - Seconds the migration may take before it is aborted (the completion timeout). Default
        120 s plus 60 s per GiB of memory (and of disks when copying storage).
      - Once post-copy has started the job is never aborted, as that would lose the guest. If libvirt's
        migration call has still not returned 60 s after this timeout, the task stops waiting for it,
        watches both hosts, and fails with RV(location.verdict) C(postcopy_split), touching neither half.
    type: int
  poll_interval:
    description:
      - Seconds between two readings of the job statistics.
      - The module also reads them as soon as libvirt announces the end of a memory pass, so
        the policy's pass-end decisions do not wait for the next reading.
    type: float
    default: 0.5
  shutdown_timeout:
    description: Seconds to wait for a graceful shutdown in O(mode=cold).
    type: int
    default: 120
  force_shutdown:
    description: In O(mode=cold), destroy the guest when it did not shut down within O(shutdown_timeout).
    type: bool
    default: false
  precheck:
    description:
      - Before anything is touched, check that the destination can take the guest now, with the same verdicts as
        M(kvmops.migration.virt_migrate_preflight) - every libvirt network (C(<interface type='network'>)) of the
        guest exists and is active there; its free memory (free plus reclaimable cache) covers a guest that will
        run there plus O(memory_margin_mib); each directory that receives copied disks has room for them; the
        destination offers the guest's machine type, domain type and emulator, and can provide its CPU (the live
        definition and the one it boots with next); libvirt's and QEMU's versions on both hosts (an older
        destination is a warning; what the guest needs of it fails the machine type or CPU check, naming both
        versions). A cold migration judges the definition the guest boots with there, an offline one none of these.
      - A failed check fails the task, naming the check and its remedy (result C(checks)), and changes nothing; these
        are the failures that libvirt would otherwise report half-way (or, for memory, the destination's OOM killer).
      - V(false) skips them and lets libvirt decide.
    type: bool
    default: true
  memory_margin_mib:
    description: Memory (MiB) the destination must keep free beyond the guest's, for O(precheck).
    type: int
    default: 256
  wait:
    description:
      - With V(false), the task returns as soon as the migration job runs in libvirt (RV(started)), after the same
        validation and prechecks as a waiting run (bad input still fails the task and changes nothing). A detached
        process on the source keeps driving the job with the same convergence policy and timeout, checks where
        the guest ended up on both hosts, repairs what a failure left, and writes its full result to
        RV(outcome_file). Follow it with M(kvmops.migration.virt_migrate_info) (RV(kvmops.migration.virt_migrate_info#module:detached));
        abort it with M(kvmops.migration.virt_migrate_control).
      - A later run of this module for the same guest (with the default V(true)) waits for a detached run that is
        still going, instead of starting a second migration, and returns its result in RV(detached_outcome).
      - Only for O(mode=live) and O(mode=paused). Ansible's own C(async)/C(poll) works with V(true) as well.
    type: bool
    default: true
  lock_timeout:
    description:
      - How long to wait for another operation on the same guest (a migration, a block copy, an evacuation's
        move) to release the guest's lock before refusing. V(0) refuses at once.
    type: int
    default: 60
notes:
  - Post-copy recovery after a network failure is not automatic in libvirt 9.0 / QEMU 7.2; the module then
    reports exactly where each half of the guest is and the operator procedure (the collection's
    docs/operations.md, "Post-copy interrupted").
seealso:
  - module: kvmops.migration.virt_migrate_info
  - module: kvmops.migration.virt_migrate_control
'''

EXAMPLES = r'''
- name: Start a migration and go on with other tasks (it keeps converging on its own)
  kvmops.migration.virt_migrate:
    name: db01
    dest: host-c
    wait: false
  register: db01_started

- name: Later, wait for it and verify where the guest ended up (never starts a second migration)
  kvmops.migration.virt_migrate:
    name: db01
    dest: host-c

- name: Live-migrate a guest to host-b over SSH (virsh migrate --live --p2p --persistent --undefinesource)
  kvmops.migration.virt_migrate:
    name: web01
    dest: host-b

- name: Live-migrate a busy guest with a bandwidth cap, allowing post-copy as a last resort
  kvmops.migration.virt_migrate:
    name: db01
    dest: host-c
    bandwidth: 200
    max_downtime: 300
    allow_postcopy: true

- name: Move a guest whose disks are on local storage, copying them during the live migration
  kvmops.migration.virt_migrate:
    name: build01
    dest: host-b
    copy_storage: all

- name: Cold migration (shutdown, move definition and non-shared disks, start on the destination)
  kvmops.migration.virt_migrate:
    name: legacy01
    dest: host-b
    mode: cold
    shutdown_timeout: 60
    force_shutdown: true

- name: Dedicated migration network and compression
  kvmops.migration.virt_migrate:
    name: app01
    dest: qemu+ssh://host-b/system
    migrate_uri: tcp://10.10.0.12
    parallel_connections: 4
    compression:
      methods: [zstd]
      level: 3

- name: Only show what would be done
  kvmops.migration.virt_migrate:
    name: web01
    dest: host-b
  check_mode: true
'''

RETURN = r'''
source:
  description: Host name of the source hypervisor.
  returned: always
  type: str
  sample: host-a
destination:
  description: The destination as given and its libvirt URI.
  returned: always
  type: dict
  contains:
    host:
      description: Host name the destination libvirtd reports.
      type: str
    uri:
      description: libvirt URI used for the destination.
      type: str
mode:
  description: The migration mode used.
  returned: always
  type: str
  sample: live
flags:
  description: Names of the libvirt migration flags used.
  returned: when a migration was planned or run
  type: list
  elements: str
  sample: [AUTO_CONVERGE, LIVE, PEER2PEER, PERSIST_DEST, UNDEFINE_SOURCE]
params:
  description: Typed migration parameters passed to libvirt (bandwidth in MiB/s).
  returned: when a migration was planned or run
  type: dict
stats:
  description: Figures of the migration. Sizes in bytes, times in milliseconds, rates in bytes per second.
  returned: when a migration ran
  type: dict
  contains:
    total_time_ms:
      description: Duration of the migration job.
      type: int
    downtime_ms:
      description: Measured downtime (the final pause) reported by libvirt.
      type: int
    data_transferred_bytes:
      description: Bytes sent (memory and disks).
      type: int
    memory_transferred_bytes:
      description: Memory bytes sent.
      type: int
    disk_transferred_bytes:
      description: Disk bytes sent (storage copy).
      type: int
    memory_total_bytes:
      description: Guest memory size.
      type: int
    passes:
      description: Memory passes (iterations).
      type: int
    throughput_bps:
      description: Memory transfer rate.
      type: int
    dirty_rate_bps:
      description: Highest dirty rate measured during the migration.
      type: int
    samples:
      description: Number of job statistics samples taken.
      type: int
    pass_end_events:
      description:
        - Number of memory passes whose end libvirt announced with the migration-iteration
          event; the module samples at once on each, so the policy decides at the pass end
          rather than at the next O(poll_interval).
        - V(0) with more than one pass means the event was not delivered and polling alone
          drove the policy.
      type: int
strategy:
  description: What O(strategy) asked for and what the job started with.
  returned: when a migration was planned or ran
  type: dict
  contains:
    requested:
      description: The O(strategy) option.
      type: str
    started:
      description:
        - The strategy the job started with - V(precopy_steps) (pre-copy, the downtime raised step by step),
          V(precopy) (pre-copy at O(max_downtime) from the start), V(auto_converge), V(postcopy), or V(adaptive);
          null when the prediction refused the migration.
      type: str
    note:
      description: Why V(auto) started the adaptive policy (no prediction, or O(try_anyway)); null otherwise.
      type: str
prediction:
  description:
    - The prediction made before the job, from the measured dirty rate and the guest's history (in check mode
      too). Rates in bytes per second, sizes in bytes, times in seconds, downtimes in milliseconds.
    - C(outcomes) holds each strategy's predicted run (V(precopy_steps), V(precopy), V(auto_converge), V(postcopy),
      V(paused)) - C(allowed), C(finishes), C(meets_limits), C(passes), C(total_s), C(downtime_ms), C(bytes_sent),
      C(stop) (converged, postcopy, paused, no_progress, stalled, pass_limit), C(throttle_percent), C(postcopy_s),
      C(pass_ends) (seconds since the start and dirty set left, the first and last six of C(pass_ends_total)).
    - C(dirty_rate_bps), C(bandwidth_bps), C(working_set_bytes), C(zero_page_share) are the figures used and
      C(*_source) where they came from (measured, history, measured+history, bandwidth cap, assumed, unknown).
    - C(required_bandwidth_bps), C(required_downtime_ms) and C(throttle_needed_percent) are what would make plain
      pre-copy meet the limits; C(verdict) the first strategy that meets them (allowed or not), C(cold_only) or
      C(unknown); C(sentence) says it in words.
  returned: for a live migration without storage copy and with O(strategy) other than V(adaptive)
  type: dict
decision:
  description:
    - What O(strategy) decided from RV(prediction) - C(strategy) (null when refused or unknown), C(known),
      C(refused), C(reason), C(remedies) (what would work when refused) and the chosen C(outcome).
  returned: with RV(prediction)
  type: dict
dirty_rate:
  description:
    - The dirty-rate measurement - C(seconds) sampled, C(probe_seconds) of the second, longer sample taken before a
      refusal (0 when none was), C(budget_s) (the longest it may wait), C(elapsed_s), and C(results) per guest
      (C(status) measured, unsupported, paused, not_running, timeout or error; C(dirty_rate_bps); C(vcpu_busy_share);
      C(measured_at); C(message); after a second sample C(samples) (each C([seconds, bytes/s])) and
      C(working_set_bytes), the set they showed saturated, or null).
  returned: with RV(prediction)
  type: dict
course:
  description:
    - The course check at each pass end of a job started by O(strategy=auto) or an explicit pre-copy strategy -
      C(pass), C(t_ms), C(remaining), the job's C(dirty_rate_bps) and C(bandwidth_bps), the C(writer_cpu_share)
      the check assumes, the running C(strategy), its C(predicted_total_s) and C(meets_limits), and the C(action)
      it took (V(start_postcopy), V(abort) or null; also in RV(policy_actions)).
  returned: when a live migration ran under a course check
  type: list
  elements: dict
history:
  description:
    - Where this migration's figures were recorded in the guest's history (domain metadata, namespace
      C(https://kvmops.io/migration/history/1)) - C(recorded_on), the C(entry) written and how many C(entries)
      are kept; C(error) when they could not be (a warning, the migration's outcome is unchanged).
  returned: when a live or paused migration ran and the guest runs on one host
  type: dict
policy_actions:
  description: What the convergence policy did, in order, with the time, pass and figures it was based on.
  returned: when a live migration ran
  type: list
  elements: dict
  sample: [{kind: set_max_downtime, value: 100, t_ms: 510, iteration: 1, reason: first of 5 downtime steps}]
progress:
  description:
    - Job statistics samples taken during a live migration (at most 200, evenly thinned), for
      timelines - C(t_ms), C(pass), C(remaining) and C(processed) bytes, C(dirty_rate_bps),
      C(bandwidth_bps), auto-converge C(throttle) percent.
  returned: when a live migration ran
  type: list
  elements: dict
location:
  description: Where the guest is after the attempt, read from both hosts' libvirtd.
  returned: always
  type: dict
  contains:
    running_on:
      description: Hosts where the domain is active (running or paused).
      type: list
      elements: str
    defined_on:
      description: Hosts with a persistent definition of the domain.
      type: list
      elements: str
    verdict:
      description:
        - C(destination), C(source), C(none) (its owner shut it down), C(both), C(unknown) (a host did not answer),
          C(busy) (a migration or block job is still active; nothing was repaired), C(postcopy_split) (an
          interrupted post-copy, memory on both hosts) or C(postcopy_lost) (the destination half of a post-copy
          is gone; the stale source copy is left paused, never resumed).
      type: str
    repairs:
      description: Steps taken after the attempt to restore the one-host invariant.
      type: list
      elements: dict
    steps:
      description:
        - In check mode, the repairs a real run would make (C(action), C(host), C(why)), for example removing a
          definition an earlier attempt left on the source.
      returned: in check mode
      type: list
      elements: dict
    source:
      description:
        - What the source's libvirtd reports (C(host), C(reachable), C(exists), C(state), C(state_reason),
          C(persistent), C(job) - the active migration or block job, if any).
      type: dict
    destination:
      description: What the destination's libvirtd reports, with the same keys as RV(location.source).
      type: dict
    problem:
      description: Why nothing could be repaired automatically (guest on both hosts, post-copy split, host unreachable).
      returned: when there is such a problem
      type: str
postcopy_split:
  description:
    - Where each half of the guest is when a post-copy was interrupted and did not finish within O(timeout) (for
      example the link to the destination stayed down). The guest's vCPUs are on RV(postcopy_split.vcpus_on), the
      pages it has not fetched yet only on RV(postcopy_split.unfetched_memory_on). The task fails with the operator
      procedure in RV(remedy) (also in docs/operations.md, "Post-copy interrupted"); it never destroys either half.
  returned: on failure after an interrupted post-copy
  type: dict
  contains:
    vcpus_on:
      description: The destination host.
      type: str
    unfetched_memory_on:
      description: The source host.
      type: str
    unfetched_memory_bytes:
      description: Memory still to be fetched by the destination, from the last job sample libvirt gave.
      type: int
    as_of_ms:
      description: Time of that sample, in ms since the job started.
      type: int
postcopy_recovery:
  description:
    - What the task did about a post-copy whose stream broke (the guest split between the hosts). With libvirt 8.5
      or newer on both hosts, once QEMU's own stream has made no progress for O(postcopy_resume_after) seconds while the
      destination answers, the task pauses it (C(VIR_DOMAIN_ABORT_JOB_POSTCOPY)) and resumes the migration on a new connection
      (C(migrateToURI3) with the original flags plus C(VIR_MIGRATE_POSTCOPY) and C(VIR_MIGRATE_POSTCOPY_RESUME)),
      up to three times, never again after a resume during which the destination's libvirt daemon restarted, and
      never towards a destination with libvirt 11.2 or 11.3, whose daemon crashes on a resume (fixed in 11.4).
  returned: when a post-copy failed during the task
  type: dict
  contains:
    action:
      description: The last decision - V(wait), V(resume), V(give_up) or V(nothing).
      type: str
    why:
      description: Why.
      type: str
    attempts:
      description: Each resume tried - C(at_s) (seconds after the failure was seen), C(flags), and C(result) or C(error).
      type: list
      elements: dict
waited_for_postcopy:
  description:
    - True when the task found the guest split by an earlier interrupted post-copy and waited (up to O(timeout))
      for QEMU to finish it before anything else.
  returned: when it waited
  type: bool
started:
  description: True when O(wait=false) returned while the migration goes on in a detached process.
  returned: with O(wait=false), when the job was started
  type: bool
outcome_file:
  description: The file the detached process writes its final result to (the same keys as a waiting run's result).
  returned: with O(wait=false), when the job was started
  type: str
pid:
  description: Process id of the detached process driving the migration.
  returned: with O(wait=false), when the job was started
  type: int
detached_outcome:
  description:
    - The result of an earlier O(wait=false) run of this guest that this run waited for or found finished
      (C(msg), C(failed), C(remedy), C(location), C(stats), C(finished_at)); each result is handed over once.
  returned: when there was such a run
  type: dict
adopted_job:
  description: True when the run found the guest's migration job running with nothing driving it and saw it through.
  returned: when it did
  type: bool
timings:
  description:
    - Where the seconds of a live migration went, phase by phase, in the order they ended.
    - C(module_start_s) (the module's process before its work began - Python, the AnsiballZ payload, imports;
      absent when the process age is unknown), C(connect) (the destination's connection, overlapped with the
      source-side reads), C(checks) (storage plan, destination checks, leftovers), C(prediction) (history,
      dirty-rate sample, decision), C(job) (the migration job), C(outcome_check) (the outcome check on both
      hosts, read at once, and any repair), C(report) (statistics, history record) and C(total_s) (from the manager's
      start to the last phase).
  returned: after a live or paused migration job
  type: dict
  sample: {module_start_s: 0.41, connect: 0.3, checks: 0.02, prediction: 0.01, job: 1.1, outcome_check: 0.05, report: 0.02,
           total_s: 1.5}
lock_waited_s:
  description: Seconds the run waited for another operation on the guest to release its lock.
  returned: when a run took the lock
  type: float
steps:
  description: C(cold) and C(offline) - the steps done, in order (shutdown, copies, definition, start, removal from the source).
  returned: after a cold or offline migration, and on its failure with RV(rollback)
  type: list
  elements: str
rollback:
  description:
    - C(cold) and C(offline), on failure - what was undone (C(step), C(done), C(error)). A step not undone is
      kept in the run's journal and finished by the next run.
  returned: when a cold or offline migration failed after the shutdown
  type: list
  elements: dict
earlier_rollback:
  description: The rollback of an earlier interrupted cold migration that this run finished first.
  returned: when there was one
  type: list
  elements: dict
remedy:
  description: On failure, what to do about it (the fix for bad input, the operator procedure after a post-copy split).
  returned: on failure, when there is a remedy
  type: str
removed_source_storage:
  description: Source disk images deleted after the verified migration (O(remove_source_storage=true)).
  returned: when source images were removed
  type: list
  elements: str
plan:
  description: In check mode, what would be done, including C(checks) (the O(precheck) verdicts).
  returned: in check mode when a migration would run
  type: dict
checks:
  description:
    - The O(precheck) verdicts when one of them failed, each C(name), C(status) (ok, warn, fail), C(detail), C(remedy).
  returned: when a precheck failed
  type: list
  elements: dict
msg:
  description: What happened, in one sentence.
  returned: always
  type: str
'''

from ansible_collections.kvmops.migration.plugins.module_utils._module_wrapper import KvmopsModule
from ansible_collections.kvmops.migration.plugins.module_utils._migration_manager import MigrationManager
from ansible_collections.kvmops.migration.plugins.module_utils._migration_spec import ARGUMENT_SPEC


def run_module(kvm):
    return MigrationManager(kvm).run()


def main():
    KvmopsModule(
        argument_spec=ARGUMENT_SPEC,
        required_one_of=[('name', 'uuid')],
        mutually_exclusive=[('name', 'uuid')],
        supports_check_mode=True,
    ).run(run_module)


if __name__ == '__main__':
    main()
