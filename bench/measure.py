"""The benchmark's measurements on the lab (bench/run.py runs them, report.py writes them up):
each figure compares virt_migrate with what an operator would otherwise run, in the same run, on
the same lab. The profile (BENCH_PROFILE, BENCH_RUNS, BENCH_CELLS) decides how much is measured.
"""
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lab"))

from vlab.control import INVENTORY, ansible_bin, collections_path, run_module, virtlab  # noqa: E402

PROFILE = os.environ.get("BENCH_PROFILE", "full")
RUNS = int(os.environ.get("BENCH_RUNS", "1" if PROFILE == "smoke" else "3"))
SRC, DST = "host-a", "host-b"
VIR_DOMAIN_JOB_STATS_COMPLETED = 1


class Cell:
    """One cell of the convergence matrix: the dirtier's working set (MiB) and rate (MiB/s), the
    bandwidth cap (MiB/s), the guest's memory (MiB); ``fill``: memory written once besides (MiB, a
    mixed load: a used idle part and a busy part); ``later``: (after_s, rate) the dirtier changes
    to, counted from the guest's boot (a changing load). Unpacks as (ws, rate, bw, memory)."""

    def __init__(self, ws, rate, bw, memory, fill=0, later=None):
        self.ws, self.rate, self.bw, self.memory, self.fill, self.later = ws, rate, bw, memory, fill, later

    def __iter__(self):
        return iter((self.ws, self.rate, self.bw, self.memory))

    @property
    def kind(self):
        return "changing" if self.later else ("mixed" if self.fill else "steady")

    @property
    def dirty(self):
        return "%d,%d" % (self.ws, self.rate) + (",%d,%d" % self.later if self.later else "")

    @property
    def create_args(self):
        return ["--fill", str(self.fill)] if self.fill else []

    def as_dict(self):
        return {"working_set_mib": self.ws, "dirty_rate_mibps": self.rate, "bandwidth_mibps": self.bw,
                "memory_mib": self.memory, "fill_mib": self.fill, "kind": self.kind,
                "later": list(self.later) if self.later else None}


# Steady loads, then mixed (memory used once beside the busy set) and changing ones (quiet while
# measured, busy from 20 s after boot, i.e. during the migration; and the reverse).
CELLS_FULL = [Cell(16, 4, 50, 192), Cell(32, 8, 20, 192), Cell(64, 10, 20, 256), Cell(64, 20, 40, 256),
              Cell(96, 20, 10, 256), Cell(96, 30, 20, 256),
              Cell(48, 10, 20, 384, fill=160), Cell(96, 25, 20, 384, fill=128), Cell(8, 2, 30, 512, fill=320),
              Cell(96, 4, 20, 256, later=(20, 40)), Cell(96, 40, 20, 256, later=(20, 4))]
CELLS_SMOKE = [Cell(16, 4, 50, 192)]
# Idle migrations per tool: even, so each tool runs equally often in each direction.
IDLE_RUNS = 1 if PROFILE == "smoke" else 8
CELL_TIMEOUT_S = 150 if PROFILE == "full" else 120


def convergence_cells():
    """The convergence cells of this profile; BENCH_CELLS="ws,rate,bw,mem;..." overrides them."""
    if os.environ.get("BENCH_CELLS"):
        return [Cell(*(int(x) for x in cell.split(",")[:4])) for cell in os.environ["BENCH_CELLS"].split(";") if cell]
    return CELLS_SMOKE if PROFILE == "smoke" else CELLS_FULL


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "runs": len(values)}


def fresh_guest(name, memory=128, dirty=None, extra=(), on=SRC):
    """A new heartbeat guest on the source (``extra``: more `guest create` options, e.g. --fill)."""
    virtlab("guest", "rm", name, check=False)
    args = ["guest", "create", name, "--on", on, "--memory", str(memory)]
    if dirty:
        args += ["--dirty", dirty]
    virtlab(*(args + list(extra)))


def virsh_on(host, args, timeout=None):
    """`virsh ARGS` run inside lab host ``host`` (its own libvirtd, qemu:///system), as an operator
    logged in on the source runs it; the lab instance's hosts, whichever instance this is (the
    control node's ssh config only knows the default instance's). CompletedProcess; a run past
    ``timeout`` raises subprocess.TimeoutExpired (the virsh process is killed)."""
    return subprocess.run([str(REPO / "lab" / "virtlab"), "exec", host, "--", "virsh"] + list(args),
                          capture_output=True, text=True, timeout=timeout, check=False)


