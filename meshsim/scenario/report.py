"""The report of a run: report.json, CSV tables and PNG plots in the output directory.

Times are seconds since the first step started (`t0`); delays are milliseconds from the origin's
`event_sent` telemetry (or the send response, if that report was lost) to each server's
`event_received`.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from .recorder import Record
from .state import Outcome

VERSION = 1


def _rel(ms: float | None, t0: float) -> float | None:
    return None if ms is None else round(ms / 1000.0 - t0, 3)


def messages(o: Outcome, rec: Record) -> list[dict[str, Any]]:
    out = []
    for m in o.messages:
        sent = rec.sent.get(m.event_id or "")
        sent_ms = sent["ts"] if sent else (m.t_response * 1000 if m.event_id else None)
        got = rec.received.get(m.event_id or "", {})
        received = {sid: ts for sid, ts in sorted(got.items()) if sid != m.origin}
        out.append(
            {
                "index": m.index,
                "event_id": m.event_id,
                "txn_id": m.txn_id,
                "room": m.room,
                "origin": m.origin,
                "step": m.step,
                "error": m.error,
                "sent_t": _rel(sent_ms, o.t0),
                "sent_telemetry": sent is not None,
                "expected": m.expected,
                "received_t": {str(s): _rel(ts, o.t0) for s, ts in received.items()},
                "delay_ms": {str(s): ts - sent_ms for s, ts in received.items() if sent_ms is not None},
            }
        )
    return out


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def delivery(msgs: list[dict[str, Any]]) -> dict[str, Any]:
    per: dict[int, dict[str, Any]] = defaultdict(lambda: {"expected": 0, "delivered": 0, "delays": []})
    for m in msgs:
        if m["event_id"] is None:
            continue
        for sid in m["expected"]:
            p = per[sid]
            p["expected"] += 1
            if str(sid) in m["received_t"]:
                p["delivered"] += 1
                if str(sid) in m["delay_ms"]:
                    p["delays"].append(m["delay_ms"][str(sid)])
    servers = {}
    for sid in sorted(per):
        p = per[sid]
        d = p.pop("delays")
        servers[str(sid)] = {
            **p,
            "ratio": round(p["delivered"] / p["expected"], 4) if p["expected"] else None,
            "delay_ms": {
                "median": statistics.median(d) if d else None,
                "p90": _pct(d, 0.9),
                "max": max(d) if d else None,
            },
        }
    expected = sum(p["expected"] for p in servers.values())
    delivered = sum(p["delivered"] for p in servers.values())
    return {
        "expected": expected,
        "delivered": delivered,
        "ratio": round(delivered / expected, 4) if expected else None,
        "servers": servers,
    }


def state_changes(rec: Record, t0: float) -> list[dict[str, Any]]:
    """Server state transitions (consecutive equal states collapsed), from the websocket stream."""
    last: dict[int, str] = {}
    out = []

    def seen(t: float | None, s: dict[str, Any]) -> None:
        sid, state = s["id"], s["state"]
        if last.get(sid) != state:
            last[sid] = state
            out.append({"t": t, "server": sid, "state": state, "reason": s.get("reason")})

    for msg in rec.messages:
        typ, t = msg.get("type"), _rel(msg.get("rt"), t0)
        if typ == "snapshot":
            for s in msg["topology"]["servers"]:
                seen(t, s)
        elif typ in ("server_added", "server_updated"):
            seen(t, msg["server"])
        elif typ == "server_removed" and last.get(msg["id"]) != "removed":
            last[msg["id"]] = "removed"
            out.append({"t": t, "server": msg["id"], "state": "removed", "reason": None})
    return out


def link_series(rec: Record, t0: float) -> dict[str, dict[str, list[list[float]]]]:
    """Per link and direction: [t, bytes, packets, drops, bit/s, packets/s] rows (counters cumulative)."""
    series: dict[str, dict[str, list[list[float]]]] = defaultdict(lambda: {"ab": [], "ba": []})
    for msg in rec.of_type("link_stats"):
        t = _rel(msg.get("ts") or msg.get("rt"), t0)
        for lk in msg["links"]:
            for d in ("ab", "ba"):
                s = lk["stats"].get(d) or {}
                rows = series[f"{lk['a']}-{lk['b']}"][d]
                b, p, dr = s.get("bytes", 0), s.get("packets", 0), s.get("drops", 0)
                if rows and t is not None and t > rows[-1][0]:
                    dt = t - rows[-1][0]
                    db = b - rows[-1][1] if b >= rows[-1][1] else b  # counters restart with the link
                    dp = p - rows[-1][2] if p >= rows[-1][2] else p
                    rows.append([t, b, p, dr, round(db * 8 / dt), round(dp / dt, 2)])
                elif not rows:
                    rows.append([t, b, p, dr, 0, 0])
    return dict(sorted(series.items(), key=lambda kv: tuple(map(int, kv[0].split("-")))))


def _links(topo: dict[str, Any]) -> list[dict[str, Any]]:
    keep = ("a", "b", "bandwidth", "latency", "jitter", "loss", "pinned", "cut")
    return [{k: lk[k] for k in keep} for lk in topo.get("links", [])]


def build(o: Outcome) -> dict[str, Any]:
    rec = o.record
    assert rec is not None
    msgs = messages(o, rec)
    ids = {m.event_id for m in o.messages if m.event_id}
    changes = state_changes(rec, o.t0)
    series = link_series(rec, o.t0)
    deliv = delivery(msgs)
    telemetry = {
        t: sum(1 for m in rec.of_type(t) if m.get("event_id") in ids)
        for t in ("event_sent", "event_received", "event_delivered")
    }
    scn = o.scenario
    return {
        "version": VERSION,
        "scenario": {
            "name": scn.name,
            "file": str(scn.path),
            "kind": scn.kind,
            "seed": scn.seed,
            "steps": len(scn.steps),
        },
        "result": o.result,
        "error": o.error,
        "started_at": o.t0,
        "duration_s": round(max(0.0, o.t_end - o.t0), 3) if o.t0 else 0.0,
        "counts": {
            "servers": len(scn.topology.servers),
            "links": len(o.initial.get("links", [])),
            "steps_run": len(o.steps),
            "steps_ok": sum(1 for s in o.steps if s.get("ok")),
            "rooms": len(o.rooms),
            "messages_attempted": len(o.messages),
            "messages_sent": sum(1 for m in o.messages if m.event_id),
            "send_errors": sum(1 for m in o.messages if m.error),
            "messages_counted": len(msgs),
            "deliveries_expected": deliv["expected"],
            "deliveries": deliv["delivered"],
            "telemetry": telemetry,
            "state_changes": sum(1 for c in changes if c["t"] is not None and c["t"] >= 0),
            "websocket_reconnects": rec.reconnects,
        },
        "delivery": deliv,
        "rooms": {
            r.name: {
                "room_id": r.room_id,
                "alias": r.alias,
                "creator": r.creator,
                "members": sorted(r.members),
            }
            for r in o.rooms.values()
        },
        "steps": o.steps,
        "messages": msgs,
        "servers": o.initial.get("servers", []),
        "links": {"initial": _links(o.initial), "final": _links(o.final)},
        "state_changes": changes,
        "link_stats": series,
        "files": {},
    }


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def write(o: Outcome) -> dict[str, Any]:
    """Write report.json, the CSVs and the plots; returns the report."""
    out = o.out
    rep = build(o)
    files = rep["files"]
    rows = []
    for m in rep["messages"]:
        for sid in m["expected"]:
            k = str(sid)
            rows.append(
                [m["index"], m["event_id"], m["room"], m["origin"], m["step"], sid, m["sent_t"],
                 m["received_t"].get(k), m["delay_ms"].get(k), m["error"]]
            )  # fmt: skip
    _write_csv(
        out / "messages.csv",
        [
            "index",
            "event_id",
            "room",
            "origin",
            "step",
            "server",
            "sent_t",
            "received_t",
            "delay_ms",
            "error",
        ],
        rows,
    )
    rows = [
        [r[0], *link.split("-"), d, *r[1:]]
        for link, dirs in rep["link_stats"].items()
        for d, series in dirs.items()
        for r in series
    ]
    _write_csv(
        out / "link_stats.csv",
        ["t", "a", "b", "dir", "bytes", "packets", "drops", "bits_per_s", "packets_per_s"],
        rows,
    )
    _write_csv(
        out / "state_changes.csv",
        ["t", "server", "state", "reason"],
        [[c["t"], c["server"], c["state"], c["reason"]] for c in rep["state_changes"]],
    )
    _write_csv(
        out / "steps.csv",
        ["index", "action", "title", "line", "t_start", "t_end", "ok", "error"],
        [
            [s.get(k) for k in ("index", "action", "title", "line", "t_start", "t_end", "ok", "error")]
            for s in rep["steps"]
        ],
    )
    files.update(
        {"messages": "messages.csv", "link_stats": "link_stats.csv", "state_changes": "state_changes.csv",
         "steps": "steps.csv", "events": "events.jsonl"}
    )  # fmt: skip
    from . import plots

    files.update(plots.draw_all(rep, out))
    (out / "report.json").write_text(json.dumps(rep, indent=1) + "\n", encoding="utf-8")
    return rep


def summary_line(o: Outcome) -> str:
    c = {"messages": len(o.messages), "sent": sum(1 for m in o.messages if m.event_id)}
    try:
        rep = json.loads((o.out / "report.json").read_text())
        d = rep["delivery"]
        deliv = (
            f", delivery {d['ratio'] * 100:.1f}% ({d['delivered']}/{d['expected']})" if d["expected"] else ""
        )
    except (OSError, ValueError, KeyError, TypeError):
        deliv = ""
    msg = f", {c['sent']}/{c['messages']} messages sent{deliv}" if c["messages"] else ""
    err = f": {o.error}" if o.error else ""
    return f"scenario {o.scenario.name}: {o.result}{err}{msg}; report in {o.out}/report.json"
