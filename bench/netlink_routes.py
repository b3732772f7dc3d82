"""Route pushes into 100 node namespaces: one `ip -n NS -batch -` per node vs one NsRoutes socket per node.

Scenarios: "bring-up" installs 99 routes in each of 100 namespaces (9,900 routes, from empty), and
"rewire" changes the gateway of 1 route in each of the 100 namespaces (what a move costs). The `ip`
path runs like Network.push_routes does (a 4-thread pool, SubprocessRunner.batch per node). Each node
has 4 veth interfaces up, named eth{peer}, and its /32 address on lo. Prints a table and writes
bench/results/netlink_routes.json.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import _common

from meshsim.kernel import cmds, names
from meshsim.kernel.netlink import NsRoutes
from meshsim.kernel.runner import SubprocessRunner

DEGREE = 4


def neighbours(node: int, n: int) -> list[int]:
    return [(node + k) % n for k in (1, 2, n - 1, n - 2)][:DEGREE]


def plan(n: int, flip: int = 0) -> dict[int, dict[int, int]]:
    """Every node routes every other node via one of its neighbours; `flip` rotates the choice."""
    out = {}
    for node in range(n):
        nbs = neighbours(node, n)
        out[node] = {dst: nbs[(dst + flip) % DEGREE] for dst in range(n) if dst != node}
    return out


def as_tuples(node: int, changes: dict[int, int]) -> list[tuple[str, str, str, str]]:
    src = names.address(node)
    return [
        (names.address(d), names.address(h), names.peer_ifname(h), src) for d, h in sorted(changes.items())
    ]


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(samples), 2),
        "min_ms": round(min(samples), 2),
        "max_ms": round(max(samples), 2),
        "runs": len(samples),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5, help="bring-up repetitions")
    ap.add_argument("--rewires", type=int, default=20, help="rewire repetitions")
    args = ap.parse_args()
    _common.require_root()
    n = args.nodes
    run = secrets.token_hex(2)
    runner = SubprocessRunner()
    made: list[str] = []
    socks: dict[int, NsRoutes] = {}
    pool = ThreadPoolExecutor(4, "bench")
    try:
        t_setup = time.perf_counter()
        for i in range(n):
            ns = names.netns(run, i)
            runner.batch([cmds.netns_add(ns)])
            made.append(ns)
        lines = {
            i: cmds.node_init(i)
            + [f"link add {names.peer_ifname(p)} type veth peer name q{p}" for p in neighbours(i, n)]
            + [f"link set {names.peer_ifname(p)} up" for p in neighbours(i, n)]
            for i in range(n)
        }
        list(pool.map(lambda i: runner.batch(lines[i], netns=names.netns(run, i)), range(n)))
        print(f"setup of {n} namespaces: {time.perf_counter() - t_setup:.1f} s")

        t0 = time.perf_counter()
        for i in range(n):
            socks[i] = NsRoutes(names.netns(run, i))
        open_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        for i in range(n):
            socks[i].ifindex("lo")
        ifindex_ms = (time.perf_counter() - t0) * 1000

        def flush() -> None:
            for i in range(n):
                socks[i].apply(delete=[names.address(d) for d in range(n) if d != i])

        def push_ip(p: dict[int, dict[int, int]]) -> None:
            futs = [
                pool.submit(runner.batch, cmds.route_lines(i, ch), netns=names.netns(run, i))
                for i, ch in p.items()
            ]
            for f in futs:
                f.result()

        def push_nl(p: dict[int, dict[int, int]], threads: bool) -> None:
            def one(i: int) -> None:
                errs = socks[i].apply(as_tuples(i, p[i]))
                if errs:
                    raise errs[0]

            if threads:
                list(pool.map(one, p))
            else:
                for i in p:
                    one(i)

        full = plan(n)
        methods: dict[str, Callable[[dict[int, dict[int, int]]], None]] = {
            "ip -batch (4 threads)": push_ip,
            "NsRoutes (1 thread)": lambda p: push_nl(p, False),
            "NsRoutes (4 threads)": lambda p: push_nl(p, True),
        }
        results: dict[str, dict[str, dict[str, float]]] = {"bring-up": {}, "rewire": {}}
        for name, push in methods.items():
            samples = []
            for _ in range(args.repeats):
                flush()
                samples.append(timed(lambda push=push: push(full)))
            results["bring-up"][name] = summary(samples)
            check(socks, full, n)

            samples = []
            for r in range(args.rewires):
                # one route per node changes gateway: dst (i + 50) % n, flipped each repetition
                changed = {i: {(i + n // 2) % n: neighbours(i, n)[(r + 1) % 2]} for i in range(n)}
                samples.append(timed(lambda push=push, changed=changed: push(changed)))
                for i, ch in changed.items():
                    full[i].update(ch)
            results["rewire"][name] = summary(samples)
            check(socks, full, n)

        rows = [
            [scen, name, s["median_ms"], s["min_ms"], s["max_ms"], s["runs"]]
            for scen, by in results.items()
            for name, s in by.items()
        ]
        _common.print_table(
            f"route pushes, {n} namespaces (bring-up = {n * (n - 1)} routes, rewire = 1 route per namespace)",
            ["scenario", "method", "median ms", "min ms", "max ms", "runs"],
            rows,
        )
        print(
            f"\nopening {n} NsRoutes sockets: {open_ms:.1f} ms; first ifindex (link dump) in each: {ifindex_ms:.1f} ms"
        )
        _common.write_results(
            "netlink_routes",
            {
                "nodes": n,
                "routes_bring_up": n * (n - 1),
                "degree": DEGREE,
                "open_sockets_ms": round(open_ms, 2),
                "first_link_dump_ms": round(ifindex_ms, 2),
                "results": results,
            },
        )
    finally:
        for s in socks.values():
            s.close()
        pool.shutdown()
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False)


def check(socks: dict[int, NsRoutes], want: dict[int, dict[int, int]], n: int) -> None:
    """The kernel holds exactly the planned routes (read back over netlink)."""
    for i in range(n):
        got = socks[i].routes()
        exp = {names.address(d): names.address(h) for d, h in want[i].items()}
        if got != exp:
            raise SystemExit(f"node {i}: routes differ from plan ({len(got)} vs {len(exp)})")


if __name__ == "__main__":
    main()
