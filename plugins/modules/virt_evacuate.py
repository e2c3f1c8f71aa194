#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 kvmops.migration contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: virt_evacuate
short_description: Drain a hypervisor, bring its guests back, rebalance, back up definitions, recover a dead host
version_added: 0.1.0
description:
  - C(evacuate) (run on the host to drain) reads memory, vCPUs and guests of every host in O(hosts) through
    libvirt, plans where each guest goes (C(plan_evacuation) - free memory with a margin, vCPU overcommit,
    anti-affinity from domain metadata and O(anti_affinity), preflight verdicts from O(preflight), excluded and
    maintenance hosts), forecasts the evacuation (RV(forecast) - the expected window, which guests need
    auto-converge or post-copy, which cannot move live within the limits), then migrates the guests concurrently
    in the forecast's order (the longest first), at most O(max_per_source) out of a host and
    O(max_per_dest) into one at a time, a finished slot starting the next guest at once.
  - Each migration runs the same code as M(kvmops.migration.virt_migrate) (convergence policy, outcome check and
    repair on both hosts). A guest that cannot move does not stop the others.
  - The libvirt connections to the other hosts are opened all at once and lent to the preflights and to every
    migration to that host (one SSH handshake per host for the run, not one per migration); a connection that died
    during the run is not lent, and that migration opens its own.
  - The drained host is marked in maintenance (a file in O(state_dir)), where every guest came from is
    recorded there (for C(return)), and the guests' definitions are saved to O(definitions_dir) on shared
    storage (for C(recover); the same backup as C(backup) writes).
  - C(return) (run on the drained host) brings the recorded guests back and clears the mark.
  - C(rebalance) (run on any member) levels memory use across O(hosts) with few migrations (C(plan_rebalance)).
  - C(recover) (run on a surviving host) defines and starts the guests of the dead host O(dead_host) from their
    saved definitions on the other hosts, only with O(fenced=true), and refuses while the libvirtd of O(dead_host)
    answers.
  - C(backup) (run on every hypervisor, on a schedule) makes C(<definitions_dir>/<this host>/) hold the persistent
    definition of every guest defined on this host, one C(<guest>.xml) each, written atomically (mode 0600), and
    removes the backups of guests no longer defined here, so that a guest that moved away is not recovered from a
    stale file. It changes something only when a file changes, never waits for O(lock_timeout), and moves nothing.
  - C(rejoin) (run on the host that died, once it answers again) looks for its guests on the other O(hosts). A guest
    that runs on another host now (it was recovered there) must never run here too, so its autostart here is
    disabled, a copy that runs here is destroyed, and its definition here is undefined (with its managed save image,
    snapshot and checkpoint metadata; an NVRAM file is kept). Guests that do not run elsewhere are left as they are
    and reported.
  - Progress lines go to O(progress_file) while it runs and to RV(progress) at the end.
author:
  - kvmops.migration contributors (@kvmops)
extends_documentation_fragment:
  - kvmops.migration.connection
  - kvmops.migration.state_dir
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Gathers facts and returns the plan and table (result C(planned)); moves and writes nothing.
      - C(backup) reports the files it would write or remove and C(rejoin) the stale copies it would remove (result
        C(planned)), both with C(changed=true) when something would change.
  diff_mode:
    support: none
  platform:
    platforms: posix
    details: Runs on a hypervisor with libvirt-python; reaches the other hosts over libvirt (O(transport)).