def ansible_adhoc(host, module, args):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    cmd = [ansible_bin("ansible"), host, "-i", INVENTORY, "-m", module, "-a", args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO), check=False)


def completed_downtime(labh, host, name):
    try:
        return labh.domain(host, name).jobStats(VIR_DOMAIN_JOB_STATS_COMPLETED).get("downtime")
    except Exception:  # no completed job kept: reported as unknown
        return None


# --- idle overhead ------------------------------------------------------------------------
def bench_idle(labh):
    """Wall time of one idle-guest live migration through Ansible: the command module running
    `virsh migrate` on the source vs virt_migrate. Directions alternate, and each tool runs as often
    in one direction as in the other (pairs virsh-then-module and module-then-virsh alternate),
    so a slower direction or a slower first run of a pair does not count against one tool only.
    Each tool runs IDLE_RUNS times: one migration is a few seconds and single runs vary by ±20 %."""
    name = "bench-idle"
    fresh_guest(name)
    virsh_times, module_times = [], []
    where = SRC
    for run in range(IDLE_RUNS * 2):
        other = DST if where == SRC else SRC
        started = time.monotonic()
        if (run // 2 + run) % 2 == 0:
            ok = virsh_migrate_via_ansible(where, name, other).returncode == 0
            (virsh_times if ok else []).append(time.monotonic() - started)
        else:
            res = run_module(where, "virt_migrate", {"name": name, "dest": other})
            ok = not res.get("failed")
            (module_times if ok else []).append(time.monotonic() - started)
        if not ok:
            raise RuntimeError("idle migration %s -> %s failed" % (where, other))
        where = other
    virtlab("guest", "rm", name, check=False)
    v, m = spread(virsh_times), spread(module_times)
    return {"virsh_via_ansible_s": v, "virt_migrate_s": m, "ratio": round(m["median"] / v["median"], 3),
            "runs_per_tool": IDLE_RUNS}


# --- convergence matrix -------------------------------------------------------------------
def run_virsh(labh, name, bandwidth, extra_flags=()):
    """Plain `virsh migrate --live --p2p` with a bandwidth cap and ``extra_flags`` (e.g. --auto-converge)."""
    cmd = ["migrate", "--live", "--p2p", "--persistent", "--undefinesource", "--bandwidth", str(bandwidth)]
    cmd += list(extra_flags) + [name, "qemu+ssh://%s/system" % DST]
    started = time.monotonic()
    try:
        res = virsh_on(SRC, cmd, timeout=CELL_TIMEOUT_S)
        completed = res.returncode == 0
    except subprocess.TimeoutExpired:
        completed = False
        try:
            labh.domain(SRC, name).abortJob()
        except Exception:  # the job ended on its own meanwhile
            pass
        time.sleep(3)
    elapsed = time.monotonic() - started
    return {"completed": completed, "total_s": round(elapsed, 1),
            "downtime_ms": completed_downtime(labh, DST, name) if completed else None}


def run_virt_migrate(labh, name, bandwidth, max_downtime, allow_postcopy=False):
    args = {"name": name, "dest": DST, "bandwidth": bandwidth, "max_downtime": max_downtime,
            "timeout": CELL_TIMEOUT_S, "allow_postcopy": allow_postcopy}
    started = time.monotonic()
    res = run_module(SRC, "virt_migrate", args)
    elapsed = time.monotonic() - started
    completed = not res.get("failed") and res.get("location", {}).get("running_on") == [DST]
    return {"completed": completed, "total_s": round(elapsed, 1),
            "job_s": round((res.get("stats") or {}).get("total_time_ms", 0) / 1000.0, 1),
            "downtime_ms": (res.get("stats") or {}).get("downtime_ms"),
            "running_on": res.get("location", {}).get("running_on"),
            "advice": res.get("remedy"), "actions": res.get("policy_actions", []),
            "progress": res.get("progress", [])}


def rotated(items, by):
    """``items`` rotated left ``by`` places: (a, b, c) by 1 is (b, c, a)."""
    by %= len(items)
    return tuple(items[by:]) + tuple(items[:by])


def run_cell(labh, name, cell, tools, measure):
    """RUNS runs of each tool on one cell, each on a fresh dirtying guest: {tool: [result]}.
    ``measure(tool, name)`` migrates it and returns the result; the exactly-one-host invariant
    is checked here after every run. The order of the tools rotates from run to run, so no
    tool always goes first after a quiet lab or last after a busy one."""
    ws, rate, bw, dummy_memory = cell
    runs = dict((tool, []) for tool in tools)
    for run in range(RUNS):
        for tool in rotated(tools, run):
            fresh_guest(name, cell.memory, cell.dirty, cell.create_args)
            time.sleep(3)  # let the dirtier reach its pace
            result = measure(tool, name)
            # THE invariant, after every run: the guest runs on exactly one host.
            running = [h for h, s, _p in labh.locate(name) if s in ("running", "paused")]
            result["exactly_one_host"] = len(running) == 1
            runs[tool].append(result)
            log("cell ws=%d rate=%d bw=%d %s run %d: completed=%s %.1fs downtime=%s" % (
                ws, rate, bw, tool, run + 1, result["completed"], result["total_s"], result["downtime_ms"]))
    return runs


def bench_convergence(labh):
    cells = []
    timeline = None
    for cell in convergence_cells():
        ws, rate, bw, memory = cell
        max_downtime = 500
        # Physically reachable with pre-copy alone when the link outruns the dirtying with room
        # for the final copy to fit in max_downtime (no throttling assumed).
        reachable = bw > rate / 0.9

        def measure(tool, name):
            nonlocal timeline
            if tool != "virt_migrate":
                return run_virsh(labh, name, bw, ["--auto-converge"] if tool == "virsh_autoconverge" else [])
            result = run_virt_migrate(labh, name, bw, max_downtime)
            if timeline is None or (ws, rate, bw) == (96, 20, 10):
                timeline = dict(cell=[ws, rate, bw], actions=result["actions"], progress=result["progress"])
            return result
        runs = run_cell(labh, "bench-conv", cell, ("virsh", "virsh_autoconverge", "virt_migrate"), measure)
        virt = runs["virt_migrate"]
        cells.append(dict(cell.as_dict(), **{
            "max_downtime_ms": max_downtime, "precopy_reachable_without_throttle": reachable,
            "virsh_completed": all(r["completed"] for r in runs["virsh"]),
            "virsh_autoconverge_completed": all(r["completed"] for r in runs["virsh_autoconverge"]),
            "virt_migrate_completed": all(r["completed"] for r in virt),
            "virt_migrate_downtime_ms": spread([r["downtime_ms"] for r in virt]),
            "virt_migrate_total_s": spread([r["total_s"] for r in virt]),
            "virsh_total_s": spread([r["total_s"] for r in runs["virsh"] if r["completed"]]),
            "virsh_autoconverge_total_s": spread([r["total_s"] for r in runs["virsh_autoconverge"] if r["completed"]]),
            "virt_migrate_aborted_cleanly": all(r["completed"] or r["running_on"] == [SRC] for r in virt),
            "invariant_held": all(r["exactly_one_host"] for rs in runs.values() for r in rs),
            "virt_migrate_advice": next((r["advice"] for r in virt if r["advice"]), None),
        }))
    virtlab("guest", "rm", "bench-conv", check=False)
    return cells, timeline


# --- post-copy ----------------------------------------------------------------------------
def virsh_migrate_via_ansible(where, name, dest, extra_flags=()):
    """`virsh migrate --live --p2p` through Ansible's command module on host `where`, as an
    operator's playbook would run it: timed like virt_migrate (which also runs through Ansible),
    so the Ansible start-up is on both sides of a ratio. `timeout --foreground`: without it
    virsh, put in a background process group, never returns from a --postcopy-after-precopy
    migration that has finished (seen with libvirt 9.0 under Ansible's command module)."""
    command = "timeout --foreground %d virsh migrate --live --p2p --persistent --undefinesource %s %s " \
              "qemu+ssh://%s/system" % (CELL_TIMEOUT_S, " ".join(extra_flags), name, dest)
    return ansible_adhoc(where, "ansible.builtin.command", command)


def run_virsh_via_ansible(labh, name, bandwidth, extra_flags):
    """One convergence cell's `virsh migrate` from the source, through Ansible."""
    started = time.monotonic()
    completed = virsh_migrate_via_ansible(SRC, name, DST, ["--bandwidth", str(bandwidth)] + list(extra_flags)
                                          ).returncode == 0
    elapsed = time.monotonic() - started
    return {"completed": completed, "total_s": round(elapsed, 1),
            "downtime_ms": completed_downtime(labh, DST, name) if completed else None}


def bench_postcopy(labh):
    """Every convergence cell with post-copy allowed: virt_migrate allow_postcopy=true (its policy
    decides when to switch) vs virsh --postcopy --postcopy-after-precopy (always after pass 1).
    Target: every cell finishes, virt_migrate no slower than virsh."""
    cells = []
    for cell in convergence_cells():
        ws, rate, bw, memory = cell

        def measure(tool, name):
            if tool == "virsh_postcopy":
                # hand-tuned virsh: post-copy after the first pre-copy pass, whatever the rates
                return run_virsh_via_ansible(labh, name, bw, ["--postcopy", "--postcopy-after-precopy"])
            result = run_virt_migrate(labh, name, bw, 500, allow_postcopy=True)
            result["switched"] = any(a.get("kind") == "start_postcopy" for a in result.pop("actions"))
            result.pop("progress")
            return result
        runs = run_cell(labh, "bench-pc", cell, ("virsh_postcopy", "virt_migrate_postcopy"), measure)
        virsh_s = spread([r["total_s"] for r in runs["virsh_postcopy"] if r["completed"]])
        virt_s = spread([r["total_s"] for r in runs["virt_migrate_postcopy"] if r["completed"]])
        cells.append(dict(cell.as_dict(), **{
            "virsh_completed": all(r["completed"] for r in runs["virsh_postcopy"]),
            "virt_migrate_completed": all(r["completed"] for r in runs["virt_migrate_postcopy"]),
            "virt_migrate_switched_runs": sum(1 for r in runs["virt_migrate_postcopy"] if r["switched"]),
            "virsh_total_s": virsh_s, "virt_migrate_total_s": virt_s,
            "ratio": round(virt_s["median"] / virsh_s["median"], 3) if virsh_s and virt_s else None,
            "invariant_held": all(r["exactly_one_host"] for rs in runs.values() for r in rs),
            "virt_migrate_downtime_ms": spread([r["downtime_ms"] for r in runs["virt_migrate_postcopy"]
                                                if r["switched"] and r["completed"]]),
        }))
    virtlab("guest", "rm", "bench-pc", check=False)
    return cells


# --- evacuation ---------------------------------------------------------------------------
def playbook(*args, timeout=None):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_NOCOLOR="1")
    return subprocess.run([ansible_bin("ansible-playbook"), "-i", INVENTORY] + list(args),
                          capture_output=True, text=True, env=env, cwd=str(REPO), check=False, timeout=timeout)


