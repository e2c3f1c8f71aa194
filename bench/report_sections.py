"""The report's sections for issues 18 and 20: where the seconds of one idle migration go, the
prediction benchmark and the data-bound drain (bench/report.py puts them in the report)."""


def _med(figure, digits=1):
    if not figure:
        return "-"
    return ("%%.%df" % digits) % figure["median"]


def _s(value, digits=2):
    return "-" if value is None else ("%%.%df" % digits) % value


def breakdown_lines(breakdown):
    """## Where the seconds of one idle migration go (issue 20)."""
    lines = ["## Where the seconds of one idle migration go", "",
             "One idle 128 MiB guest, both tools through Ansible on the source host, directions and the first tool "
             "alternating; medians. virsh: the task's wall time, the `virsh migrate` process inside it (timed on the "
             "host), libvirt's job inside that (`time_elapsed` of the completed job). virt_migrate: the task's wall "
             "time and the module's own `timings`. Then the same with the `migration_ssh` role's connection sharing "
             "(`migration_ssh_connection_sharing: true`: ControlMaster/ControlPersist between the hypervisors). "
             "Target: virt_migrate <= 1.05 x virsh.", ""]
    for variant, title in (("as_is", "SSH as the lab sets it up"), ("connection_sharing", "with connection sharing")):
        figures = breakdown.get(variant)
        if not figures:
            continue
        v, m = figures["virsh"], figures["virt_migrate"]
        lines += ["### %s: virt_migrate / virsh = **%s**" % (title, figures["ratio"]), "",
                  "| virsh | s | virt_migrate | s |", "|---|---|---|---|",
                  "| Ansible (controller, SSH, the command module) | %s | Ansible and the module's detach | %s |" % (
                      _s(v.get("ansible_s")), _s(m.get("ansible_and_detach_s"))),
                  "| | | module start (Python, AnsiballZ, imports) | %s |" % _s(m.get("module_start_s")),
                  "| virsh outside the job (its connection, the job's start and end) | %s | connect (destination, "
                  "overlapped with the source reads) | %s |" % (_s(v.get("virsh_outside_job_s")), _s(m.get("connect"))),
                  "| | | checks | %s |" % _s(m.get("checks")),
                  "| | | prediction (history, dirty-rate sample, decision) | %s |" % _s(m.get("prediction")),
                  "| libvirt's migration job | %s | the migration job | %s |" % (_s(v.get("job_s")), _s(m.get("job"))),
                  "| (of which the guest paused) | %s | (of which the guest paused) | %s |" % (
                      _s(v.get("downtime_s"), 3), _s(m.get("downtime_s"), 3)),
                  "| | | outcome check on both hosts (at once) | %s |" % _s(m.get("outcome_check")),
                  "| | | report, history record | %s |" % _s(m.get("report")),
                  "| **wall** | **%s** | **wall** | **%s** |" % (_s(v.get("wall_s")), _s(m.get("wall_s"))), ""]
    return lines


