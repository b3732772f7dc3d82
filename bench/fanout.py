"""Fan-out: time for one message to reach every server of an N-server room.

    .venv/bin/python bench/fanout.py [--quick] [--servers 10 30] [--messages 20]

Three setups per N, all real Synapse servers with PostgreSQL, all joined to one room on synapse0:

- `mesh 0 ms`: the controller with an N-server grid, links 0.01 ms / 100 Mbit/s, grid neighbours only
  (routes are multi-hop: up to rows + cols - 2 hops from the corner server 0);
- `mesh 50 ms`: the same servers after PUT /api/defaults makes every link 50 ms;
- `bridge`: no emulator: N namespaces on one Linux bridge (in a namespace of its own), one hop apart.

synapse0 sends `--messages` messages one after the other; per message, the time from its
event_sent to the last event_received (telemetry timestamps, ms) is the fan-out time. The
emulator's overhead is mesh 0 ms over bridge. Writes bench/results/fanout.json.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
import _hs

from meshsim import harness
from meshsim.homeserver.client_proxy import ClientProxy
from meshsim.homeserver.fleet import HomeserverFleet
from meshsim.homeserver.netns_files import remove_netns_etc, write_hosts
from meshsim.homeserver.process import BootLimiter, SynapseServer
from meshsim.homeserver.telemetry_sink import TelemetrySink
from meshsim.kernel import names
from meshsim.topo import generators
from meshsim.topo.params import Defaults

ZERO = {"latency_scale": 0.01, "max_latency": 0.012, "decay": False, "bandwidth": 100_000_000}
FIFTY = {"latency_scale": 50.0, "max_latency": 60.0, "decay": False, "bandwidth": 100_000_000}


def grid_shape(n: int) -> tuple[int, int]:
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


async def warm_up(room: _hs.Room, tele: _hs.Telemetry, n: int, tries: int = 10) -> int:
    """Send until one message reaches every server within 30 s (federation connections up, no backoff)."""
    for k in range(tries):
        eid = await room.send(0, f"warm-up {k}")
        try:
            await tele.fanout(eid, set(range(1, n)), timeout=30)
            return k + 1
        except TimeoutError as exc:
            print(f"  warm-up {k}: {exc}", flush=True)
    raise RuntimeError(f"no warm-up message reached all {n} servers in {tries} tries")


async def measure(room: _hs.Room, tele: _hs.Telemetry, n: int, messages: int) -> dict[str, Any]:
    """Send `messages` from server 0 one after the other; fan-out times (a message lost after 90 s counts)."""
    warm = await warm_up(room, tele, n)
    alls, medians, lost = [], [], 0
    for k in range(messages):
        eid = await room.send(0, f"fanout {k}")
        try:
            r = await tele.fanout(eid, set(range(1, n)), timeout=90)
        except TimeoutError as exc:
            print(f"  message {k}: {exc} (websocket reconnects so far: {tele.reconnects})", flush=True)
            lost += 1
            continue
        alls.append(r["all_ms"])
        medians.append(r["median_ms"])
        await asyncio.sleep(0.2)
    q = _hs.quantiles(alls)
    return {
        "all_ms_median": q["median"],
        "all_ms_p90": q["p90"],
        "all_ms_max": q["max"],
        "per_server_ms_median": _hs.quantiles(medians)["median"],
        "lost": lost,
        "warm_up_messages": warm,
        "samples": alls,
    }


# -- through the controller ---------------------------------------------------------------------


async def _mesh_rounds(sim: Any, tele: _hs.Telemetry, n: int, messages: int) -> list[dict[str, Any]]:
    room = _hs.Room({i: sim.client_url(i) for i in range(n)})
    rows, cols = grid_shape(n)
    try:
        await room.login()
        await room.create_and_join(timeout=60 + 10 * n)
        out = []
        for label, defaults, link_ms in (("mesh 0 ms", ZERO, 0.01), ("mesh 50 ms", FIFTY, 50.0)):
            sim.req("PUT", "/api/defaults", defaults).raise_for_status()
            await asyncio.sleep(1)
            r = await measure(room, tele, n, messages)
            hops = rows + cols - 2
            out.append({"setup": label, "servers": n, "max_hops": hops, "ideal_ms": hops * link_ms, **r})
            print(f"  {label}: {r['all_ms_median']:.0f} ms median", flush=True)
        return out
    finally:
        await room.close()


def mesh(n: int, messages: int) -> list[dict[str, Any]]:
    rows, cols = grid_shape(n)
    body = _hs.topology_body(generators.grid(rows, cols, defaults=Defaults(**ZERO)))  # type: ignore[arg-type]
    body["servers"] = body["servers"][:n]
    with _hs.controller() as sim:
        tele = _hs.Telemetry()
        tele.follow_websocket(sim)
        try:
            sim.req("PUT", "/api/topology/file", body).raise_for_status()
            _hs.wait_all_up(sim, range(n), timeout=120 + 8 * n)
            rounds = asyncio.run(_mesh_rounds(sim, tele, n, messages))
            for r in rounds:
                r["ws_reconnects"] = tele.reconnects
            return rounds
        finally:
            tele.close()


# -- plain bridge, no emulator ------------------------------------------------------------------


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=30)


class Bridge:
    """N namespaces ms{run}-{i} with eth0 on one bridge in namespace ms{run}-br; 10.99.x.y/16 each."""

    def __init__(self, n: int) -> None:
        self.run = secrets.token_hex(2)
        self.n = n
        self.br_ns = f"ms{self.run}-br"
        self.nss = [names.netns(self.run, i) for i in range(n)]
        self.made: list[str] = []

    def up(self) -> None:
        _ip("netns", "add", self.br_ns)
        self.made.append(self.br_ns)
        _ip("-n", self.br_ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.br_ns, "link", "set", "br0", "up")
        for i, ns in enumerate(self.nss):
            _ip("netns", "add", ns)
            self.made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"v{i}", "netns", self.br_ns)
            _ip("-n", ns, "addr", "add", f"{names.address(i)}/16", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", self.br_ns, "link", "set", f"v{i}", "master", "br0", "up")
            write_hosts(ns, self.n - 1)

    def down(self) -> None:
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
            remove_netns_etc(ns)
        self.made = []


async def _bridge_round(run_dir: Path, bridge: Bridge, n: int, messages: int) -> dict[str, Any]:
    tele = _hs.Telemetry()
    sink = TelemetrySink(run_dir / "telemetry.sock", tele.add)
    await sink.start()
    fleet = HomeserverFleet(run_dir, telemetry_socket=str(sink.path), max_servers=n)
    servers: list[SynapseServer] = []
    proxies: list[ClientProxy] = []
    room: _hs.Room | None = None
    try:
        await asyncio.to_thread(fleet.start)
        servers = [fleet.server(i, ns) for i, ns in enumerate(bridge.nss)]
        limiter = BootLimiter(4)
        ok = await asyncio.gather(*(limiter.boot(s, 300) for s in servers))
        if not all(ok):
            raise RuntimeError([(s.spec.server_name, s.reason) for s in servers if s.state != "up"])
        await asyncio.gather(*(s.register_user(*_hs.TEST_USER) for s in servers))
        base = harness.free_port_base(n)
        proxies = [ClientProxy(base + i, s.paths.client_socket) for i, s in enumerate(servers)]
        for p in proxies:
            await p.start()
        room = _hs.Room({i: p.url for i, p in enumerate(proxies)})
        await room.login()
        await room.create_and_join(timeout=60 + 10 * n)
        r = await measure(room, tele, n, messages)
        print(f"  bridge: {r['all_ms_median']:.0f} ms median", flush=True)
        return {"setup": "bridge", "servers": n, "max_hops": 1, "ideal_ms": 0.0, **r}
    finally:
        if room is not None:
            await room.close()
        for p in proxies:
            await p.stop()
        for s in servers:
            s.kill()
        await asyncio.to_thread(fleet.stop)
        sink.close()


def bridge(n: int, messages: int) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix="msbench-br-", dir="/tmp"))
    os.chmod(run_dir, 0o755)
    br = Bridge(n)
    try:
        br.up()
        return asyncio.run(_bridge_round(run_dir, br, n, messages))
    finally:
        br.down()
        shutil.rmtree(run_dir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 servers, 3 messages (< 2 min)")
    ap.add_argument("--servers", type=int, nargs="+", help="room sizes (default 10 30, quick 10)")
    ap.add_argument("--messages", type=int, help="measured messages per setup (default 20, quick 3)")
    args = ap.parse_args()
    _common.require_root()
    sizes = args.servers or ([10] if args.quick else [10, 30])
    messages = args.messages or (3 if args.quick else 20)
    rows: list[dict[str, Any]] = []
    for n in sizes:
        t = time.monotonic()
        print(f"{n} servers", flush=True)
        rows += mesh(n, messages)
        rows.append(bridge(n, messages))
        zero = next(r for r in rows if r["servers"] == n and r["setup"] == "mesh 0 ms")
        br = rows[-1]
        zero["overhead_vs_bridge"] = zero["all_ms_median"] / max(br["all_ms_median"], 1.0)
        print(f"  ({time.monotonic() - t:.0f} s)", flush=True)
    headers = ["setup", "servers", "max_hops", "ideal_ms", "all_ms_median", "all_ms_p90", "all_ms_max"]
    headers += ["per_server_ms_median", "lost"]
    table = [[*(r[h] for h in headers), r.get("overhead_vs_bridge", "")] for r in rows]
    _common.print_table("Fan-out of one message to every server (ms)", [*headers, "x bridge"], table)
    _common.write_results("fanout", {"quick": args.quick, "messages": messages, "rounds": rows})


if __name__ == "__main__":
    main()
