"""Density: N Synapse servers through the controller, all joined to one room; memory and idle CPU.

    .venv/bin/python bench/density.py [--quick] [--servers 100] [--ksm same-layout off merge]

Per KSM mode (see meshsim.homeserver.ksm: `off`, `merge`, `same-layout`) a fresh controller
loads an N-server grid (near-zero-latency 100 Mbit/s links), waits until all are up, creates a
room on synapse0 and joins every server to it, and measures. For a KSM mode it then runs ksmd
(settings restored after) until merging converges and measures again: the same servers with the
same room state, before and after merging (the default; `--ksm off` is the truly plain baseline,
which quick runs show matches "ksmd off" within 2 %). Each measurement reads RSS, PSS and merged bytes of every
Synapse, the run's PostgreSQL and the controller + emulator, the machine's MemAvailable drop, and
CPU over an idle window. Servers per GiB = 1 GiB / (Synapse PSS + PostgreSQL PSS / N + controller
and emulator PSS / N). Writes bench/results/density.json.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from pathlib import Path
from typing import Any

import _common
import _hs

from meshsim.homeserver import ksm
from meshsim.topo import generators
from meshsim.topo.params import Defaults

# 100 px apart at 0.01 % scale: 0.01 ms links; max latency just above it keeps only grid neighbours
#: ksmd scan rate (pages, ms) once merged: the kernel default, enough to keep up with slow drift
IDLE_SCAN = (100, 20)
FAST = Defaults(latency_scale=0.01, decay=False, bandwidth=100_000_000, max_latency=0.012)


def ksmd_pid() -> int | None:
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() == "ksmd":
                    return int(d.name)
            except OSError:
                continue
    return None


def wait_ksm_converged(pids: list[int], timeout: float, interval: float = 5.0) -> dict[str, Any]:
    """Poll the servers' merged bytes until they grow < 2 % per interval (after two full scans)."""
    t0 = time.monotonic()
    scans0 = ksm.KsmStats.read().full_scans
    last = -1
    while True:
        time.sleep(interval)
        merged = sum(ksm.process_merging_bytes(p) for p in pids)
        scans = ksm.KsmStats.read().full_scans - scans0
        if scans >= 2 and last > 0 and merged - last < 0.02 * last:
            return {"seconds": time.monotonic() - t0, "full_scans": scans, "converged": True}
        if time.monotonic() - t0 > timeout:
            return {"seconds": time.monotonic() - t0, "full_scans": scans, "converged": False}
        last = merged


async def build_room(sim: Any, n: int) -> dict[str, float]:
    """Room on synapse0, everyone joined; `members` is how many synapse0 sees (waits up to 5 min)."""
    room = _hs.Room({i: sim.client_url(i) for i in range(n)})
    try:
        await room.login()
        t = time.monotonic()
        join_s = await room.create_and_join(concurrency=3, timeout=120 + 15 * n)
        deadline = time.monotonic() + 300
        members = await room.joined_count(0)
        while members < n and time.monotonic() < deadline:
            await asyncio.sleep(2)
            members = await room.joined_count(0)
        return {"join_s": join_s, "room_s": time.monotonic() - t, "members": members}
    finally:
        await room.close()


def snapshot(sim: Any, pids: list[int], used0: int, window: float, with_ksmd: bool) -> dict[str, Any]:
    """Memory and idle CPU of the servers, the run's PostgreSQL, the controller (+ ksmd)."""
    n = len(pids)
    pg = _hs.postgres_pids(sim)
    ctl = [sim.proc.pid, *(p for p in _hs.children(sim.proc.pid) if p not in set(pids))]
    kd = ksmd_pid()
    extra = [kd] if kd is not None and with_ksmd else []
    cpu = _hs.cpu_percent(pids + pg + ctl + extra, window)
    rss = [_hs.rss(p) for p in pids]
    pss = [_hs.pss(p) for p in pids]
    merged = [ksm.process_merging_bytes(p) for p in pids]
    pg_pss = sum(_hs.pss(p) for p in pg)
    ctl_pss = sum(_hs.pss(p) for p in ctl)
    used = _hs.mem_used() - used0
    per_server = statistics.mean(pss) + pg_pss / n + ctl_pss / n
    return {
        "alive": sum(1 for p in pids if _hs.rss(p) > 0),
        "rss_mb_median": statistics.median(rss) / 1e6,
        "pss_mb_median": statistics.median(pss) / 1e6,
        "pss_mb_mean": statistics.mean(pss) / 1e6,
        "ksm_merged_mb_mean": statistics.mean(merged) / 1e6,
        "postgres_pss_mb_per_server": pg_pss / n / 1e6,
        "controller_pss_mb": ctl_pss / 1e6,
        "per_server_mb": per_server / 1e6,
        "servers_per_gib": _hs.GiB / per_server,
        "memavailable_drop_mb_per_server": used / n / 1e6,
        "servers_per_gib_by_memavailable": _hs.GiB / (used / n) if used > 0 else 0.0,
        "idle_cpu_pct_per_server": statistics.mean(cpu[p] for p in pids),
        "idle_cpu_pct_synapse_total": sum(cpu[p] for p in pids),
        "idle_cpu_pct_postgres": sum(cpu[p] for p in pg),
        "idle_cpu_pct_controller": sum(cpu[p] for p in ctl),
        "idle_cpu_pct_ksmd": sum(cpu[p] for p in extra),
    }


