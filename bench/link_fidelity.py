"""How faithfully the link emulator reproduces latency, bandwidth, jitter and loss (root only).

    sudo .venv/bin/python bench/link_fidelity.py [--quick]

Builds a line of namespaces 0-1-2-3 joined by emulated links plus a separate pair for bandwidth, and
measures with the UDP prober / TCP sink of meshsim.linkemu.probe (timed in user space at both ends).
Writes bench/results/link_fidelity.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time

import _common

from meshsim.linkemu.testbed import Testbed, goodput_bps, node_addr, percentile

PORT = 9000


def run_probe(tb: Testbed, src: int, dst: int, count: int, interval: float, wait: float) -> dict:
    return tb.ping(src, dst, count, interval, wait, PORT)


def set_line(tb: Testbed, params: dict) -> None:
    for link in ("0-1", "1-2", "2-3"):
        tb.client.set(link, ab=params, ba=params)


def bench_rtt(tb: Testbed, delays: list[float], count: int) -> list[dict]:
    rows = []
    for delay in delays:
        set_line(tb, {"delay_ms": delay, "jitter_ms": 0.0, "loss_pct": 0.0})
        time.sleep(0.05)
        for hops, dst in ((1, 1), (3, 3)):
            expected = 2 * hops * delay
            res = run_probe(tb, 0, dst, count, 0.01, wait=expected / 1000 + 1.0)
            errors = [r - expected for r in res["rtt_ms"] if r is not None]
            rows.append(
                {
                    "delay_ms": delay,
                    "hops": hops,
                    "expected_ms": expected,
                    "received": res["received"],
                    "sent": res["sent"],
                    "err_median_ms": percentile(errors, 50),
                    "err_p99_ms": percentile(errors, 99),
                    "err_min_ms": min(errors),
                }
            )
    return rows


def bench_goodput(tb: Testbed, rates: list[int], seconds: float) -> list[dict]:
    rows = []
    for rate in rates:
        params = {"rate_bps": rate, "delay_ms": 5.0}
        tb.client.set("4-5", ab=params, ba=params)
        # slow links need longer to get past slow start
        dur = seconds * (2 if rate < 500_000 else 1)
        sink = tb.popen(5, "sink", "--port", str(PORT + 1), "--seconds", str(dur))
        time.sleep(0.3)
        sender = tb.popen(
            4,
            "send",
            "--dst",
            node_addr(5),
            "--port",
            str(PORT + 1),
            "--seconds",
            str(dur + 3),
            stdout=subprocess.DEVNULL,
        )
        out, err = sink.communicate(timeout=dur + 30)
        sender.kill()
        sender.wait()
        if sink.returncode != 0:
            raise RuntimeError(err)
        got = goodput_bps(json.loads(out)["samples"], skip_s=min(2.0, dur / 3))
        rows.append({"rate_bps": rate, "goodput_bps": round(got), "pct_of_configured": 100 * got / rate})
        time.sleep(0.5)  # let the previous flow's leftovers drain
    return rows


def bench_jitter(tb: Testbed, jitters: list[float], count: int) -> list[dict]:
    rows = []
    for jitter in jitters:
        tb.client.set(
            "0-1", ab={"delay_ms": 50.0, "jitter_ms": jitter}, ba={"delay_ms": 50.0, "jitter_ms": 0.0}
        )
        res = run_probe(tb, 0, 1, count, 0.02, wait=1.0)
        values = [r for r in res["rtt_ms"] if r is not None]
        rows.append(
            {
                "jitter_ms": jitter,
                "rtt_sd_ms": statistics.pstdev(values),
                "rtt_mean_ms": statistics.fmean(values),
                "received": res["received"],
            }
        )
    tb.client.set("0-1", ab={"jitter_ms": 0.0})
    return rows


def bench_loss(tb: Testbed, losses: list[float], count: int) -> list[dict]:
    rows = []
    for loss in losses:
        tb.client.set("0-1", ab={"delay_ms": 1.0, "loss_pct": loss}, ba={"delay_ms": 1.0, "loss_pct": 0.0})
        res = run_probe(tb, 0, 1, count, 0.002, wait=1.0)
        rows.append(
            {
                "loss_pct": loss,
                "measured_pct": 100 * (1 - res["received"] / res["sent"]),
                "probes": res["sent"],
            }
        )
    tb.client.set("0-1", ab={"loss_pct": 0.0})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer probes and shorter transfers (< 60 s)")
    parser.add_argument("--realtime", type=int, default=0, metavar="PRIO", help="run the emulator SCHED_FIFO")
    args = parser.parse_args()
    _common.require_root()
    count = 60 if args.quick else 400
    seconds = 4.0 if args.quick else 10.0
    t0 = time.monotonic()
    with Testbed(realtime=args.realtime) as tb:
        tb.add_nodes(6)
        for a, b in ((0, 1), (1, 2), (2, 3), (4, 5)):
            tb.add_link(a, b)
        for src, dst, via in ((0, 2, 1), (0, 3, 1), (1, 3, 2), (2, 0, 1), (3, 0, 2), (3, 1, 2)):
            tb.route(src, dst, via)
        tb.popen(1, "echo", "--port", str(PORT), "--seconds", "900", stdout=subprocess.DEVNULL)
        tb.popen(3, "echo", "--port", str(PORT), "--seconds", "900", stdout=subprocess.DEVNULL)
        time.sleep(0.3)
        rtt = bench_rtt(tb, [0.0, 10.0, 100.0, 500.0], count)
        goodput = bench_goodput(tb, [56_000, 1_000_000, 10_000_000, 100_000_000], seconds)
        jitter = bench_jitter(tb, [10.0], count * 2)
        loss = bench_loss(tb, [1.0, 10.0], 500 if args.quick else 3000)
    elapsed = time.monotonic() - t0

    _common.print_table(
        "RTT error (measured - configured), UDP prober",
        ["delay/link ms", "hops", "expected ms", "recv", "median ms", "p99 ms", "min ms"],
        [
            [
                r["delay_ms"],
                r["hops"],
                r["expected_ms"],
                f"{r['received']}/{r['sent']}",
                r["err_median_ms"],
                r["err_p99_ms"],
                r["err_min_ms"],
            ]
            for r in rtt
        ],
    )
    _common.print_table(
        "TCP goodput (one flow, 5 ms per direction)",
        ["rate bit/s", "goodput bit/s", "% of rate"],
        [[r["rate_bps"], r["goodput_bps"], r["pct_of_configured"]] for r in goodput],
    )
    _common.print_table(
        "Jitter (one direction, 50 ms delay)",
        ["jitter ms", "RTT sd ms", "RTT mean ms"],
        [[r["jitter_ms"], r["rtt_sd_ms"], r["rtt_mean_ms"]] for r in jitter],
    )
    _common.print_table(
        "Loss (one direction)",
        ["loss %", "measured %", "probes"],
        [[r["loss_pct"], r["measured_pct"], r["probes"]] for r in loss],
    )
    print(f"\nelapsed {elapsed:.1f} s")
    _common.write_results(
        "link_fidelity",
        {
            "quick": args.quick,
            "elapsed_s": elapsed,
            "rtt": rtt,
            "goodput": goodput,
            "jitter": jitter,
            "loss": loss,
        },
    )


if __name__ == "__main__":
    main()