def on_host(labh, host, names):
    return [n for n in names if any(h == host and s == "running" for h, s, _p in labh.locate(n))]


# evacuate.yml with the role's default limits (2 out of the source, 1 into each destination: with two
# destinations, 2 at once), and with limits raised as docs/operations.md suggests when the link and the
# CPUs allow it. The full profile measures both; the smoke profile the defaults only.
EVACUATION_LIMITS = {"defaults": [], "raised": ["-e", "evacuation_max_parallel=4", "-e", "evacuation_max_per_dest=2"]}


def evacuate_and_return(labh, names, limits):
    """(seconds evacuate.yml took, its Gantt bars); return.yml brings every guest back, untimed."""
    started = time.monotonic()
    res = playbook("playbooks/evacuate.yml", "-l", SRC, *limits)
    took = time.monotonic() - started
    if res.returncode != 0 or on_host(labh, SRC, names):
        raise RuntimeError("evacuate.yml %s did not drain %s:\n%s" % (" ".join(limits), SRC, res.stdout[-2000:]))
    gantt = evacuation_bars(res.stdout)
    back = playbook("playbooks/return.yml", "-l", SRC)
    if back.returncode != 0 or len(on_host(labh, SRC, names)) != len(names):
        raise RuntimeError("return.yml did not bring every guest back to %s:\n%s" % (SRC, back.stdout[-2000:]))
    return took, gantt


