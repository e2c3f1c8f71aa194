"""The data-bound drain (issue 20): host-a holds guests whose memory is really used, its uplink
is capped for every tool alike, and the figure is how close each tool comes to the bound (the
bytes that had to move / the cap), and whether every guest got off at all.

The guests (DRAIN_GUESTS): several sizes with their memory written once (`guest create --fill`),
two busy ones whose dirtier outruns the cap (plain pre-copy never converges there), one with a
local disk (copied), one paused by its user. Side by side in one run, the tool going first
alternating from run to run:

- `evacuate.yml -l host-a` with its defaults;
- a serial loop of `virsh migrate --live --p2p --persistent --undefinesource` run on host-a
  (`--copy-storage-all` for the local disk), each with the time limit an operator would set
  (`--timeout N`: virsh then suspends the guest so that the migration finishes paused).

Per tool: guests moved, left on host-a, lost (not on exactly one host afterwards: must be 0),
total time; virsh's per-guest downtime (a suspended guest's pause is the rest of its copy). The
bound: each guest's bytes that had to move once (measured: the normal pages and disk data the
virsh loop moved for every guest that does not dirty; the busy ones: that base plus their fill
and working set, since they cannot be moved in fewer bytes), summed, divided by the cap.
"""
import json
import os
import re
import statistics
import tempfile
import time

from bench.measure import (
    PROFILE,
    RUNS,
    SRC,
    VIR_DOMAIN_JOB_STATS_COMPLETED,
    evacuation_bars,
    fresh_guest,
    log,
    playbook,
    rotated,
    run_module,
    spread,
    virsh_on,
    virtlab,
)

MIB = 1048576
# The uplink cap (MiB/s): netem rate on host-a's link, both directions, for every tool alike.
DRAIN_CAP_MIBPS = 50 if PROFILE == "full" else 20
# Where the guests may go, for both tools: BENCH_DRAIN_DESTINATIONS="host-b,host-c" restricts
# evacuate.yml (evacuation_destinations) and the virsh loop (round robin) alike; by default
# evacuate.yml chooses among every other hypervisor, as its defaults do, and the virsh loop goes
# round robin over the same three. (On the lab, host-c and host-d run QEMU 10 and host-a QEMU 7.2:
# a guest crashed once after such a cross-release move, docs/lab.md.)
CHOSEN_DESTINATIONS = [h.strip() for h in os.environ.get("BENCH_DRAIN_DESTINATIONS", "").split(",") if h.strip()]
if not CHOSEN_DESTINATIONS and PROFILE != "full":
    CHOSEN_DESTINATIONS = ["host-b"]  # make test's smoke run: host-a's own release only (docs/lab.md)
DESTINATIONS = tuple(CHOSEN_DESTINATIONS) or ("host-b", "host-c", "host-d")
# The busy guests' dirtier: above the cap however QEMU's dirty tracking slows it (plain pre-copy
# at a 50 MiB/s cap ran 23 passes in 40 s without converging at 64 MiB/s; the convergence
# matrix's 96 MiB / 30 MiB/s guest never converges at 20 MiB/s). Busy TCG guests can die with a
# kernel oops after a migration, more often the faster they write (docs/lab.md): the smoke profile
# (part of make test) uses the gentler pair.
BUSY_RATE_MIBPS = 64 if PROFILE == "full" else 32


class DrainGuest:
    """One guest of the drain: memory MiB, memory written once (fill), the dirtier's working set
    (busy guests: as fast as the vCPU allows), its disk local or shared, paused by its user."""

    def __init__(self, name, memory, fill=0, busy_ws=0, local_disk_mib=0, paused=False):
        self.name, self.memory, self.fill, self.busy_ws = name, memory, fill, busy_ws
        self.local_disk_mib, self.paused = local_disk_mib, paused

    def create(self):
        extra = ["--fill", str(self.fill)] if self.fill else []
        if self.local_disk_mib:
            extra += ["--storage", "local", "--disk-mib", str(self.local_disk_mib + 32),
                      "--disk-fill", str(self.local_disk_mib)]
        fresh_guest(self.name, self.memory, "%d,%d" % (self.busy_ws, BUSY_RATE_MIBPS) if self.busy_ws else None, extra)
        if self.paused:
            virsh_on(SRC, ["suspend", self.name])

    def as_dict(self):
        return {"name": self.name, "memory_mib": self.memory, "fill_mib": self.fill, "busy_working_set_mib": self.busy_ws,
                "busy_rate_mibps": BUSY_RATE_MIBPS if self.busy_ws else 0, "local_disk_mib": self.local_disk_mib,
                "paused": self.paused}