def one_mode(n: int, mode: str, settle: float, window: float, ksm_timeout: float) -> list[dict[str, Any]]:
    """One controller with n servers in `mode`; for a KSM mode, measured with ksmd off and then on."""
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    body = _hs.topology_body(generators.grid(rows, cols, defaults=FAST))
    body["servers"] = body["servers"][:n]
    with _hs.controller(ksm_mode=mode, ports=n + 8) as sim:
        used0 = _hs.mem_used()
        t0 = time.monotonic()
        sim.req("PUT", "/api/topology/file", body).raise_for_status()
        up_s = _hs.wait_all_up(sim, range(n), timeout=120 + 8 * n)
        print(f"[{mode}] {n} servers up in {up_s:.1f} s", flush=True)
        time.sleep(min(30, n / 5))  # let fresh servers finish their start-up work before the joins
        room = asyncio.run(build_room(sim, n))
        print(f"[{mode}] joined in {room['join_s']:.1f} s, synapse0 sees {room['members']}", flush=True)
        pids = [sim.get(f"/api/servers/{i}")["pid"] for i in range(n)]
        common = {"servers": n, "up_s": up_s, "join_s": room["join_s"], "members": room["members"]}
        time.sleep(settle)
        label = mode if mode == "off" else f"{mode}, ksmd off"
        out = [{"mode": label, **common, **snapshot(sim, pids, used0, window, False), "ksm": {}}]
        print(f"[{label}] {out[-1]['servers_per_gib']:.2f} servers/GiB", flush=True)
        if mode != "off":
            with ksm.KsmScanner() as scanner:
                info = wait_ksm_converged(pids, ksm_timeout)
                print(f"[{mode}] KSM: {info}", flush=True)
                scanner.set_rate(*IDLE_SCAN)  # idle CPU at the kernel's default scan rate
                time.sleep(settle)
                snap = snapshot(sim, pids, used0, window, True)
            out.append({"mode": f"{mode}, ksmd on", **common, **snap, "ksm": info})
            print(f"[{mode}, ksmd on] {snap['servers_per_gib']:.2f} servers/GiB", flush=True)
        for r in out:
            r["total_s"] = time.monotonic() - t0
        return out


SHOWN = {
    "mode": "ksm",
    "servers": "N",
    "alive": "alive",
    "members": "joined",
    "up_s": "up s",
    "join_s": "join s",
    "rss_mb_median": "RSS MB",
    "pss_mb_median": "PSS MB",
    "ksm_merged_mb_mean": "merged MB",
    "postgres_pss_mb_per_server": "pg MB/srv",
    "per_server_mb": "MB/srv",
    "servers_per_gib": "srv/GiB",
    "memavailable_drop_mb_per_server": "MemAvail MB/srv",
    "idle_cpu_pct_per_server": "cpu %/srv",
    "idle_cpu_pct_synapse_total": "cpu % all",
    "idle_cpu_pct_postgres": "pg cpu %",
    "idle_cpu_pct_controller": "ctl cpu %",
    "idle_cpu_pct_ksmd": "ksmd cpu %",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 servers, short waits (< 2 min per mode)")
    ap.add_argument("--servers", type=int, help="servers per mode (default 100, quick 4)")
    ap.add_argument(
        "--ksm",
        nargs="+",
        choices=ksm.MODES,
        help="modes, one controller each (default same-layout: measured with ksmd off, then on)",
    )
    args = ap.parse_args()
    _common.require_root()
    n = args.servers or (4 if args.quick else 100)
    modes = args.ksm or ["same-layout"]
    if any(m != "off" for m in modes) and not ksm.available():
        raise SystemExit("KSM modes need /sys/kernel/mm/ksm")
    settle, window, ksm_timeout = (3, 5, 25) if args.quick else (30, 30, 600)
    rows = [r for m in modes for r in one_mode(n, m, settle, window, ksm_timeout)]
    title = f"Density: {n} Synapse servers in one room (full numbers in the JSON)"
    _common.print_table(title, list(SHOWN.values()), [[r[k] for k in SHOWN] for r in rows])
    base = next((r for r in rows if r["mode"] in ("off", "same-layout, ksmd off")), None)
    gain = {r["mode"]: r["servers_per_gib"] / base["servers_per_gib"] for r in rows if base and r is not base}
    if base is not None and gain:
        print(f"\nservers per GiB vs {base['mode']}: " + ", ".join(f"{m} x{g:.2f}" for m, g in gain.items()))
    baseline = base["mode"] if base else None
    _common.write_results(
        "density", {"quick": args.quick, "rounds": rows, "gain": gain, "baseline": baseline}
    )


if __name__ == "__main__":
    main()