def prediction_lines(prediction, drain):
    """## Prediction vs measurement (issue 18)."""
    summary = prediction["summary"]
    lines = ["## Prediction vs measurement", "",
             "Every cell of the convergence matrix, each run on a fresh guest that migrated once before (uncapped, "
             "so its history holds its zero pages, as a guest in production would). `strategy: auto` predicts and "
             "decides before the job; its prediction is compared with its own measured job (duration: the job's "
             "time; downtime). The verdict (does plain pre-copy meet max_downtime 500 ms within the timeout) is "
             "checked by running `strategy: precopy` with `try_anyway`; `strategy: auto_converge` (try_anyway) is "
             "the other allowed fixed strategy (post-copy is not allowed by default). Kinds: steady, mixed (memory "
             "written once beside the busy set), changing (the dirtier's rate changes 20 s after boot: during the "
             "migration).", "",
             "| kind | ws/rate/cap MiB | plain pre-copy predicted / measured | auto ran | predicted s | measured s "
             "| error | downtime ms predicted / measured | auto / best fixed | auto failed, a fixed one finished |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in prediction["cells"]:
        strategies = sorted(set(s for s in c["auto_strategy"] if s))
        lines.append("| %s | %d/%d/%d | %s / %s%s | %s | %s | %s | %s | %s / %s | %s | %s |" % (
            c["kind"], c["working_set_mib"], c["dirty_rate_mibps"], c["bandwidth_mibps"],
            _yes(c["predicted_verdict"]), _yes(c["measured_verdict"]), "" if c["verdict_right"] in (True, None)
            else " **wrong**", ", ".join(strategies) or "-", _med(c["predicted_s"]), _med(c["measured_job_s"]),
            "%.0f %%" % (100 * c["duration_error"]["median"]) if c["duration_error"] else "-",
            _med(c["predicted_downtime_ms"], 0), _med(c["measured_downtime_ms"], 0),
            c["auto_vs_best_fixed"] if c["auto_vs_best_fixed"] is not None else "-",
            "**yes**" if c["auto_failed_where_fixed_finished"] else "no"))
    window = _window(drain)
    lines += ["", "Targets: verdict right in 100 %% of cells: **%s** (%s cells%s); median duration error <= 20 %%: "
              "**%s**, no cell over 50 %%: max **%s**; evacuation window within 25 %%: **%s**; `strategy: auto` no "
              "slower than the best fixed strategy: max ratio **%s**, cells it failed that a fixed one finished: "
              "**%d**." % (
                  _pct(summary["verdict_right_share"]), summary["cells"],
                  "; wrong: " + ", ".join(summary["verdict_wrong_cells"]) if summary["verdict_wrong_cells"] else "",
                  _pct(summary["duration_error_median"]), _pct(summary["duration_error_max"]), window,
                  summary["auto_vs_best_fixed_max"], summary["auto_failed_cells"])]
    steady = summary.get("constant_load")
    if steady and steady["cells"] and steady["cells"] < summary["cells"]:
        lines += ["", "The same over the %d cells whose load stays as it was measured (the changing cells' rate "
                  "changes after the prediction, which no measurement made before the job can see; the engine's "
                  "course correction answers them, the last two columns): verdict right **%s**%s; median "
                  "duration error **%s**, max **%s**." % (
                      steady["cells"], _pct(steady["verdict_right_share"]),
                      " (wrong: %s)" % ", ".join(steady["verdict_wrong_cells"]) if steady["verdict_wrong_cells"]
                      else "", _pct(steady["duration_error_median"]), _pct(steady["duration_error_max"]))]
    lines += ["",
              "Calibration figures (this run): the fixed cost of one migration besides its job (the module's "
              "`timings`, total minus job) %s s, module start %s s; the evacuation forecast counts "
              "`MIGRATION_SETUP_S` per migration (`_evacuation_forecast.py`)." % (
                  _med(summary["fixed_cost_s"], 2), _med(summary["module_start_s"], 2)), "",
              "![predicted vs measured](prediction.png)", ""]
    return lines


def _window(drain):
    forecast = (drain.get("forecast") or {}).get("window_s") if drain else None
    measured = (drain.get("evacuate") or {}).get("window_s") if drain else None
    if not (forecast and measured):
        return "not measured (the drain section gives it)"
    return "forecast %.0f s vs %.0f s measured (%s)" % (forecast, measured, _pct(abs(forecast - measured) / measured))


def _pct(share):
    return "-" if share is None else "%.0f %%" % (100 * share)


def _yes(value):
    return "-" if value is None else ("converges" if value else "does not")


def drain_lines(drain):
    """## Data-bound drain (issue 20)."""
    guests = drain["guests"]
    kinds = ", ".join("%s (%d MiB%s%s%s%s)" % (
        g["name"], g["memory_mib"], ", %d MiB used" % g["fill_mib"] if g["fill_mib"] else "",
        ", busy: %d MiB rewritten at %s MiB/s" % (g["busy_working_set_mib"], g.get("busy_rate_mibps", "?"))
        if g["busy_working_set_mib"] else "",
        ", local disk %d MiB" % g["local_disk_mib"] if g["local_disk_mib"] else "",
        ", paused by its user" if g["paused"] else "") for g in guests)
    where = (" Both tools limited to those destinations (BENCH_DRAIN_DESTINATIONS; the smoke profile: host-b, host-a's release)."
             if drain.get("destinations_restricted") else
             " evacuate.yml chooses among every other hypervisor, as its defaults do.")
    text = (
        "host-a's uplink capped at {cap} MiB/s (netem rate, both directions) for every tool; {count} guests: "
        "{kinds}. Each guest that is neither busy nor paused moved out and back once before, so it has a history "
        "(busy guests are left out: a busy guest can die with a kernel oops after a migration under TCG, "
        "docs/lab.md; a guest whose kernel died is counted and made anew). `evacuate.yml -l host-a` with its "
        "defaults vs a serial loop of `virsh migrate --live --p2p --persistent --undefinesource` on host-a, round "
        "robin to {destinations} (`--copy-storage-all --migrate-disks vda` for the local disk, `--timeout` per "
        "guest: 3 x its size at the cap, at least 30 s, after which virsh suspends the guest to finish).{where} "
        "The bound: the bytes that had to move once ({need} MiB: the normal pages and disk data virsh moved for "
        "every guest that does not dirty; for the busy ones the same base, {base} MiB per guest, plus their "
        "memory in use) / the cap = **{bound} s**.").format(
            cap=drain["cap_mib_s"], count=len(guests), kinds=kinds, destinations=", ".join(drain.get("destinations") or []),
            where=where, need=drain.get("bytes_to_move_mib", "-"), base=drain.get("base_mib_per_guest", "-"),
            bound=drain.get("bound_s", "-"))
    lines = ["## Data-bound drain", "", text, "",
             "| tool | moved | left on host-a | lost | guest kernel died | time s (median, min-max) | time / bound |",
             "|---|---|---|---|---|---|---|"]
    for tool, title in (("evacuate", "evacuate.yml (defaults)"), ("virsh_loop", "serial virsh loop")):
        t = drain.get(tool)
        if t:
            lines.append("| %s | %d/%d | %d | %d | %s | %s (%s-%s) | **%s** |" % (
                title, t["moved"], t["of"], t["left"], t["lost"], t.get("crashed", "-"), t["time_s"]["median"],
                t["time_s"]["min"],
                t["time_s"]["max"], t["ratio_vs_bound"]))
    loop = drain.get("virsh_loop") or {}
    if loop.get("downtime_ms"):
        lines += ["", "virsh's downtime per guest (ms, median): " + ", ".join(
            "%s %s" % (name, _med(figure, 0)) for name, figure in sorted(loop["downtime_ms"].items())) +
            " (a guest suspended by `--timeout` is paused for the rest of its copy)."]
    if (drain.get("evacuate") or {}).get("return_failed"):
        lines += ["", "return.yml after evacuate.yml (untimed) did not bring everything back: " + "; ".join(
            "`%s`" % line for line in drain["evacuate"]["return_failed"][:4]) + " (docs/lab.md: QEMU 7.2 and a guest "
            "that came in paused)."]
    lines += ["", "Targets: evacuate.yml moves every guest with 0 lost, in <= 1.15 x the bound.", "",
              "![drain Gantt](drain.png)", ""]
    return lines
