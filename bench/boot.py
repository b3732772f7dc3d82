"""Boot: click to `up` for one server, and a 10-server topology file from cold to all joined.

    .venv/bin/python bench/boot.py [--quick] [--rounds 3] [--servers 10]

`click to up`: POST /api/servers on a fresh controller (cold: the first server also starts the run's
PostgreSQL) and then on the same controller again (warm), timed from the request to the websocket's
`server_updated` with state `up` (which includes registering the test user). `topology file`: a fresh
controller, PUT /api/topology/file with an N-server grid (0.01 ms links), time until all are up,
then until a room on synapse0 has every server joined. Writes bench/results/boot.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import threading
import time
from typing import Any

import _common
import _hs
from websockets.sync.client import connect

from meshsim.topo import generators
from meshsim.topo.params import Defaults

FAST = Defaults(latency_scale=0.01, decay=False, bandwidth=100_000_000, max_latency=0.012)


class UpTimes:
    """Monotonic time at which each server first showed state `up` on the websocket."""

    def __init__(self, port: int) -> None:
        self.up: dict[int, float] = {}
        self.failed: dict[int, str] = {}
        self._ws = connect(f"ws://127.0.0.1:{port}/api/ws", open_timeout=10, max_size=None)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        with contextlib.suppress(Exception):
            for raw in self._ws:
                now = time.monotonic()
                msg = json.loads(raw)
                if msg["type"] in ("server_added", "server_updated"):
                    s = msg["server"]
                    if s["state"] == "up":
                        self.up.setdefault(s["id"], now)
                    elif s["state"] == "failed":
                        self.failed[s["id"]] = str(s.get("reason"))

    def wait(self, ids: set[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ids <= set(self.up):
            if ids & set(self.failed):
                raise RuntimeError(f"failed: {self.failed}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not up after {timeout:.0f} s: {sorted(ids - set(self.up))}")
            time.sleep(0.01)

    def close(self) -> None:
        self._ws.close()


def click_to_up(warm_rounds: int) -> list[dict[str, Any]]:
    """One cold add, then `warm_rounds` more adds on the same controller."""
    out = []
    with _hs.controller() as sim:
        ups = UpTimes(sim.port)
        try:
            for k in range(1 + warm_rounds):
                t0 = time.monotonic()
                sid = sim.add(100 + 50 * k, 100)["id"]
                ups.wait({sid}, timeout=240)
                info = sim.get(f"/api/servers/{sid}")
                out.append(
                    {
                        "case": "cold" if k == 0 else "warm",
                        "seconds": ups.up[sid] - t0,
                        "synapse_boot_s": info.get("boot_seconds"),
                    }
                )
                print(f"  click to up ({out[-1]['case']}): {out[-1]['seconds']:.2f} s", flush=True)
        finally:
            ups.close()
    return out


async def _join(sim: Any, n: int) -> None:
    room = _hs.Room({i: sim.client_url(i) for i in range(n)})
    try:
        await room.login()
        await room.create_and_join(timeout=60 + 10 * n)
        deadline = time.monotonic() + 120
        while await room.joined_count(0) < n:
            if time.monotonic() > deadline:
                raise TimeoutError("not every server joined")
            await asyncio.sleep(0.2)
    finally:
        await room.close()


def topology_file(n: int) -> dict[str, Any]:
    cols = min(n, 5)
    body = _hs.topology_body(generators.grid(-(-n // cols), cols, defaults=FAST))
    body["servers"] = body["servers"][:n]
    with _hs.controller() as sim:
        ups = UpTimes(sim.port)
        try:
            t0 = time.monotonic()
            sim.req("PUT", "/api/topology/file", body).raise_for_status()
            ups.wait(set(range(n)), timeout=120 + 10 * n)
            up = [ups.up[i] - t0 for i in range(n)]
            t_up = time.monotonic() - t0
            asyncio.run(_join(sim, n))
            t_joined = time.monotonic() - t0
        finally:
            ups.close()
    print(f"  topology file: all up {t_up:.1f} s, all joined {t_joined:.1f} s", flush=True)
    return {
        "servers": n,
        "first_up_s": min(up),
        "median_up_s": statistics.median(up),
        "all_up_s": max(up),
        "all_joined_s": t_joined,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one round of each, 2 warm adds (< 2 min)")
    ap.add_argument("--rounds", type=int, help="topology-file rounds and cold adds (default 3, quick 1)")
    ap.add_argument("--servers", type=int, default=10, help="servers in the topology file")
    args = ap.parse_args()
    _common.require_root()
    rounds = args.rounds or (1 if args.quick else 3)
    warm = 2 if args.quick else 4
    clicks: list[dict[str, Any]] = []
    for _ in range(rounds):
        clicks += click_to_up(warm)
    files = [topology_file(args.servers) for _ in range(rounds)]

    summary = []
    for case in ("cold", "warm"):
        xs = [c["seconds"] for c in clicks if c["case"] == case]
        boots = [c["synapse_boot_s"] or 0.0 for c in clicks if c["case"] == case]
        summary.append(
            [f"click to up ({case})", len(xs), statistics.median(xs), max(xs), statistics.median(boots)]
        )
    for key in ("all_up_s", "all_joined_s"):
        xs = [f[key] for f in files]
        summary.append(
            [
                f"{args.servers}-server file: {key[:-2].replace('_', ' ')}",
                len(xs),
                statistics.median(xs),
                max(xs),
                "",
            ]
        )
    _common.print_table("Boot (seconds)", ["what", "n", "median", "max", "synapse boot"], summary)
    _common.write_results("boot", {"quick": args.quick, "clicks": clicks, "topology_files": files})


if __name__ == "__main__":
    main()