DRAIN_GUESTS_FULL = [
    DrainGuest("drain-m640", 640, fill=480),
    DrainGuest("drain-m512", 512, fill=352),
    DrainGuest("drain-m384", 384, fill=224),
    DrainGuest("drain-m256", 256, fill=112),
    DrainGuest("drain-paused", 384, fill=224, paused=True),
    DrainGuest("drain-local", 256, fill=96, local_disk_mib=192),
    DrainGuest("drain-busy1", 256, busy_ws=96),
    DrainGuest("drain-busy2", 320, fill=64, busy_ws=96),
]
# One guest of each kind, small.
DRAIN_GUESTS_SMOKE = [
    DrainGuest("drain-m256", 256, fill=96),
    DrainGuest("drain-paused", 192, fill=48, paused=True),
    DrainGuest("drain-local", 192, fill=32, local_disk_mib=64),
    DrainGuest("drain-busy1", 256, busy_ws=96),
]
DRAIN_GUESTS = DRAIN_GUESTS_FULL if PROFILE == "full" else DRAIN_GUESTS_SMOKE
# virsh --timeout: what an operator would give one guest of this size on this link (about 3 x its
# memory at the cap, at least 30 s); then virsh suspends the guest and the copy finishes paused.
VIRSH_TIMEOUT_FLOOR_S = 30
EVACUATE_WALL_S = 1800


def virsh_timeout_s(guest):
    return max(VIRSH_TIMEOUT_FLOOR_S, int(3 * (guest.memory + guest.local_disk_mib) / DRAIN_CAP_MIBPS))


def cap(on):
    if on:
        virtlab("fault", "netem", SRC, "--rate", "%d" % (DRAIN_CAP_MIBPS * 8))
    else:
        virtlab("fault", "clear", SRC)


def where(labh, guest):
    """The hosts the guest runs on (running or paused) and the hosts that define it."""
    found = labh.locate(guest.name)
    return [h for h, s, _p in found if s in ("running", "paused")], [h for h, _s, p in found if p]


def crash_reasons(labh, guests, stale_s=5.0):
    """{guest: why} for the guests whose kernel died (an oops in their console, a second boot, or
    no heartbeat for ``stale_s`` although running): libvirt still says running. Paused guests
    write no heartbeat."""
    dead = {}
    for guest in guests:
        if guest.paused:
            continue
        beat = labh.heartbeat(guest.name)
        if beat.get("oops"):
            dead[guest.name] = (beat.get("oops_lines") or ["oops"])[0]
        elif len(beat.get("boots") or []) > 1:
            dead[guest.name] = "rebooted"
        elif (beat.get("age_s") or 0) > stale_s:
            dead[guest.name] = "no heartbeat for %.0f s (on %s)" % (beat["age_s"], beat.get("host"))
    return dead


def crashed(labh, guests):
    return sorted(crash_reasons(labh, guests))


def tally(labh, guests, settle_s=30):
    """(moved, left on the source, lost): lost = not active on exactly one host once no migration
    job is left on it (a failed migration's incoming copy is being removed: up to ``settle_s``)."""
    moved, left, lost = [], [], []
    for guest in guests:
        deadline = time.monotonic() + settle_s
        active, _defined = where(labh, guest)
        while len(active) != 1 and time.monotonic() < deadline:
            time.sleep(1)
            active, _defined = where(labh, guest)
        if len(active) != 1:
            lost.append(guest.name)
        elif active[0] == SRC:
            left.append(guest.name)
        else:
            moved.append(guest.name)
    return moved, left, lost


def end_maintenance():
    """return.yml -l host-a (untimed), as an operator ends a maintenance: it clears the evacuation's
    records and host-a's maintenance mark (bring_back moves whatever it left)."""
    back = playbook("playbooks/return.yml", "-l", SRC, timeout=EVACUATE_WALL_S)
    if back.returncode == 0:
        return None
    failed = [line.strip().strip('",') for line in back.stdout.splitlines() if " failed " in line or " stayed " in line]
    log("drain: return.yml after evacuate.yml failed (bring_back moves the rest): %s" % "; ".join(failed[-4:]))
    return failed[-4:] or ["return.yml failed"]