def bench_evacuation(labh, count):
    """evacuate.yml -l host-a vs a serial loop of `virsh migrate --live` over the same guests
    (alternating host-b/host-c), and the bound: the bytes the loop moved at the migration bandwidth
    QEMU measured (the median of its migrations' memory_bps) - the time the data alone needs on
    one link, with no per-migration setup at all. evacuate.yml runs with the default limits and
    (full profile) with raised ones (EVACUATION_LIMITS), in the same run."""
    names = ["bench-ev%d" % i for i in range(count)]
    for name in names:
        fresh_guest(name)
    variants = list(EVACUATION_LIMITS) if PROFILE == "full" else ["defaults"]
    serial, bound, busy = [], [], []
    evac = dict((variant, []) for variant in variants)
    gantt = None
    for run in range(RUNS):
        started = time.monotonic()
        moved_bytes, busy_s, rates = 0, 0.0, []
        for index, name in enumerate(names):
            dest = "host-b" if index % 2 == 0 else "host-c"
            one = time.monotonic()
            done = virsh_on(SRC, ["migrate", "--live", "--p2p", "--persistent", "--undefinesource", name,
                                  "qemu+ssh://%s/system" % dest])
            if done.returncode != 0:
                raise RuntimeError("virsh migrate %s -> %s failed: %s" % (name, dest, done.stderr.strip()))
            busy_s += time.monotonic() - one
            stats = labh.domain(dest, name).jobStats(VIR_DOMAIN_JOB_STATS_COMPLETED)
            moved_bytes += stats.get("data_processed") or 0
            if stats.get("memory_bps"):
                rates.append(stats["memory_bps"])
        serial.append(time.monotonic() - started)
        busy.append(busy_s)
        if not rates:
            raise RuntimeError("libvirt reported no memory_bps for the serial migrations: no bound")
        bound.append(moved_bytes / statistics.median(rates))
        for name in names:  # back to host-a, untimed
            for host in ("host-b", "host-c"):
                if on_host(labh, host, [name]):
                    run_module(host, "virt_migrate", {"name": name, "dest": SRC})
        for variant in rotated(variants, run):
            took, bars = evacuate_and_return(labh, names, EVACUATION_LIMITS[variant])
            evac[variant].append(took)
            if variant == "defaults":
                gantt = bars
        log("evacuation run %d: serial %.1fs, evacuate.yml %s, bound %.1fs (%d MiB moved)" % (
            run + 1, serial[-1], ", ".join("%s %.1fs" % (v, evac[v][-1]) for v in variants), bound[-1],
            moved_bytes // 1048576))
    for name in names:
        virtlab("guest", "rm", name, check=False)
    result = {"guests": count, "serial_s": spread(serial)["median"], "evacuate_s": spread(evac["defaults"])["median"],
              "bound_s": spread(bound)["median"], "serial": spread(serial), "evacuate": spread(evac["defaults"]),
              "serial_busy_s": spread(busy)["median"],
              "ratio_vs_serial": round(statistics.median(evac["defaults"]) / statistics.median(serial), 3),
              "ratio_vs_bound": round(statistics.median(evac["defaults"]) / statistics.median(bound), 3),
              "gantt": gantt}
    if "raised" in evac:
        result["raised_limits"] = {
            "limits": " ".join(EVACUATION_LIMITS["raised"][1::2]), "evacuate": spread(evac["raised"]),
            "ratio_vs_serial": round(statistics.median(evac["raised"]) / statistics.median(serial), 3),
            "ratio_vs_bound": round(statistics.median(evac["raised"]) / statistics.median(bound), 3)}
    return result


START_RE = re.compile(r"(\d\d):(\d\d):(\d\d) start (\S+) (\S+) -> (\S+)")
END_RE = re.compile(r"(\d\d):(\d\d):(\d\d) (moved|failed) (\S+) (\S+) -> (\S+)")


def evacuation_bars(output):
    """[{guest, dest, start_s, end_s, result}] from evacuate.yml's progress lines (1 s resolution)."""
    def seconds(m):
        return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3))
    starts, bars = {}, []
    for line in output.splitlines():
        m = START_RE.search(line)
        if m and m.group(4) not in starts:
            starts[m.group(4)] = (seconds(m), m.group(6))
            continue
        m = END_RE.search(line)
        if m and m.group(5) in starts and not any(b["guest"] == m.group(5) for b in bars):
            begin, dest = starts[m.group(5)]
            bars.append({"guest": m.group(5), "dest": dest, "start_s": begin, "end_s": max(seconds(m), begin + 1),
                         "result": m.group(4)})
    if bars:
        t0 = min(b["start_s"] for b in bars)
        for b in bars:
            b["start_s"] -= t0
            b["end_s"] -= t0
    return bars


