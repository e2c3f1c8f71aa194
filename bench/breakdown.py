"""Where each second of one idle live migration goes (issue 20), for `virsh migrate --p2p` and for
`virt_migrate`, both through Ansible on the source host, directions alternating.

virsh: the Ansible task's wall time; inside it the `virsh migrate` process (timed on the host
around it: `date` before and after); inside that libvirt's migration job (`time_elapsed` of the
completed job on the destination: from the job's start on the source to its end), and of it the
guest's pause (`downtime`). What is left at each level is that level's own cost: Ansible
(controller, SSH to the host, the module's transfer and start), virsh outside the job (its
connection to libvirtd, the job's start and end around libvirt's own clock).

virt_migrate: the task's wall time; inside it the module's `timings` (module start, connect,
checks, prediction, job, outcome_check, report); the rest is Ansible and the module's detach.

Each tool runs with the lab's SSH as it is, then with the `migration_ssh` role's connection
sharing switched on (ControlMaster/ControlPersist between the hypervisors), then the role
switches it off again.
"""
import os
import re
import statistics
import time

from bench.measure import (
    DST,
    PROFILE,
    SRC,
    VIR_DOMAIN_JOB_STATS_COMPLETED,
    ansible_adhoc,
    fresh_guest,
    log,
    playbook,
    run_module,
    spread,
    virtlab,
)

BREAKDOWN_RUNS = int(os.environ.get("BENCH_BREAKDOWN_RUNS", "1" if PROFILE == "smoke" else "6"))
VIRSH_TIMES_RE = re.compile(r"VIRSH_TIMES (\d+\.\d+) (\d+\.\d+)")
SHARING_PLAYBOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ssh_sharing.yml")
# virt_migrate's phases, in order (its RETURN `timings`).
MODULE_PHASES = ("module_start_s", "connect", "checks", "prediction", "job", "outcome_check", "report")


def virsh_once(labh, where, name, dest):
    """One timed `virsh migrate` through Ansible's shell module: {wall_s, virsh_s, job_s, downtime_s}."""
    command = ("a=$(date +%%s.%%N); timeout --foreground 120 virsh migrate --live --p2p --persistent "
               "--undefinesource %s qemu+ssh://%s/system; rc=$?; b=$(date +%%s.%%N); echo VIRSH_TIMES $a $b; "
               "exit $rc" % (name, dest))
    started = time.monotonic()
    res = ansible_adhoc(where, "ansible.builtin.shell", command)
    wall = time.monotonic() - started
    m = VIRSH_TIMES_RE.search(res.stdout)
    if res.returncode != 0 or not m:
        raise RuntimeError("virsh migrate %s -> %s failed: %s" % (where, dest, res.stdout[-800:]))
    stats = labh.domain(dest, name).jobStats(VIR_DOMAIN_JOB_STATS_COMPLETED)
    return {"wall_s": wall, "virsh_s": float(m.group(2)) - float(m.group(1)),
            "job_s": (stats.get("time_elapsed") or 0) / 1000.0, "downtime_s": (stats.get("downtime") or 0) / 1000.0}


def module_once(where, name, dest):
    """One timed virt_migrate through Ansible: {wall_s, <its timings>}."""
    started = time.monotonic()
    res = run_module(where, "virt_migrate", {"name": name, "dest": dest})
    wall = time.monotonic() - started
    if res.get("failed"):
        raise RuntimeError("virt_migrate %s -> %s failed: %s" % (where, dest, res.get("msg")))
    timings = dict(res.get("timings") or {})
    timings.update(wall_s=wall, downtime_s=((res.get("stats") or {}).get("downtime_ms") or 0) / 1000.0)
    return timings


def virsh_breakdown(runs):
    """virsh's seconds by level (medians; pure)."""
    def med(key):
        return statistics.median(r[key] for r in runs)
    wall, virsh_s, job_s, downtime = med("wall_s"), med("virsh_s"), med("job_s"), med("downtime_s")
    return {"wall_s": round(wall, 3), "ansible_s": round(wall - virsh_s, 3),
            "virsh_outside_job_s": round(virsh_s - job_s, 3), "job_s": round(job_s, 3),
            "downtime_s": round(downtime, 3), "runs": len(runs)}


def module_breakdown(runs):
    """virt_migrate's seconds by phase (medians; pure): Ansible and detach = wall - the module's own."""
    view = {"wall_s": round(statistics.median(r["wall_s"] for r in runs), 3), "runs": len(runs)}
    for phase in MODULE_PHASES + ("total_s", "downtime_s"):
        values = [r[phase] for r in runs if r.get(phase) is not None]
        view[phase] = round(statistics.median(values), 3) if values else None
    own = (view["total_s"] or 0.0) + (view["module_start_s"] or 0.0)
    view["ansible_and_detach_s"] = round(view["wall_s"] - own, 3)
    return view


def sharing(on):
    res = playbook(SHARING_PLAYBOOK, "-e", "migration_ssh_connection_sharing=%s" % ("true" if on else "false"),
                   timeout=600)
    if res.returncode != 0:
        raise RuntimeError("migration_ssh (connection sharing %s) failed:\n%s" % (on, res.stdout[-2000:]))


def measure_pair(labh, name):
    """BREAKDOWN_RUNS of each tool, directions and first tool alternating: (virsh runs, module runs)."""
    virsh_runs, module_runs = [], []
    where = SRC
    for run in range(BREAKDOWN_RUNS * 2):
        other = DST if where == SRC else SRC
        if (run // 2 + run) % 2 == 0:
            virsh_runs.append(virsh_once(labh, where, name, other))
        else:
            module_runs.append(module_once(where, name, other))
        where = other
    if where != SRC:  # back home for the next variant
        module_once(where, name, SRC)
    return virsh_runs, module_runs


def bench_breakdown(labh):
    name = "bench-bd"
    fresh_guest(name)
    result = {}
    try:
        for variant in ("as_is", "connection_sharing"):
            if variant == "connection_sharing":
                sharing(True)
            try:
                virsh_runs, module_runs = measure_pair(labh, name)
            finally:
                if variant == "connection_sharing":
                    sharing(False)
            v, m = virsh_breakdown(virsh_runs), module_breakdown(module_runs)
            result[variant] = {"virsh": v, "virt_migrate": m, "ratio": round(m["wall_s"] / v["wall_s"], 3),
                               "virsh_wall_s": spread([r["wall_s"] for r in virsh_runs]),
                               "virt_migrate_wall_s": spread([r["wall_s"] for r in module_runs])}
            log("breakdown %s: virsh %s, virt_migrate %s" % (variant, v, m))
    finally:
        virtlab("guest", "rm", name, check=False)
    return result
