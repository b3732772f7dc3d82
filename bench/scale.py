"""Scale: time and memory to bring up N routers with their links and routes, and to rewire after a move.

    .venv/bin/python bench/scale.py [--sizes 100 300] [--moves 20]

Prints a table and writes bench/results/scale.json. Anchors: meshnet-lab 10.8 s for 100 nodes / 180
links; Mininet ~0.1-0.2 s per node. Targets: <= 2 s for 100 routers; a rewire after a move <= 100 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from meshsim.harness import Sim
from meshsim.topo import generators

RESULTS = Path(__file__).resolve().parent / "results"


def mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure(n: int, moves: int, seed: int) -> dict:
    topo = generators.random_geometric(n, seed=seed)
    body = topo.to_dict()
    for s in body["servers"]:
        s["kind"] = "router"
    with tempfile.TemporaryDirectory(prefix="meshsim-bench-") as home:
        sim = Sim(Path(home))
        try:
            mem0 = mem_available_kib()
            t0 = time.perf_counter()
            r = sim.req("PUT", "/api/topology/file", body)
            r.raise_for_status()
            up_s = time.perf_counter() - t0
            snap = r.json()
            links = len(snap["links"])
            routes = sum(len(t) for t in snap["routes"].values())
            mem_mib = (mem0 - mem_available_kib()) / 1024
            ctl_rss = rss_kib(sim.proc.pid) / 1024
            emu_pid = int((Path(home) / "runs" / sim.run / "pids" / "linkemu").read_text())
            emu_rss = rss_kib(emu_pid) / 1024
            times = []
            servers = snap["servers"]
            for i in range(moves):
                s = servers[(i * 7) % len(servers)]
                dx = 15 if i % 2 == 0 else -15
                t0 = time.perf_counter()
                sim.req("PUT", f"/api/servers/{s['id']}", {"x": s["x"] + dx, "y": s["y"]}).raise_for_status()
                times.append((time.perf_counter() - t0) * 1000)
                s["x"] += dx
            t0 = time.perf_counter()
            sim.req("POST", "/api/reset").raise_for_status()
            down_s = time.perf_counter() - t0
        finally:
            sim.stop()
    return {
        "routers": n,
        "links": links,
        "routes": routes,
        "bring_up_s": round(up_s, 3),
        "per_node_ms": round(up_s * 1000 / n, 2),
        "tear_down_s": round(down_s, 3),
        "move_rewire_ms_median": round(statistics.median(times), 1),
        "move_rewire_ms_max": round(max(times), 1),
        "mem_used_mib": round(mem_mib, 1),
        "controller_rss_mib": round(ctl_rss, 1),
        "emulator_rss_mib": round(emu_rss, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 300])
    ap.add_argument("--moves", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rows = [measure(n, args.moves, args.seed) for n in args.sizes]
    cols = list(rows[0])
    print(" | ".join(f"{c:>22}" for c in cols))
    for r in rows:
        print(" | ".join(f"{r[c]!s:>22}" for c in cols))
    RESULTS.mkdir(exist_ok=True)
    out = {"bench": "scale", "ts": time.time(), "rows": rows,
           "targets": {"bring_up_100_s": 2.0, "move_rewire_ms": 100}}
    (RESULTS / "scale.json").write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
