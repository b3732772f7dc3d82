"""Robustness figures: requests fuzzed, faults injected and survived, load held.

    sudo .venv/bin/python bench/robustness.py            # full: 60 s load runs, 10 emulator kills
    sudo .venv/bin/python bench/robustness.py --quick    # CI-sized

Each part runs against its own `meshsim up` controller (router nodes) in a private state root.
Writes bench/results/robustness.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import _load
from _common import print_table, require_root, write_results

from meshsim.harness import Sim


def with_sim(fn: Callable[[Sim], dict[str, Any]]) -> dict[str, Any]:
    home = _load.home_dir()
    sim = Sim(home)
    try:
        return fn(sim)
    finally:
        sim.stop()
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized runs")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    require_root()
    q = args.quick
    sizes = {
        "fuzz_examples": 10 if q else 50,
        "sequences": 5 if q else 40,
        "steps": 20 if q else 40,
        "kills": 2 if q else 10,
        "load_seconds": 12 if q else 60,
    }
    t0 = time.monotonic()
    out: dict[str, Any] = {"sizes": sizes}
    print("fuzzing every operation ...", flush=True)
    out["fuzz"] = with_sim(lambda s: _load.fuzz(s, examples=sizes["fuzz_examples"], seed=args.seed))
    print("fuzzing random sequences ...", flush=True)
    out["fuzz_sequences"] = with_sim(
        lambda s: _load.fuzz_sequences(s, sequences=sizes["sequences"], steps=sizes["steps"], seed=args.seed)
    )
    print("junk telemetry ...", flush=True)
    out["fuzz_telemetry"] = with_sim(lambda s: _load.fuzz_telemetry(s, datagrams=20_000, seed=args.seed))
    print("killing the link emulator mid-traffic ...", flush=True)
    out["emulator_crash"] = with_sim(lambda s: _load.emulator_crash(s, kills=sizes["kills"]))
    print("telemetry load ...", flush=True)
    out["telemetry_load"] = with_sim(
        lambda s: _load.telemetry_load(s, rate=1000, seconds=sizes["load_seconds"], pages=3)
    )
    print("API load ...", flush=True)
    out["api_load"] = with_sim(
        lambda s: _load.api_load(s, rate=50, seconds=sizes["load_seconds"], servers=10)
    )
    print("API load with the emulator killed every 3 s ...", flush=True)
    out["api_load_kills"] = with_sim(
        lambda s: _load.api_load(s, rate=50, seconds=sizes["load_seconds"] / 2, servers=10, kill_every=3.0)
    )
    out["seconds"] = time.monotonic() - t0
    out["ok"] = report(out)
    write_results("robustness", out)
    return 0 if out["ok"] else 1


def report(r: dict[str, Any]) -> bool:
    """Print the tables; True when every check held."""
    fz, sq, tl = r["fuzz"], r["fuzz_sequences"], r["fuzz_telemetry"]
    print_table(
        "fuzzing (schemathesis over /openapi.json; 5xx and no-answer are failures)",
        ["run", "requests", "2xx", "4xx", "5xx/failed", "inconsistent", "s"],
        [
            [
                "per operation",
                fz["requests"],
                _n(fz, "2"),
                _n(fz, "4"),
                len(fz["failures"]),
                len(fz["inconsistent"]),
                fz["seconds"],
            ],
            [
                f"{sq['sequences']} sequences x {sq['steps']}",
                sq["requests"],
                _n(sq, "2"),
                _n(sq, "4"),
                len(sq["failures"]),
                len(sq["inconsistent"]),
                sq["seconds"],
            ],
        ],
    )
    print(
        f"junk telemetry datagrams: {tl['datagrams']}, valid event still delivered: "
        f"{tl['valid_event_delivered']}, controller alive: {tl['controller_alive']}"
    )
    ec = r["emulator_crash"]
    rounds = ec["rounds"]
    print_table(
        "link emulator SIGKILL mid-traffic (probes every 20 ms, 0-1-2 line, 20 ms pinned per hop)",
        [
            "kills",
            "survived",
            "down seen (s)",
            "up again (s)",
            "outage (ms)",
            "rtt after (ms)",
            "counter regressions",
        ],
        [
            [
                ec["kills"],
                ec["survived"],
                _med(rounds, "down_after_s"),
                _med(rounds, "up_after_s"),
                1000 * _med(rounds, "outage_s"),
                _med(rounds, "rtt_after_ms"),
                ec["counter_regressions"],
            ]
        ],
    )
    tm = r["telemetry_load"]
    print_table(
        f"telemetry {tm['rate_target']}/s for {tm['seconds']:.0f} s, {len(tm['pages'])} pages",
        ["page", "messages", "telemetry delivered", "seq errors", "close code"],
        [
            [i, p["messages"], f"{100 * p['delivered_ratio']:.1f} %", p["seq_errors"], p["close_code"]]
            for i, p in enumerate(tm["pages"])
        ],
    )
    mib = 2**20
    print(
        f"controller RSS: before {tm['rss_before'] / mib:.1f} MiB, peak {tm['rss_peak'] / mib:.1f} MiB, "
        f"after {tm['rss_after'] / mib:.1f} MiB ({tm['sent']} datagrams at {tm['rate_sent']:.0f}/s)"
    )
    al = r["api_load"]
    print_table(
        f"API load: moves and pins at {al['rate_target']}/s for {al['seconds']:.0f} s over {al['servers']} routers",
        ["requests", "rate", "p50 ms", "p99 ms", "max ms", "errors", "lost changes", "inconsistent"],
        [
            [
                al["requests"],
                al["rate_achieved"],
                al["latency_p50_ms"],
                al["latency_p99_ms"],
                al["latency_max_ms"],
                len(al["errors"]),
                len(al["lost_changes"]),
                len(al["consistency"]),
            ]
        ],
    )
    print(f"  statuses: {al['statuses']}")
    ak = r["api_load_kills"]
    failed = sum(v for k, v in ak["statuses"].items() if k.endswith(" 500"))
    print(
        f"with {ak['emulator_kills']} emulator kills: {ak['requests']} requests, {failed} answered 500 "
        f"(the change a kill cut through, rolled back), lost {len(ak['lost_changes'])}, "
        f"inconsistent {len(ak['consistency'])}"
    )
    checks = {
        "fuzz: no 5xx": not fz["failures"] and not sq["failures"],
        "fuzz: consistent": not fz["inconsistent"] and not sq["inconsistent"],
        "telemetry junk survived": tl["controller_alive"] and tl["valid_event_delivered"],
        "emulator kills survived": ec["survived"] == ec["kills"] and not ec["consistency"],
        "emulator counters monotonic": ec["counter_regressions"] == 0,
        "telemetry: no page dropped": all(
            p["close_code"] is None and not p["seq_errors"] for p in tm["pages"]
        ),
        "API load: all answered, nothing lost": not al["errors"]
        and not al["lost_changes"]
        and not al["consistency"],
        "API load under emulator kills: <= 1 failure per kill, nothing lost": failed <= ak["emulator_kills"]
        and not ak["lost_changes"]
        and not ak["consistency"],
    }
    print_table("checks", ["check", "held"], [[k, v] for k, v in checks.items()])
    r["checks"] = checks
    return all(checks.values())


def _n(run: dict[str, Any], first: str) -> int:
    return sum(v for k, v in run["statuses"].items() if k.startswith(first))


def _med(rows: list[dict[str, Any]], key: str) -> float:
    vals = [x[key] for x in rows if x.get(key) is not None]
    return statistics.median(vals) if vals else float("nan")


if __name__ == "__main__":
    sys.exit(main())