# The evacuation's state on host-a (roles/evacuation: evacuation_state_dir): what evacuate.yml
# recorded for return.yml, and the host's maintenance mark.
STATE_DIR = "/var/lib/libvirt/kvmops"
FORGET = """import json, os, sys
path = os.path.join(sys.argv[1], "evacuation.json")
try:
    record = json.load(open(path))
except (OSError, ValueError):
    sys.exit(0)
for name in sys.argv[2:]:
    record.get("guests", {}).pop(name, None)
json.dump(record, open(path, "w"), indent=2, sort_keys=True)
if not record.get("guests"):
    mark = os.path.join(sys.argv[1], "maintenance.json")
    if os.path.exists(mark):
        os.unlink(mark)
"""


def forget_records(guests):
    """Drop the drain's guests from host-a's evacuation record (and the maintenance mark when
    nothing is left in it): the guests are gone, and a record of them would make the next
    return.yml fail. A return.yml that could not bring a guest back leaves its record (e.g. a
    guest QEMU 7.2 lost when it migrated again after coming in paused, docs/lab.md)."""
    virtlab("exec", SRC, "--", "python3", "-c", FORGET, STATE_DIR, *[guest.name for guest in guests], check=False)


def bring_back(labh, guests, dead=()):
    """Every guest back on the source, uncapped and untimed (virt_migrate). A paused guest is made
    anew instead: QEMU 7.2 aborts (bdrv_inactivate_recurse assertion, the guest is lost) when a
    guest that came in paused and was never resumed is migrated again, whatever the tool; seen on
    the lab with virsh. A user-paused guest in production has usually run on its host first."""
    for guest in guests:
        active, _defined = where(labh, guest)
        if guest.paused or guest.name in dead:  # dead: its kernel died (counted); the next run gets a live one
            guest.create()
            continue
        if active and active[0] != SRC:
            if guest.local_disk_mib:  # the source's old image (left by the copy out) makes room for the copy back
                virsh_on(SRC, ["vol-delete", "--pool", "local", "%s.qcow2" % guest.name])
            args = {"name": guest.name, "dest": SRC, "copy_storage": "all" if guest.local_disk_mib else "none",
                    "remove_source_storage": bool(guest.local_disk_mib)}
            if guest.busy_ws:  # beyond the cap: pre-copy cannot bring it back, post-copy does in bounded time
                args.update(strategy="postcopy", allow_postcopy=True)
            res = run_module(active[0], "virt_migrate", args)
            if res.get("failed"):
                raise RuntimeError("could not bring %s back to %s: %s" % (guest.name, SRC, res.get("msg")))


def warm_up(labh, guests):
    """Each guest that is neither paused nor busy moves out and back once (virt_migrate): its
    history then tells the forecast its zero pages, as for a guest that has migrated before (a
    fresh guest's untouched memory is assumed used). The busy guests are left out: two busy lab
    guests died with a kernel oops after such an extra round trip (TCG), and a dead guest would make
    every figure after it meaningless; without a history their (small) memory counts as used."""
    guests = [guest for guest in guests if not guest.paused and not guest.busy_ws]
    for guest in guests:
        res = run_module(SRC, "virt_migrate", {"name": guest.name, "dest": DESTINATIONS[0],
                                               "copy_storage": "all" if guest.local_disk_mib else "none"})
        if res.get("failed"):
            raise RuntimeError("warm-up migration of %s failed: %s" % (guest.name, res.get("msg")))
    bring_back(labh, guests)


def virsh_loop(labh, guests):
    """The serial virsh loop under the cap: {time_s, per_guest: [...], moved_bytes}."""
    per_guest = []
    started = time.monotonic()
    for index, guest in enumerate(guests):
        dest = DESTINATIONS[index % len(DESTINATIONS)]
        args = ["migrate", "--live", "--p2p", "--persistent", "--undefinesource",
                "--timeout", str(virsh_timeout_s(guest))]
        if guest.local_disk_mib:
            # Only the local disk: without --migrate-disks libvirt copies every writable disk, the
            # heartbeat disk on shared storage too (the destination refuses: "Block node is read-only").
            args += ["--copy-storage-all", "--migrate-disks", "vda"]
        one = time.monotonic()
        try:
            res = virsh_on(SRC, args + [guest.name, "qemu+ssh://%s/system" % dest],
                           timeout=virsh_timeout_s(guest) + 120)
            ok, error = res.returncode == 0, res.stderr.strip()[-300:]
        except Exception as exc:  # the wall: virsh hung past its own limit
            ok, error = False, "virsh did not return: %r" % exc
            try:
                labh.domain(SRC, guest.name).abortJob()
            except Exception:  # the job ended meanwhile
                pass
        took = time.monotonic() - one
        stats = {}
        if ok:
            try:
                stats = labh.domain(dest, guest.name).jobStats(VIR_DOMAIN_JOB_STATS_COMPLETED)
            except Exception:  # no completed job kept: its figures are unknown
                stats = {}
        per_guest.append({"guest": guest.name, "dest": dest, "completed": ok, "seconds": round(took, 1),
                          "downtime_ms": stats.get("downtime"), "memory_normal_bytes": stats.get("memory_normal_bytes"),
                          "disk_processed": stats.get("disk_processed"), "error": None if ok else error})
        log("drain virsh %s -> %s: %s in %.1fs (downtime %s ms)%s" % (
            guest.name, dest, "moved" if ok else "NOT moved", took, stats.get("downtime"), "" if ok else ": " + error))
    return {"time_s": round(time.monotonic() - started, 1), "per_guest": per_guest}


