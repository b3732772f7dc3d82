"""Helpers shared by the benchmarks: repo import path, result tables and JSON output."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
sys.path.insert(0, str(BENCH_DIR.parent))  # run from a checkout without installing


def require_root() -> None:
    if os.geteuid() != 0:
        sys.exit("this benchmark needs root (network namespaces and TAP devices)")


def print_table(title: str, headers: list[str], rows: list[list]) -> None:
    """Print rows as an aligned text table."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def write_results(name: str, data: dict) -> Path:
    """Write bench/results/NAME.json with some context about the machine."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    meta = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    path.write_text(json.dumps({"meta": meta, **data}, indent=2) + "\n")
    print(f"\nwrote {path}")
    return path
