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


def chart_gantt(bars, path):
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
    ax.set_title("evacuate.yml -l host-a: one bar per guest, coloured by destination")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