def destination_vars():
    """evacuate.yml's extra vars for BENCH_DRAIN_DESTINATIONS (none: its defaults)."""
    return ["-e", json.dumps({"evacuation_destinations": CHOSEN_DESTINATIONS})] if CHOSEN_DESTINATIONS else []


def evacuate(labh, guests):
    """evacuate.yml -l host-a with its defaults, under the cap: {time_s, ok, gantt, tail}."""
    started = time.monotonic()
    res = playbook("playbooks/evacuate.yml", "-l", SRC, *destination_vars(), timeout=EVACUATE_WALL_S)
    took = time.monotonic() - started
    return {"time_s": round(took, 1), "playbook_ok": res.returncode == 0, "gantt": evacuation_bars(res.stdout),
            "tail": res.stdout[-1500:] if res.returncode else ""}


WINDOW_RE = re.compile(r"guests? move live in about (\d+) s( or more)?")


def forecast_window(output):
    """(seconds, lower bound only) of the forecast's expected window from the playbook's 'Show the
    forecast' sentence; (None, None) when it has none."""
    m = WINDOW_RE.search(output)
    return (float(m.group(1)), bool(m.group(2))) if m else (None, None)


def forecast_with_uplink(labh):
    """The evacuation's forecast as an operator gets it before a drain: the preflight measures the
    uplink (measure_bandwidth, under the cap), then `evacuate.yml --check` with that result.
    {window_s, uplink_mib_s, sentence}: the prediction benchmark compares it with the drain's time."""
    pre = run_module(SRC, "virt_migrate_preflight", {"dest": DESTINATIONS[0], "measure_bandwidth": True})
    mib_s = (pre.get("bandwidth") or {}).get("mib_s")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as extra:
        json.dump({"evacuation_preflight_results": [dict((k, v) for k, v in pre.items() if not k.startswith("_"))]},
                  extra)
    res = playbook("playbooks/evacuate.yml", "-l", SRC, "--check", "-e", "@" + extra.name, *destination_vars(),
                   timeout=600)
    os.unlink(extra.name)
    m = re.search(r'"msg": "([^"]*move live in about[^"]*)"', res.stdout)
    window_s, lower_bound = forecast_window(res.stdout)
    return {"window_s": window_s, "window_is_lower_bound": lower_bound, "uplink_mib_s": mib_s,
            "sentence": m.group(1) if m else None}


def bytes_to_move(guests, loop):
    """{guest: bytes that had to move once} and how the base was found (module docstring)."""
    by_name = dict((g["guest"], g) for g in loop["per_guest"])
    measured, bases = {}, []
    for guest in guests:
        done = by_name.get(guest.name) or {}
        if not guest.busy_ws and done.get("completed") and done.get("memory_normal_bytes"):
            measured[guest.name] = done["memory_normal_bytes"] + (done.get("disk_processed") or 0)
            bases.append(done["memory_normal_bytes"] - guest.fill * MIB)
    base = statistics.median(bases) if bases else None
    need = {}
    for guest in guests:
        if guest.name in measured:
            need[guest.name] = measured[guest.name]
        elif base is not None:
            need[guest.name] = base + (guest.fill + guest.busy_ws + guest.local_disk_mib) * MIB
    return need, base


