"""The benchmark's charts: the migration timeline of one convergence cell, and the Gantt chart of
an evacuation (PNG, matplotlib without a display)."""


def chart_timeline(timeline, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10, 4.5))
    xs = [p["t_ms"] / 1000.0 for p in timeline["progress"] if p.get("remaining") is not None]
    ys = [p["remaining"] / 1048576.0 for p in timeline["progress"] if p.get("remaining") is not None]
    ax.plot(xs, ys, color="tab:blue", label="remaining (MiB)")
    for action in timeline["actions"]:
        ax.axvline(action["t_ms"] / 1000.0, color="tab:red", alpha=0.35, linestyle="--")
        label = action["kind"] if action["value"] is None else "%s %s" % (action["kind"], action["value"])
        ax.annotate(label, (action["t_ms"] / 1000.0, max(ys or [1]) * 0.95), rotation=90, fontsize=7,
                    va="top", ha="right")
    ws, rate, bw = timeline["cell"]
    ax.set_title("virt_migrate default policy: %d MiB hot set dirtied at %d MiB/s, bandwidth %d MiB/s" % (ws, rate, bw))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("remaining (MiB)")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def chart_gantt(bars, path, title="evacuate.yml -l host-a: one bar per guest, coloured by destination"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colours = {}
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown"]
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(bars) + 1.5))
    for row, move in enumerate(sorted(bars, key=lambda b: (b["start_s"], b["guest"]))):
        colour = colours.setdefault(move["dest"], palette[len(colours) % len(palette)])
        ax.barh(row, move["end_s"] - move["start_s"], left=move["start_s"], color=colour,
                hatch="//" if move["result"] != "moved" else None, label=move["dest"])
        ax.annotate(move["guest"], (move["start_s"], row), xytext=(3, 0), textcoords="offset points", va="center",
                    fontsize=8, color="white")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), ["to %s" % label for label in unique], loc="lower right")
    ax.set_yticks([])
    ax.set_xlabel("seconds since the first migration started (progress lines, 1 s resolution)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def chart_prediction(cells, drain, path):
    """Predicted vs measured duration of every cell (strategy: auto's chosen strategy, the job's
    time), the drain's evacuation window as a square; the diagonal and the +-20 % band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 6))
    points = []
    for cell in cells:
        if not (cell.get("predicted_s") and cell.get("measured_job_s")):
            continue
        x, y = cell["measured_job_s"]["median"], cell["predicted_s"]["median"]
        right = cell.get("verdict_right")
        ax.scatter([x], [y], marker="o" if right else "x", color="tab:blue" if right else "tab:red", zorder=3)
        ax.annotate("%s %d/%d/%d" % (cell["kind"][0], cell["working_set_mib"], cell["dirty_rate_mibps"],
                                     cell["bandwidth_mibps"]), (x, y), xytext=(4, 2), textcoords="offset points",
                    fontsize=7)
        points += [x, y]
    forecast = (drain.get("forecast") or {}).get("window_s")
    measured = (drain.get("evacuate") or {}).get("window_s")
    if forecast and measured:
        ax.scatter([measured], [forecast], marker="s", color="tab:green", zorder=3, label="evacuation window")
        points += [measured, forecast]
    top = max(points or [10]) * 1.15
    ax.plot([0, top], [0, top], color="grey", linewidth=1, label="predicted = measured")
    ax.fill_between([0, top], [0, top * 0.8], [0, top * 1.2], color="grey", alpha=0.12, label="+-20 %")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("measured (s): migration job; evacuation: first start to last end")
    ax.set_ylabel("predicted before the job (s)")
    ax.set_title("virt_migrate strategy: auto - predicted vs measured\n(o: verdict right, x: wrong; "
                 "s/m/c: steady, mixed, changing load; ws/rate/cap)", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
