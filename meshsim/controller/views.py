"""JSON views of the controller's state for the API and the websocket."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..kernel import names
from ..topo import Link

if TYPE_CHECKING:
    from .core import Controller

EMPTY_STATS = {"bytes": 0, "packets": 0, "drops": 0}


def server(ctl: Controller, sid: int) -> dict[str, Any]:
    s = ctl.topo.server(sid)
    node = ctl.nodes.get(sid)
    state = node.state if node else "starting"
    if not s.up and state != "failed":
        state = "stopped"
    out: dict[str, Any] = {
        "id": s.id,
        "x": s.x,
        "y": s.y,
        "kind": s.kind,
        "up": s.up,
        "state": state,
        "reason": node.reason if node else None,
        "address": names.address(s.id),
        "name": names.server_name(s.id) if s.kind == "synapse" else f"router{s.id}",
        "netns": names.netns(ctl.rundir.run, s.id),
        "shell": f"meshsim shell {s.id}",
    }
    if s.kind == "synapse":
        out["client_url"] = f"http://127.0.0.1:{ctl.options.client_port_base + s.id}"
    return out


def server_detail(ctl: Controller, sid: int) -> dict[str, Any]:
    out = server(ctl, sid)
    node = ctl.nodes.get(sid)
    if node is not None:
        try:
            out.update(node.info())
        except Exception as exc:  # a dying process must not break the API
            out["info_error"] = str(exc)
        out["log_tail"] = node.logs(20)
    return out


def link(ctl: Controller, lk: Link) -> dict[str, Any]:
    stats = ctl.stats.get((lk.a, lk.b), {"ab": EMPTY_STATS, "ba": EMPTY_STATS})
    return {
        "a": lk.a,
        "b": lk.b,
        "bandwidth": lk.params.bandwidth,
        "latency": lk.params.latency,
        "jitter": lk.params.jitter,
        "loss": lk.params.loss,
        "pinned": list(lk.pinned),
        "cut": lk.cut,
        "stats": stats,
    }


def topology(ctl: Controller) -> dict[str, Any]:
    t = ctl.topo
    return {
        "run": ctl.rundir.run,
        "servers": [server(ctl, i) for i in sorted(t.servers)],
        "links": [link(ctl, lk) for _, lk in sorted(t.links().items())],
        "defaults": t.defaults.to_dict(),
        "routes": {
            str(src): {str(dst): hop for dst, hop in sorted(table.items())}
            for src, table in sorted(t.routes().items())
        },
    }


def route_changes(changes: dict[int, dict[int, int | None]]) -> dict[str, dict[str, int | None]]:
    return {str(s): {str(d): h for d, h in sorted(ch.items())} for s, ch in sorted(changes.items())}


def parse_stats(raw: dict[str, Any]) -> dict[tuple[int, int], dict[str, Any]]:
    """The emulator's {"a-b": {"ab": S, "ba": S}} as {(a, b): ...}."""
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for key, val in raw.items():
        try:
            a, b = (int(x) for x in key.split("-"))
        except ValueError:
            continue
        out[(a, b)] = val
    return out


def add_stats(
    stats: dict[tuple[int, int], dict[str, Any]], base: dict[tuple[int, int], dict[str, Any]]
) -> dict[tuple[int, int], dict[str, Any]]:
    """Per-link counters plus a baseline (what links had carried before an emulator restart)."""
    if not base:
        return stats
    out = {}
    for pair, dirs in stats.items():
        b = base.get(pair)
        out[pair] = (
            dirs
            if b is None
            else {d: {k: v + b.get(d, {}).get(k, 0) for k, v in s.items()} for d, s in dirs.items()}
        )
    return out