def bench_drain(labh):
    """The drain, RUNS runs: each tool once per run, the order alternating; guests made once."""
    for guest in DRAIN_GUESTS:
        guest.create()
    runs = {"virsh_loop": [], "evacuate": []}
    forecast = None
    # The cap stays on for the whole section, returns included: a busy guest never moves uncapped.
    cap(True)
    try:
        warm_up(labh, DRAIN_GUESTS)
        dead = crash_reasons(labh, DRAIN_GUESTS)
        for name, why in sorted(dead.items()):  # made anew (no history): no figure of a dead guest means anything
            log("drain: the warm-up left %s with a dead kernel (%s; TCG, docs/lab.md): made anew" % (name, why))
            next(guest for guest in DRAIN_GUESTS if guest.name == name).create()
        forecast = forecast_with_uplink(labh)
        log("drain forecast: %s" % forecast)
        for run in range(RUNS):
            for tool in rotated(("evacuate", "virsh_loop"), run):
                result = evacuate(labh, DRAIN_GUESTS) if tool == "evacuate" else virsh_loop(labh, DRAIN_GUESTS)
                moved, left, lost = tally(labh, DRAIN_GUESTS)
                reasons = crash_reasons(labh, DRAIN_GUESTS)
                result.update(moved=moved, left=left, lost=lost, crashed=sorted(reasons), crash_reasons=reasons)
                runs[tool].append(result)
                log("drain run %d %s: %d moved, %d left, %d lost, %d crashed in %.1fs%s" % (
                    run + 1, tool, len(moved), len(left), len(lost), len(result["crashed"]), result["time_s"],
                    "".join(" [%s: %s]" % item for item in sorted(reasons.items()))))
                if lost:
                    raise RuntimeError("drain %s: %s not on exactly one host (%s)" % (
                        tool, ", ".join(lost), "; ".join("%s: %s" % (n, labh.locate(n)) for n in lost)))
                if tool == "evacuate":
                    result["return_failed"] = end_maintenance()
                bring_back(labh, DRAIN_GUESTS, result["crashed"])
    finally:
        cap(False)
        for guest in DRAIN_GUESTS:
            virtlab("guest", "rm", guest.name, check=False)
        forget_records(DRAIN_GUESTS)
    summary = drain_summary(runs)
    summary["forecast"] = forecast
    return summary


def drain_summary(runs):
    """The figures of the runs (pure: tests/unit/test_bench_figures.py)."""
    needs = [bytes_to_move(DRAIN_GUESTS, loop) for loop in runs["virsh_loop"]]
    totals = [sum(need.values()) for need, _base in needs if need]
    bound_s = round(statistics.median(totals) / (DRAIN_CAP_MIBPS * MIB), 1) if totals else None
    summary = {"guests": [g.as_dict() for g in DRAIN_GUESTS], "cap_mib_s": DRAIN_CAP_MIBPS,
               "destinations": list(DESTINATIONS), "destinations_restricted": bool(CHOSEN_DESTINATIONS),
               "bytes_to_move_mib": round(statistics.median(totals) / MIB) if totals else None,
               "base_mib_per_guest": round(statistics.median([b for _n, b in needs if b is not None]) / MIB, 1)
               if any(b is not None for _n, b in needs) else None,
               "bound_s": bound_s, "runs": runs}
    for tool, results in runs.items():
        if not results:
            continue
        times = spread([r["time_s"] for r in results])
        summary[tool] = {
            "time_s": times, "moved": min(len(r["moved"]) for r in results), "left": max(len(r["left"]) for r in results),
            "lost": max(len(r["lost"]) for r in results), "of": len(DRAIN_GUESTS),
            "crashed": max(len(r.get("crashed") or []) for r in results),
            "ratio_vs_bound": round(times["median"] / bound_s, 3) if bound_s else None}
    loops = runs["virsh_loop"]
    if loops:
        summary["virsh_loop"]["downtime_ms"] = dict(
            (g.name, spread([next((p["downtime_ms"] for p in loop["per_guest"] if p["guest"] == g.name), None)
                             for loop in loops])) for g in DRAIN_GUESTS)
        summary["virsh_loop"]["timeout_s"] = dict((g.name, virsh_timeout_s(g)) for g in DRAIN_GUESTS)
    evacuations = runs["evacuate"]
    if evacuations:
        summary["evacuate"]["gantt"] = evacuations[-1]["gantt"]
        summary["evacuate"]["return_failed"] = [line for r in evacuations for line in (r.get("return_failed") or [])]
        windows = [max(b["end_s"] for b in r["gantt"]) for r in evacuations if r["gantt"]]
        summary["evacuate"]["window_s"] = statistics.median(windows) if windows else None
    return summary


def drain_json(summary):
    """The summary without the per-run detail (the report's view)."""
    return json.loads(json.dumps(dict((k, v) for k, v in summary.items() if k != "runs")))