# --- block copy and preflight -----------------------------------------------------------------
def bench_blockcopy(labh):
    """virt_blockcopy of a 256 MiB disk holding 200 MiB of data, shared -> local, against
    `qemu-img convert` of the same image to the same place."""
    name = "bench-bc"
    fresh_guest(name)
    labh.domain(SRC, name).destroy()
    image = "/var/lib/libvirt/images/%s.qcow2" % name
    virtlab("exec", SRC, "--", "qemu-img", "resize", "-q", image, "256M")
    virtlab("exec", SRC, "--", "qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 200M", image)
    labh.domain(SRC, name).create()
    ours, theirs = [], []
    for run in range(RUNS):
        target = "/var/lib/libvirt/local/%s.qcow2" % name
        # There and back: shared -> local (measured), local -> shared (restores the guest).
        res = run_module(SRC, "virt_blockcopy", {"name": name, "disk": "vda", "dest": target, "remove_source": True})
        if res.get("failed"):
            raise RuntimeError("virt_blockcopy failed: %s" % res.get("msg"))
        # Same numerator for both tools (the 200 MiB of data), each over its own duration: the
        # job's `end` counts the whole virtual disk, which would flatter block copy.
        ours.append(200.0 / res["duration_s"])
        back = run_module(SRC, "virt_blockcopy", {"name": name, "disk": "vda", "dest": image, "remove_source": True})
        if back.get("failed"):
            raise RuntimeError("virt_blockcopy back failed: %s" % back.get("msg"))
        copy = "/var/lib/libvirt/local/%s-convert-%d.qcow2" % (name, run)
        started = time.monotonic()
        virtlab("exec", SRC, "--", "qemu-img", "convert", "-U", "-O", "qcow2", image, copy)
        theirs.append(200.0 / (time.monotonic() - started))
        virtlab("exec", SRC, "--", "rm", "-f", copy)
    virtlab("guest", "rm", name, check=False)
    return {"virt_blockcopy_mib_s": spread(ours), "qemu_img_convert_mib_s": spread(theirs),
            "ratio": round(statistics.median(ours) / statistics.median(theirs), 3)}


