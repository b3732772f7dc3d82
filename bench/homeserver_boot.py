"""Homeserver boot: time to bring N Synapse servers up (fresh databases) and memory per server.

    .venv/bin/python bench/homeserver_boot.py [--servers 8] [--concurrency 1 2 4] [--database postgres]

Each server gets its own namespace (no links: booting needs none). Per concurrency setting: wall time
for all N, per-server boot time (start until /health answers), then RSS and PSS per server and the
PostgreSQL cluster's total PSS after the servers settle. Writes bench/results/homeserver_boot.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import _common
import httpx

from meshsim.homeserver.fleet import HomeserverFleet
from meshsim.homeserver.netns_files import remove_netns_etc, write_hosts
from meshsim.homeserver.process import BootLimiter
from meshsim.kernel import names


def pss_of_user(user: str) -> int:
    """Total PSS in bytes of every process owned by `user` (PostgreSQL's backends)."""
    import pwd

    uid = pwd.getpwnam(user).pw_uid
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


async def one_round(n: int, concurrency: int, database: str, settle: float) -> dict:
    run = secrets.token_hex(2)
    run_dir = Path(tempfile.mkdtemp(prefix="mshb-", dir="/tmp"))
    os.chmod(run_dir, 0o755)
    nss = [names.netns(run, i) for i in range(n)]
    fleet = HomeserverFleet(run_dir, database=database, max_servers=n)  # type: ignore[arg-type]
    servers = []
    try:
        for i, ns in enumerate(nss):
            subprocess.run(["ip", "netns", "add", ns], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
            subprocess.run(["ip", "-n", ns, "addr", "add", f"{names.address(i)}/32", "dev", "lo"], check=True)
            write_hosts(ns, n - 1)
        t = time.monotonic()
        fleet.start()
        pg_start = time.monotonic() - t
        pg_base = pss_of_user("postgres") if database == "postgres" else 0
        servers = [fleet.server(i, ns) for i, ns in enumerate(nss)]
        limiter = BootLimiter(concurrency)
        t = time.monotonic()
        ok = await asyncio.gather(*(limiter.boot(s, 300) for s in servers))
        wall = time.monotonic() - t
        if not all(ok):
            raise RuntimeError([(s.spec.server_name, s.reason) for s in servers if s.state != "up"])
        await asyncio.sleep(settle)
        rss = [s.rss_bytes() or 0 for s in servers]
        pss = [s.pss_bytes() or 0 for s in servers]
        transport = httpx.HTTPTransport(uds=str(servers[0].paths.metrics_socket))
        with httpx.Client(transport=transport) as c:
            metrics_ok = c.get("http://localhost/_synapse/metrics").status_code == 200
        boots = [s.boot_seconds or 0.0 for s in servers]
        return {
            "servers": n,
            "concurrency": concurrency,
            "database": database,
            "postgres_start_s": pg_start,
            "wall_s": wall,
            "boot_median_s": statistics.median(boots),
            "boot_max_s": max(boots),
            "rss_mb_median": statistics.median(rss) / 1e6,
            "pss_mb_median": statistics.median(pss) / 1e6,
            "postgres_pss_mb_per_server": (pss_of_user("postgres") - pg_base) / 1e6 / n
            if database == "postgres"
            else 0.0,
            "metrics_ok": metrics_ok,
        }
    finally:
        for s in servers:
            s.kill()
        fleet.stop()
        for ns in nss:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            remove_netns_etc(ns)
        shutil.rmtree(run_dir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, default=8)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds to idle before measuring memory")
    args = ap.parse_args()
    _common.require_root()
    rows = [asyncio.run(one_round(args.servers, c, args.database, args.settle)) for c in args.concurrency]
    headers = list(rows[0])
    _common.print_table("Synapse boot and memory", headers, [[r[h] for h in headers] for r in rows])
    _common.write_results("homeserver_boot", {"rounds": rows})


if __name__ == "__main__":
    main()
