"""The benchmark's report: .bench/report.md from the figures in latest.json, and what a run lacks
(missing figures, invariant failures: the run's exit status)."""

from bench.report_sections import breakdown_lines, drain_lines, prediction_lines

REQUIRED_KEYS = ("idle_overhead_ratio", "convergence", "postcopy", "evacuation", "blockcopy_ratio", "preflight_pair_s",
                 "planner_1000_hosts_s", "breakdown", "prediction", "drain")
CELL_KEYS = ("working_set_mib", "dirty_rate_mibps", "bandwidth_mibps", "virsh_completed",
             "virsh_autoconverge_completed", "virt_migrate_completed", "virt_migrate_downtime_ms", "max_downtime_ms",
             "virt_migrate_total_s")
EVACUATION_KEYS = ("guests", "serial_s", "evacuate_s", "bound_s")


def _median_range(figure):
    return "%(median)s (%(min)s-%(max)s)" % figure if figure else "-"


def missing_figures(data):
    """What a report needs and this run did not produce, and invariant failures: the exit status."""
    skipped = data.get("not_measured") or []
    problems = ["missing %s" % key for key in REQUIRED_KEYS if data.get(key) is None and key not in skipped]
    for cell in data.get("convergence") or []:
        problems += ["convergence cell lacks %s" % key for key in CELL_KEYS if key not in cell]
        if not cell.get("invariant_held"):
            problems.append("convergence cell %s: a guest was not on exactly one host" % cell)
    problems += ["evacuation lacks %s" % key for key in EVACUATION_KEYS if key not in (data.get("evacuation") or {})]
    for cell in data.get("postcopy") or []:
        if not cell.get("invariant_held"):
            problems.append("post-copy cell %s: a guest was not on exactly one host" % cell)
    for cell in (data.get("prediction") or {}).get("cells") or []:
        if not cell.get("invariant_held"):
            problems.append("prediction cell %s: a guest was not on exactly one host" % cell)
    drain = data.get("drain") or {}
    problems += ["drain lacks %s" % key for key in ("bound_s", "evacuate", "virsh_loop") if drain and not drain.get(key)]
    for tool in ("evacuate", "virsh_loop"):
        if (drain.get(tool) or {}).get("lost"):
            problems.append("drain %s: a guest was not on exactly one host" % tool)
        if (drain.get(tool) or {}).get("crashed"):
            problems.append("drain %s: a guest's kernel died (oops or no heartbeat)" % tool)
    return problems