def bench_preflight(labh, count):
    names = ["bench-pf%d" % i for i in range(count)]
    for name in names:
        fresh_guest(name)
    times, inside = [], []
    for dummy_run in range(RUNS):
        started = time.monotonic()
        res = run_module(SRC, "virt_migrate_preflight", {"dest": DST, "guests": names})
        times.append(time.monotonic() - started)
        inside.append((res.get("timings") or {}).get("total_s"))
    for name in names:
        virtlab("guest", "rm", name, check=False)
    return {"guests": count, "ansible_wall_s": spread(times), "module_s": spread(inside)}


# --- planner ------------------------------------------------------------------------------
def bench_planner():
    sys.path.insert(0, str(REPO / ".venv" / "collections"))
    from ansible_collections.kvmops.migration.plugins.module_utils._placement import GuestInfo, HostInfo
    from ansible_collections.kvmops.migration.plugins.module_utils._placement_evacuation import plan_evacuation
    gib = 1024 ** 3
    hosts = [HostInfo("h%04d" % i, 512 * gib, 200 * gib, 128, 40) for i in range(1000)]
    guests = [GuestInfo("g%05d" % i, "h%04d" % (i % 1000), (2 + i % 7) * gib, 1 + i % 4) for i in range(20000)]
    times = []
    for dummy_run in range(max(RUNS, 3)):
        started = time.perf_counter()
        plan_evacuation(guests, hosts, ["h%04d" % i for i in range(20)])
        times.append(time.perf_counter() - started)
    return spread(times)