options:
  action:
    description: What to do.
    type: str
    choices: [evacuate, return, rebalance, recover, backup, rejoin]
    default: evacuate
  host:
    description: This host's name as the other hosts reach it. Default is the name its libvirtd reports.
    type: str
  hosts:
    description:
      - The hypervisors taking part (destinations for C(evacuate) and C(recover), members for C(rebalance),
        where to look for the guests for C(return) and C(rejoin)). This host may be in the list. Not used by
        C(backup).
      - Host names or IP addresses only (the URI is C(qemu+<transport>://<host>/system)); anything else is refused
        before any connection.
    type: list
    elements: str
    default: []
  transport:
    description: libvirt transport to the other hosts.
    type: str
    choices: [ssh, tls, tcp]
    default: ssh
  guests:
    description:
      - Only these guests move (others still count for capacity and anti-affinity), or for C(rejoin) only their
        stale copies are removed. Default all.
      - Refused with C(backup), which always covers every persistent guest of the host.
    type: list
    elements: str
  pinned:
    description: Guests that must never move; reported as C(stayed).
    type: list
    elements: str
    default: []
  exclude_hosts:
    description: Hosts never used as destinations.
    type: list
    elements: str
    default: []
  maintenance_hosts:
    description:
      - Hosts to treat as in maintenance, on top of those whose mark says so (O(read_maintenance_marks)); never
        used as destinations, and with O(action=rebalance) they take no part.
    type: list
    elements: str
    default: []
  read_maintenance_marks:
    description:
      - Read the maintenance mark (C(maintenance.json) in O(state_dir)) of every candidate destination
        (O(action=evacuate)) or of every host of O(hosts) (O(action=rebalance)) through the libvirt connection
        this module opens to that host anyway, all hosts at once, and treat a marked host as in O(maintenance_hosts).
      - The file is read as a storage volume (the directory's pool, or a transient one for a moment); no SSH login
        and nothing left behind. A mark that names another host does not count.
      - A mark that exists but cannot be read (or is not JSON) counts as set, and the plan's notes say so.
      - V(false) leaves O(maintenance_hosts) as the only source.
    type: bool
    default: true
  anti_affinity:
    description: "Anti-affinity groups, C({group: [guest, ...]}), on top of the domains' metadata."
    type: dict
    default: {}
  preflight:
    description:
      - Registered results of M(kvmops.migration.virt_migrate_preflight) looped over the destinations (with
        C(fail_on=never)). A C(fail) check of a guest (or of the host) rules that destination out for it.
    type: list
    elements: dict
    default: []
  run_preflight:
    description:
      - With O(action=evacuate), run the checks of M(kvmops.migration.virt_migrate_preflight) (its defaults,
        C(fail_on=never), the O(guests) given or every running guest) from this host to every candidate destination
        not in maintenance (O(maintenance_hosts), O(read_maintenance_marks)), all at once inside this module, before
        planning. The verdicts count as if their results had been given in O(preflight) (both may be used).
      - One progress line per destination gives its verdict. A destination whose preflight cannot run at all
        (unreachable) takes no guest.
      - The evacuation role sets this from C(evacuation_preflight); it replaces one module run per destination.
    type: bool
    default: false
  copy_storage:
    description: Copy disks that are not on storage shared with the destination (live storage copy, or cold).
    type: bool
    default: true
  no_storage_copy:
    description: Guests whose disks must never be copied (they move only where their storage is shared).
    type: list
    elements: str
    default: []
  move_shutoff:
    description: Move shut-off persistent guests too (cold, definition and non-shared disks). Else they are skipped.
    type: bool
    default: false
  max_per_source:
    description: Migrations out of one host at the same time.
    type: int
    default: 2
  max_per_dest:
    description: Migrations into one host at the same time.
    type: int
    default: 1
  memory_basis:
    description:
      - C(allocated) counts a host's free memory as its total minus the maximum memory of its running guests;
        C(free) uses what the kernel reports free.
    type: str
    choices: [allocated, free]
    default: allocated
  memory_margin_mib:
    description: Memory every destination keeps free (the reserve is the larger of this and O(memory_margin_ratio)).
    type: int
    default: 1024
  memory_margin_ratio:
    description: Share of a host's memory kept free.
    type: float
    default: 0.05
  max_vcpu_overcommit:
    description: Most vCPUs per host CPU after placement.
    type: float
    default: 4.0
  threshold:
    description: C(rebalance) brings every host's memory-used ratio within this of the group's.
    type: float
    default: 0.1
  max_moves:
    description: C(rebalance) makes at most this many migrations.
    type: int
  migrate_options:
    description:
      - Options of M(kvmops.migration.virt_migrate) applied to every migration, e.g. C(bandwidth), C(max_downtime),
        C(timeout), C(allow_postcopy), C(shutdown_timeout), C(force_shutdown), C(strategy), C(try_anyway),
        C(dirty_rate_seconds), C(postcopy_resume_after). The forecast uses the same limits.
    type: dict
    default: {}
  maintenance:
    description: C(evacuate) marks this host in maintenance; C(return) clears the mark when every guest is back.
    type: bool
    default: true
  definitions_dir:
    description:
      - Directory on shared storage holding C(<host>/<guest>.xml) definition backups; C(backup) and C(evacuate)
        (before it moves guests) write this host's, C(recover) reads the dead host's.
      - An empty string disables the backup of C(evacuate); C(backup) refuses it.
    type: path
    default: /var/lib/libvirt/images/.kvmops/definitions
  shared_paths:
    description: C(recover) restarts only guests whose every disk is under one of these (shared storage) paths.
    type: list
    elements: path
    default: [/var/lib/libvirt/images]
  dead_host:
    description:
      - C(recover) - the host whose guests to restart elsewhere.
      - C(rejoin) - optional, the host that died; refused unless it is this host.
    type: str
  fenced:
    description:
      - C(recover) - the dead host is confirmed powered off (or fenced). Recovery refuses without it, because a
        guest started twice on shared disks corrupts them.
    type: bool
    default: false
  fenced_hosts:
    description:
      - C(recover) - other hosts of O(hosts) that do not answer either and are confirmed powered off (fenced) too.
        Recovery refuses while any other host of O(hosts) does not answer, because a guest that runs there
        unseen would be started a second time on the same shared disks; naming the silent hosts here is the
        operator's confirmation that nothing runs on them.
    type: list
    elements: str
    default: []
  remove_stale_copies:
    description:
      - C(return) deletes, on this host, the disk images evacuate copied away (named in the record). They
        are from before the guest left; its current disks are copied back in their place.
    type: bool
    default: true
  progress_file:
    description: File the progress lines are appended to while the module runs. Default C(<state_dir>/<action>.log).
    type: path
  progress_interval:
    description: Seconds between two progress readings of each running migration.
    type: float
    default: 2.0
  lock_timeout:
    description:
      - Only one run that moves guests (any O(action) but C(backup)) works on a host at a time; it holds an exclusive lock on
        C(operation.lock) in O(state_dir), which the kernel releases when the run ends, even if it is killed.
      - A second run (two operators, a job launched twice, a re-run while the async job of an interrupted
        C(ansible-playbook) still runs) waits up to this many seconds for the first to end, then re-reads the
        hosts and moves only what is left. When the time is up it fails, naming the holder, and changes nothing.
      - V(0) refuses at once. Check mode never takes the lock.
    type: int
    default: 900
notes:
  - Modules cannot stream output. Follow O(progress_file) on the host (C(tail -f)), or run the module with
    C(async) and read the file meanwhile, as the collection's C(evacuation) role does.
seealso:
  - module: kvmops.migration.virt_migrate
  - module: kvmops.migration.virt_migrate_preflight
'''

EXAMPLES = r'''
- name: Drain host-a onto host-b and host-c
  kvmops.migration.virt_evacuate:
    hosts: [host-b, host-c]

- name: Bring the guests back
  kvmops.migration.virt_evacuate:
    action: return
    hosts: [host-b, host-c]

- name: Level memory use of three hosts within 5 points
  kvmops.migration.virt_evacuate:
    action: rebalance
    hosts: [host-a, host-b, host-c]
    threshold: 0.05

- name: Restart the guests of a fenced dead host
  kvmops.migration.virt_evacuate:
    action: recover
    dead_host: host-a
    fenced: true
    hosts: [host-b, host-c]

- name: Save the definitions of this host's guests to shared storage (schedule it on every hypervisor)
  kvmops.migration.virt_evacuate:
    action: backup

- name: On host-a, back after its guests were recovered elsewhere, remove their stale copies
  kvmops.migration.virt_evacuate:
    action: rejoin
    dead_host: host-a
    hosts: [host-b, host-c]
'''

RETURN = r'''
plan:
  description: The plan, C(assignments) (guest, source, destination) in start order, C(unplaceable) with reasons, C(notes).
  returned: when action is not backup
  type: dict
table:
  description: One row per guest considered.
  returned: when action is not backup
  type: list
  elements: dict
  contains:
    guest:
      description: Guest name.
      type: str
    from:
      description: Source host.
      type: str
    to:
      description: Planned or actual destination (null when none).
      type: str
    time_s:
      description: Migration time in seconds.
      type: float
    downtime_ms:
      description: Downtime libvirt measured.
      type: int
    result:
      description:
        - C(moved), C(failed) (tried, still on its source), C(stayed) (not tried), C(skipped), C(planned) (check mode).
        - C(rejoin) - C(removed) (the stale copy here is gone, C(to) is where the guest runs), C(failed) (a step
          failed, C(reason) says which and what was done), C(stayed) (left alone, needs a look), C(skipped) (the
          guest does not run elsewhere), C(planned) (check mode).
      type: str
    reason:
      description: Why it did not move.
      type: str
report:
  description: The table as text lines; for C(backup) the summary line and one line per file written or removed.
  returned: always
  type: list
  elements: str
summary:
  description: Counts per result, C(stayed) (guests that should have moved and did not), C(moved), C(max_concurrent).
  returned: when action is not backup
  type: dict
progress:
  description: The progress lines written while running (the last 400).
  returned: always
  type: list
  elements: str
progress_total:
  description:
    - How many progress lines were written in all (RV(progress) holds the last 400 of them). A watcher that has shown
      the first N lines of the progress file shows the last RV(progress_total) - N of RV(progress).
  returned: when action is not backup
  type: int
hosts:
  description: Facts of the hosts used for planning (memory in bytes).
  returned: when action is not backup
  type: list
  elements: dict
lock_waited_s:
  description: Seconds this run waited for another run to release the host's lock (see O(lock_timeout)).
  returned: when not in check mode and action is not backup
  type: float
forecast:
  description:
    - For C(evacuate), made before anything moves (in check mode too) from the guests' dirty rates, measured at once
      on this host, their migration histories and the uplink (the fastest bandwidth a O(preflight) result measured,
      else the fastest earlier uncapped migration of these guests, else the C(bandwidth) cap of O(migrate_options)
      times O(max_per_source), else unknown - C(uplink_bps), C(uplink_source)).
    - C(window_s) - the expected time from the first start to the last end of the guests that move live
      (C(window_is_lower_bound) when some could not be predicted); C(window_with_paused_s) the same with the
      guests that cannot move live moved paused; C(sentence) says it in words.
    - C(order) - the guests in the order they start (longest first); C(groups) - C(precopy), C(auto_converge),
      C(postcopy), C(refused) (no allowed strategy meets the limits; still tried last, each migration decides with
      its own measurement), C(unknown); C(moves) - per guest its C(destination), C(strategy), C(predicted_s),
      C(start_s), C(end_s), C(prediction) and C(decision).
    - C(not_forecast) - guests that move cold; C(dirty_rate) - the measurement (guests whose history gives no working
      set are sampled a second time, three times as long, to see it - C(probe_seconds), and per guest C(samples) and
      C(working_set_bytes)); C(error) when no forecast could be made (the evacuation then goes on in the plan's
      order).
  returned: when action is evacuate and a guest is planned to move
  type: dict
record:
  description: For C(evacuate) and C(return), the record of guests moved off this host after the run.
  returned: when action is evacuate or return
  type: dict
definitions:
  description: What C(backup) wrote (or would write, in check mode).
  returned: when action is backup
  type: dict
  contains:
    directory:
      description: This host's backup directory, C(<definitions_dir>/<host>).
      type: str
    written:
      description: Guests whose C(<guest>.xml) was written (new or changed).
      type: list
      elements: str
    removed:
      description: Guests whose backup was removed (no longer defined on this host).
      type: list
      elements: str
    unchanged:
      description: Guests whose backup was already up to date.
      type: list
      elements: str
msg:
  description: One-line summary.
  returned: always
  type: str
'''

from ansible_collections.kvmops.migration.plugins.module_utils._module_wrapper import KvmopsModule
from ansible_collections.kvmops.migration.plugins.module_utils._evacuation_manager import (
    ARGUMENT_SPEC,
    Evacuation,
)


def run_module(kvm):
    evacuation = Evacuation(kvm)
    try:
        return evacuation.run()
    finally:
        evacuation.close()


def main():
    KvmopsModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True).run(run_module)


if __name__ == '__main__':
    main()
