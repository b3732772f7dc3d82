"""Time the topology model: full routes() recompute and one move's diff, at 100 and 300 servers.

Prints a table and writes bench/results/topo_routes.json.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

from meshsim.topo.generators import random_geometric

SIZES = (100, 300)
ROUTE_REPEATS = 10
MOVES = 50


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def bench(n: int) -> dict[str, float | int]:
    topo = random_geometric(n, seed=1)
    links = len(topo.links())
    route_times = []
    for _ in range(ROUTE_REPEATS):
        fresh = topo.copy()
        fresh._invalidate(selection_too=True)
        fresh._route_basis = None
        t0 = time.perf_counter()
        fresh.routes()
        route_times.append(time.perf_counter() - t0)
    topo.routes()
    rng = random.Random(2)
    move_times, changed = [], []
    for _ in range(MOVES):
        s = topo.servers[rng.randrange(n)]
        x, y = s.x + rng.uniform(-60, 60), s.y + rng.uniform(-60, 60)
        t0 = time.perf_counter()
        d = topo.move_server(s.id, x, y)
        move_times.append(time.perf_counter() - t0)
        changed.append(sum(len(v) for v in d.routes_changed.values()))
    return {
        "servers": n,
        "links": links,
        "routes_ms_median": _ms(statistics.median(route_times)),
        "routes_ms_max": _ms(max(route_times)),
        "move_diff_ms_median": _ms(statistics.median(move_times)),
        "move_diff_ms_p90": _ms(statistics.quantiles(move_times, n=10)[-1]),
        "move_routes_changed_median": statistics.median(changed),
    }


def main() -> None:
    rows = [bench(n) for n in SIZES]
    cols = list(rows[0])
    widths = [len(c) for c in cols]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r[c]).rjust(w) for c, w in zip(cols, widths, strict=True)))
    out = Path(__file__).parent / "results" / "topo_routes.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"python": sys.version.split()[0], "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
