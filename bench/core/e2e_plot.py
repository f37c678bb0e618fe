"""e2e_plot.py - bench/results/e2e.json as a picture: throughput by system
(median and each round), and in a full run by message size and by number of
destinations.

usage: e2e_plot.py E2E_JSON OUT_PNG
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

res = json.load(open(sys.argv[1]))
full = "by_size" in res
fig, axes = plt.subplots(1, 3 if full else 1, figsize=(16 if full else 8, 5), squeeze=False)
ax = axes[0][0]
systems = list(res["systems"])
meds = [res["systems"][s]["msgs_per_s"] for s in systems]
colors = ["#1b7837" if s == "dmtad-memif" else "#5aae61" if s.startswith("dmtad") else "#999999"
          for s in systems]
bars = ax.bar(systems, meds, color=colors)
for i, s in enumerate(systems):
    ax.scatter([i] * len(res["systems"][s]["rounds"]), res["systems"][s]["rounds"], color="black",
               s=10, zorder=3)
for b, m in zip(bars, meds):
    ax.annotate("{:,}".format(m), (b.get_x() + b.get_width() / 2, m), ha="center",
                va="bottom", fontsize=9)
ax.set_ylabel("messages/s (median; dots: rounds)")
ax.set_title("4 KiB, 1 rcpt, 8 destinations, durable queue, 8 connections")
ax.tick_params(axis="x", rotation=20)


def lines(ax, table, xlabel, title):
    keys = sorted(table, key=int)
    names = sorted({s for k in keys for s in table[k]})
    for s in names:
        ok = [k for k in keys if table[k].get(s, {}).get("msgs_per_s")]
        xs = [int(k) for k in ok]
        ys = [table[k][s]["msgs_per_s"] for k in ok]
        ax.plot(xs, ys, marker="o", label=s)
    ax.set_xscale("log")
    ax.set_xticks([int(k) for k in keys])
    ax.set_xticklabels(keys)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("messages/s")
    ax.set_title(title)
    ax.legend()


if full:
    lines(axes[0][1], res["by_size"], "message size (bytes)", "by message size (8 destinations)")
    lines(axes[0][2], res["by_destinations"], "destinations", "by destinations (4 KiB)")
fig.suptitle("dmta e2e, %s, %d cores (shared machine: compare within one run)"
             % (res["date"], res["cores"]))
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=100)
