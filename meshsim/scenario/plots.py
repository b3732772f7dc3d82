"""PNG plots of a report (matplotlib, Agg): delivery-delay CDF, link throughput, the topology."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TOP_LINKS = 8


def draw_all(rep: dict[str, Any], out: Path) -> dict[str, str]:
    files = {}
    for name, fn in (("delivery_cdf", cdf), ("link_throughput", throughput), ("topology", topology)):
        fig = fn(rep)
        fig.savefig(out / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        files[name] = f"{name}.png"
    return files


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")


def cdf(rep: dict[str, Any]) -> Any:
    """Per server: the fraction of expected messages received within x seconds."""
    fig, ax = plt.subplots(figsize=(8, 5))
    delays: dict[str, list[float]] = {}
    for m in rep["messages"]:
        if m["event_id"] is None:
            continue
        for sid in m["expected"]:
            delays.setdefault(str(sid), [])
            d = m["delay_ms"].get(str(sid))
            if d is not None:
                delays[str(sid)].append(d / 1000.0)
    expected = {k: v["expected"] for k, v in rep["delivery"]["servers"].items()}
    if not delays:
        _empty(ax, "no messages were sent")
    many = len(delays) > 12
    for sid, ds in sorted(delays.items(), key=lambda kv: int(kv[0])):
        total = expected.get(sid) or 1
        xs = sorted(ds)
        ys = [(i + 1) / total for i in range(len(xs))]
        ax.step(
            [0.0, *xs],
            [0.0, *ys],
            where="post",
            lw=0.8 if many else 1.5,
            label=None if many else f"server {sid}",
        )
    if delays and not many:
        ax.legend(loc="lower right", fontsize="small")
    ax.set_xlabel("delay from send to arrival (s)")
    ax.set_ylabel("fraction of messages received")
    ax.set_ylim(0, 1.05)
    ratio = rep["delivery"]["ratio"]
    title = "delivery delay per server"
    if ratio is not None:
        title += f" (delivered {ratio * 100:.1f}% of {rep['delivery']['expected']})"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


def throughput(rep: dict[str, Any]) -> Any:
    """kbit/s over time of the busiest links (both directions), with step starts marked."""
    fig, ax = plt.subplots(figsize=(10, 5))
    totals = []
    for link, dirs in rep["link_stats"].items():
        total = sum(rows[-1][1] for rows in dirs.values() if rows)
        totals.append((total, link))
    busiest = [link for total, link in sorted(totals, reverse=True)[:TOP_LINKS] if total > 0]
    for link in busiest:
        for d, rows in rep["link_stats"][link].items():
            if rows and any(r[4] for r in rows):
                a, b = link.split("-")
                label = f"{a}→{b}" if d == "ab" else f"{b}→{a}"
                ax.plot([r[0] for r in rows], [r[4] / 1000 for r in rows], lw=1.2, label=label)
    if not ax.get_lines():
        _empty(ax, "no traffic on any link")
    else:
        ax.legend(loc="upper right", fontsize="small", ncol=2)
    for s in rep["steps"]:
        ax.axvline(s["t_start"], color="grey", ls=":", lw=0.8)
        ax.text(
            s["t_start"],
            1.0,
            f" {s['index']}",
            transform=ax.get_xaxis_transform(),
            fontsize=7,
            va="top",
            color="grey",
        )
    ax.set_xlabel("time since the first step (s); dotted: step starts")
    ax.set_ylabel("throughput (kbit/s)")
    ax.set_title(f"link throughput (busiest {len(busiest)} links)")
    ax.grid(alpha=0.3)
    return fig


def _kbit(bps: int) -> str:
    return f"{bps / 1e6:g} Mbit/s" if bps >= 1e6 else f"{bps / 1e3:g} kbit/s"


def topology(rep: dict[str, Any]) -> Any:
    """Servers where they sit, links with their parameters at the start (cut links dashed red)."""
    servers = {s["id"]: s for s in rep["servers"]}
    links = rep["links"]["initial"]
    xs = [s["x"] for s in servers.values()] or [0.0]
    ys = [s["y"] for s in servers.values()] or [0.0]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1.0)
    w = 10.0
    h = max(3.0, min(12.0, w * (max(ys) - min(ys) + span * 0.1) / (max(xs) - min(xs) + span * 0.1)))
    fig, ax = plt.subplots(figsize=(w, h))
    max_bw = max((lk["bandwidth"] for lk in links), default=1)
    for lk in links:
        p, q = servers.get(lk["a"]), servers.get(lk["b"])
        if p is None or q is None:
            continue
        width = 0.6 + 3.0 * math.log1p(lk["bandwidth"]) / math.log1p(max_bw)
        color = "red" if lk["cut"] else ("darkorange" if lk["loss"] > 0 else "steelblue")
        ax.plot(
            [p["x"], q["x"]], [p["y"], q["y"]], color=color, lw=width, ls="--" if lk["cut"] else "-", zorder=1
        )
        if len(links) <= 40:
            label = f"{lk['latency']:.0f} ms\n{_kbit(lk['bandwidth'])}"
            if lk["loss"]:
                label += f"\n{lk['loss']:g}% loss"
            if lk["pinned"]:
                label += " (pinned)"
            ax.annotate(label, ((p["x"] + q["x"]) / 2, (p["y"] + q["y"]) / 2), fontsize=6.5, ha="center",
                        va="center", color="dimgray", bbox={"fc": "white", "ec": "none", "alpha": 0.7, "pad": 0.5})  # fmt: skip
    for sid, s in servers.items():
        face = "#4c9f70" if s["kind"] == "synapse" else "#888888"
        ax.scatter([s["x"]], [s["y"]], s=260, c=face, edgecolors="black", zorder=2)
        ax.annotate(str(sid), (s["x"], s["y"]), ha="center", va="center", fontsize=8, color="white", zorder=3)
    ax.set_aspect("equal", adjustable="datalim")
    ax.invert_yaxis()  # canvas coordinates: y grows downwards
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(
        f"{rep['scenario']['name']}: {len(servers)} servers, {len(links)} links "
        "(green synapse, grey router; orange lossy, red dashed cut)"
    )
    return fig
