"""How much traffic one link emulator process carries, and how its timing holds up under load (root only).

    sudo .venv/bin/python bench/link_capacity.py [--quick]

1. Throughput: K parallel TCP flows over unlimited, zero-delay links; frames/s and Gbit/s from the
   emulator's own counters, with the emulator's CPU use (frames per CPU-second = per-core capacity).
2. RTT error vs load: a ring of up to 100 links (10 ms each way on the probed link, 10 Mbit/s and 5 ms on
   the loaded ones), with 0..N background TCP flows, probing one link with the UDP prober.
Writes bench/results/link_capacity.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time

import _common

from meshsim.linkemu.testbed import Testbed, node_addr, percentile

PORT = 9000


def totals(tb: Testbed) -> tuple[int, int]:
    stats = tb.client.stats()
    frames = sum(d["packets"] for s in stats.values() for d in s.values())
    nbytes = sum(d["bytes"] for s in stats.values() for d in s.values())
    return frames, nbytes


def start_flow(tb: Testbed, a: int, b: int, port: int, seconds: float) -> None:
    tb.popen(b, "sink", "--port", str(port), "--seconds", str(seconds), stdout=subprocess.DEVNULL)
    time.sleep(0.05)
    tb.popen(
        a,
        "send",
        "--dst",
        node_addr(b),
        "--port",
        str(port),
        "--seconds",
        str(seconds),
        stdout=subprocess.DEVNULL,
    )


def measure_window(tb: Testbed, seconds: float) -> dict:
    f0, b0 = totals(tb)
    c0 = tb.emu_cpu_s()
    t0 = time.monotonic()
    time.sleep(seconds)
    f1, b1 = totals(tb)
    c1 = tb.emu_cpu_s()
    dt = time.monotonic() - t0
    frames = f1 - f0
    cpu = c1 - c0
    return {
        "frames_per_s": frames / dt,
        "gbit_per_s": (b1 - b0) * 8 / dt / 1e9,
        "emu_cpu_pct": 100 * cpu / dt,
        "frames_per_cpu_s": frames / cpu if cpu > 0 else 0.0,
    }


def bench_throughput(flows_list: list[int], seconds: float, realtime: int) -> list[dict]:
    rows = []
    for flows in flows_list:
        with Testbed(realtime=realtime) as tb:
            tb.add_nodes(2 * flows)
            for k in range(flows):
                tb.add_link(2 * k, 2 * k + 1)
            for k in range(flows):
                start_flow(tb, 2 * k, 2 * k + 1, PORT + k, seconds + 4)
            time.sleep(1.5)
            row = {"flows": flows, **measure_window(tb, seconds)}
            rows.append(row)
            print(f"  throughput {flows} flow(s): {row['frames_per_s']:.0f} frames/s", flush=True)
    return rows


def bench_load(n_links: int, loads: list[int], probes: int, realtime: int) -> list[dict]:
    rows = []
    with Testbed(realtime=realtime) as tb:
        tb.add_nodes(n_links)
        probe_params = {"delay_ms": 10.0}
        load_params = {"rate_bps": 10_000_000, "delay_ms": 5.0}
        for i in range(n_links):
            j = (i + 1) % n_links
            params = probe_params if i == 0 else load_params
            tb.add_link(i, j, params, params)
        tb.popen(1, "echo", "--port", str(PORT), "--seconds", "900", stdout=subprocess.DEVNULL)
        active = 0
        for load in loads:
            while active < load:  # flows on links 2, 3, 4, ... (node i -> i+1)
                i = 2 + active
                start_flow(tb, i, (i + 1) % n_links, PORT + 100 + i, 600)
                active += 1
            time.sleep(2.0)
            f0, _ = totals(tb)
            c0 = tb.emu_cpu_s()
            late0 = tb.client.call({"id": 0, "op": "stats"})["lateness"]
            t0 = time.monotonic()
            p = tb.popen(
                0,
                "ping",
                "--dst",
                node_addr(1),
                "--port",
                str(PORT),
                "--count",
                str(probes),
                "--interval",
                "0.01",
                "--wait",
                "1",
            )
            out, err = p.communicate(timeout=probes * 0.01 + 60)
            dt = time.monotonic() - t0
            f1, _ = totals(tb)
            cpu = tb.emu_cpu_s() - c0
            late1 = tb.client.call({"id": 0, "op": "stats"})["lateness"]
            res = json.loads(out)
            errors = [r - 20.0 for r in res["rtt_ms"] if r is not None]
            n = late1["frames"] - late0["frames"]
            late_mean = (
                (late1["mean_us"] * late1["frames"] - late0["mean_us"] * late0["frames"]) / n if n else 0.0
            )
            row = {
                "links": n_links,
                "flows": load,
                "frames_per_s": (f1 - f0) / dt,
                "emu_cpu_pct": 100 * cpu / dt,
                "received": res["received"],
                "sent": res["sent"],
                "err_median_ms": percentile(errors, 50),
                "err_p99_ms": percentile(errors, 99),
                "late_mean_us": late_mean,
            }
            rows.append(row)
            print(
                f"  load {load} flow(s): {row['frames_per_s']:.0f} frames/s, "
                f"err median {row['err_median_ms']:.3f} ms",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer links, flows and probes")
    parser.add_argument("--realtime", type=int, default=0, metavar="PRIO", help="run the emulator SCHED_FIFO")
    args = parser.parse_args()
    _common.require_root()
    t0 = time.monotonic()
    throughput = bench_throughput(
        [1, 2] if args.quick else [1, 2, 4], 3.0 if args.quick else 5.0, args.realtime
    )
    load = bench_load(
        20 if args.quick else 100,
        [0, 4, 10] if args.quick else [0, 10, 25, 50, 75],
        100 if args.quick else 300,
        args.realtime,
    )
    elapsed = time.monotonic() - t0

    _common.print_table(
        "Throughput: TCP flows over unlimited links",
        ["flows", "frames/s", "Gbit/s", "emu CPU %", "frames/CPU-s"],
        [
            [
                r["flows"],
                round(r["frames_per_s"]),
                r["gbit_per_s"],
                r["emu_cpu_pct"],
                round(r["frames_per_cpu_s"]),
            ]
            for r in throughput
        ],
    )
    _common.print_table(
        "RTT error vs load (probe link 10 ms each way; loaded links 10 Mbit/s)",
        ["links", "flows", "frames/s", "emu CPU %", "recv", "median ms", "p99 ms", "late mean us"],
        [
            [
                r["links"],
                r["flows"],
                round(r["frames_per_s"]),
                r["emu_cpu_pct"],
                f"{r['received']}/{r['sent']}",
                r["err_median_ms"],
                r["err_p99_ms"],
                r["late_mean_us"],
            ]
            for r in load
        ],
    )
    print(f"\nelapsed {elapsed:.1f} s")
    _common.write_results(
        "link_capacity", {"quick": args.quick, "elapsed_s": elapsed, "throughput": throughput, "load": load}
    )


if __name__ == "__main__":
    main()