def report(data):
    lines = ["# Benchmark report", "",
             "Profile `%s`, %d run(s) per figure (median, min-max), lab `%s`, %s." % (
                 data["profile"], data["runs"], "3 hypervisors, QEMU TCG", data.get("measured_at") or "-"),
             "Reproduce: `make bench` (or `BENCH_PROFILE=smoke make bench`; `BENCH_SECTIONS=idle make bench`"
             " re-measures one figure).", ""]
    for name, stamp in sorted((data.get("remeasured") or {}).items()):
        lines += ["Section `%s` measured again on %s (`BENCH_SECTIONS`); the others are from the run above." % (
            name, stamp), ""]
    if data.get("note"):
        lines += ["Note: %s" % data["note"], ""]
    if data.get("not_measured"):
        lines += ["Not measured in this run: %s (the smoke profile leaves the data-bound drain to `make bench`)."
                  % ", ".join(data["not_measured"]), ""]
    for error in data.get("errors") or []:
        lines += ["**Not measured** (the section failed): `%s`" % error, ""]
    idle = data.get("idle")
    if idle:
        lines += ["## Idle guest: overhead vs virsh", "",
                  "Both through Ansible on the source host (`ansible.builtin.command: virsh migrate --live --p2p ...`"
                  " vs `kvmops.migration.virt_migrate`)%s." % (
                      ", %d runs each, half in each direction" % idle["runs_per_tool"] if idle.get("runs_per_tool") else ""),
                  "",
                  "| | median s | min-max |", "|---|---|---|",
                  "| virsh | %(median)s | %(min)s-%(max)s |" % idle["virsh_via_ansible_s"],
                  "| virt_migrate | %(median)s | %(min)s-%(max)s |" % idle["virt_migrate_s"],
                  "", "`idle_overhead_ratio` = **%s** (target <= 1.05)." % data["idle_overhead_ratio"], ""]
    if data.get("breakdown"):
        lines += breakdown_lines(data["breakdown"])
    if data.get("convergence"):
        lines += ["## Convergence matrix", "",
                  "| hot set MiB | dirty MiB/s | cap MiB/s | virsh | virsh --auto-converge | virt_migrate "
                  "| downtime ms (max 500) | virt_migrate s | guest on one host |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for c in data["convergence"]:
            dt = c["virt_migrate_downtime_ms"]
            tot = c["virt_migrate_total_s"]
            lines.append("| %d | %d | %d | %s | %s | %s | %s | %s | %s |" % (
                c["working_set_mib"], c["dirty_rate_mibps"], c["bandwidth_mibps"],
                "yes" if c["virsh_completed"] else "no", "yes" if c["virsh_autoconverge_completed"] else "no",
                "yes" if c["virt_migrate_completed"] else ("clean abort" if c["virt_migrate_aborted_cleanly"] else "NO"),
                dt["median"] if dt else "-", tot["median"] if tot else "-", "yes" if c["invariant_held"] else "NO"))
        lines += ["", "![timeline](timeline.png)", ""]
    if data.get("prediction"):
        lines += prediction_lines(data["prediction"], data.get("drain"))
    if data.get("postcopy"):
        lines += ["## Post-copy allowed", "",
                  "The same cells with post-copy allowed: `virt_migrate allow_postcopy: true` (default "
                  "`postcopy_start: after_first_pass`: it switches at the end of the first pass that leaves more "
                  "than `max_downtime` can send, and finishes in pre-copy otherwise) vs hand-tuned "
                  "`virsh migrate --postcopy --postcopy-after-precopy` (always switches after the first pass), both "
                  "through Ansible on the source host, each run on a fresh guest, the tool that goes first "
                  "alternating from run to run. Target: every cell finishes, virt_migrate no slower.", "",
                  "| hot set MiB | dirty MiB/s | cap MiB/s | virsh finishes | virt_migrate finishes "
                  "| virsh s | virt_migrate s | ratio | switched to post-copy | guest on one host |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for c in data["postcopy"]:
            lines.append("| %d | %d | %d | %s | %s | %s | %s | %s | %d/%d runs | %s |" % (
                c["working_set_mib"], c["dirty_rate_mibps"], c["bandwidth_mibps"],
                "yes" if c["virsh_completed"] else "no", "yes" if c["virt_migrate_completed"] else "NO",
                _median_range(c["virsh_total_s"]), _median_range(c["virt_migrate_total_s"]),
                c["ratio"] if c["ratio"] is not None else "-", c["virt_migrate_switched_runs"], data["runs"],
                "yes" if c["invariant_held"] else "NO"))
        lines.append("")
    if data.get("planner_1000_hosts_s") is not None:
        lines += ["## Planner", "", "Evacuation plan for 20 of 1000 hosts with 20000 guests: median %s s." % (
            data["planner_1000_hosts_s"]), ""]
    ev = data.get("evacuation")
    if ev:
        lines += ["## Evacuation", "",
                  "%d idle guests off host-a: `evacuate.yml -l host-a` vs a serial loop of `virsh migrate --live`." % ev["guests"],
                  "", "| | median s |", "|---|---|",
                  "| serial virsh loop | %s |" % ev["serial_s"], "| evacuate.yml | %s |" % ev["evacuate_s"],
                  "| sum of the loop's single-migration times | %s |" % ev.get("serial_busy_s", "-"),
                  "| bound: bytes moved / migration bandwidth measured by QEMU | %s |" % ev["bound_s"], "",
                  "evacuate / serial = **%s** (target <= 0.5); evacuate / bound = **%s** (target <= 1.3), with the "
                  "default limits (2 out of host-a, 1 into each destination: 2 at once)." % (
                      ev["ratio_vs_serial"], ev["ratio_vs_bound"]), ""]
        raised = ev.get("raised_limits")
        if raised:
            lines += ["With raised limits (`%s`, in the same run): evacuate.yml %s s, evacuate / serial = **%s**, "
                      "evacuate / bound = **%s**." % (raised["limits"], _median_range(raised["evacuate"]),
                                                      raised["ratio_vs_serial"], raised["ratio_vs_bound"]), ""]
        if ev.get("gantt"):
            lines += ["![evacuation Gantt](evacuation.png)", ""]
    if data.get("drain"):
        lines += drain_lines(data["drain"])
    bc = data.get("blockcopy")
    if bc:
        lines += ["## Block copy", "", "virt_blockcopy %s MiB/s vs qemu-img convert %s MiB/s (medians): "
                  "`blockcopy_ratio` = **%s** (target >= 0.9)." % (
                      bc["virt_blockcopy_mib_s"]["median"], bc["qemu_img_convert_mib_s"]["median"], bc["ratio"]), ""]
    pf = data.get("preflight")
    if pf:
        lines += ["## Preflight", "", "%d guests, host-a -> host-b: %s s in the module, %s s with Ansible (medians)." % (
            pf["guests"], pf["module_s"]["median"] if pf["module_s"] else "-", pf["ansible_wall_s"]["median"]), ""]
    return "\n".join(lines) + "\n"
