"""Frames per second of the web page in headless chromium with 100 servers and N event dots in flight.

The page is served from web/ by a small static server (no controller); a synthetic snapshot (100
servers, links to the nearest 5 within 300 ms, shortest-path routes) and a stream of event_sent /
event_received messages go in through the page's debug hook `window.meshsim.inject`.

    .venv/bin/python bench/ui_fps.py [--seconds 5] [--dots 0,200,500]

Prints a table and writes bench/results/ui_fps.json. Target: >= 50 fps with 200 dots.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import math
import os
import platform
import random
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import networkx as nx

from meshsim.harness import CHROMIUM, CHROMIUM_ARGS

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "web"
VENDOR = WEB / "node_modules" / "d3" / "dist"
RESULTS = REPO / "bench" / "results" / "ui_fps.json"
TARGET_FPS = 50.0


class Handler(http.server.SimpleHTTPRequestHandler):
    """web/ at /, d3's dist/ at /vendor/, like the controller."""

    def translate_path(self, path: str) -> str:
        if path.startswith("/vendor/"):
            return str(VENDOR / path.removeprefix("/vendor/").split("?")[0])
        return super().translate_path(path)

    def log_message(self, *args: Any) -> None:
        pass


def serve() -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(Handler, directory=str(WEB))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}/"


def topology(n: int, seed: int = 1) -> dict[str, Any]:
    """n servers in a 900x680 box, each linked to its nearest 5 under 300 ms; latency routes."""
    rnd = random.Random(seed)
    pts = {i: (40 + rnd.random() * 860, 40 + rnd.random() * 640) for i in range(n)}
    g = nx.Graph()
    g.add_nodes_from(pts)
    for i, (x, y) in pts.items():
        near = sorted((math.dist((x, y), q), j) for j, q in pts.items() if j != i)
        for d, j in near[:5]:
            if d < 300:
                g.add_edge(i, j, weight=d)
    servers = [
        {
            "id": i,
            "x": round(x),
            "y": round(y),
            "kind": "synapse",
            "state": "up",
            "up": True,
            "name": f"synapse{i}",
            "address": f"10.99.0.{i + 1}",
            "reason": None,
        }
        for i, (x, y) in pts.items()
    ]
    links = [
        {
            "a": min(a, b),
            "b": max(a, b),
            "bandwidth": 512000,
            "latency": round(d["weight"], 1),
            "jitter": 0.0,
            "loss": 0.0,
            "pinned": [],
            "cut": False,
            "stats": {
                "ab": {"bytes": 0, "packets": 0, "drops": 0},
                "ba": {"bytes": 0, "packets": 0, "drops": 0},
            },
        }
        for a, b, d in g.edges(data=True)
    ]
    routes: dict[str, dict[str, int]] = {}
    for src, paths in nx.all_pairs_dijkstra_path(g, weight="weight"):
        routes[str(src)] = {str(dst): p[1] for dst, p in paths.items() if dst != src}
    return {"servers": servers, "links": links, "defaults": {}, "routes": routes}


# Runs in the page: keeps `target` dots in flight, pops received ones, counts frames for `ms`.
MEASURE_JS = """
async ([target, ms, n]) => {
  const m = window.meshsim;
  let next = 0, received = 0;
  const feed = () => {
    const a = m.animator;
    for (const dot of [...a.dots]) {
      if (dot.arrived) {
        m.inject({type: "event_received", event_id: dot.eventId, server: dot.dst, origin: dot.path[0]});
        received++;
      }
    }
    while (a.inFlight < target) {
      const src = Math.floor(Math.random() * n);
      const dests = [];
      for (let k = 0; k < 5; k++) dests.push(Math.floor(Math.random() * n));
      m.inject({type: "event_sent", event_id: `$bench${next++}`, server: src, origin: src, destinations: dests});
      if (a.inFlight === 0 && target > 0 && next > 1e6) break;
    }
  };
  const stats = {link_stats: 0};
  // link_stats once a second like the controller, so link widths re-render during the run
  let bytes = 0;
  const statsTimer = setInterval(() => {
    bytes += 50000;
    const links = [...m.store.links.values()].map(l => ({a: l.a, b: l.b, stats: {
      ab: {bytes: bytes * (l.a % 3), packets: 1, drops: 0}, ba: {bytes, packets: 1, drops: 0}}}));
    m.inject({type: "link_stats", links});
    stats.link_stats++;
  }, 1000);
  const feedTimer = setInterval(feed, 50);
  feed();
  await new Promise(r => setTimeout(r, 1500));  // warm up
  const deltas = [];
  const inflight = [];
  await new Promise((resolve) => {
    let last = performance.now();
    const t0 = last;
    const tick = (t) => {
      deltas.push(t - last);
      inflight.push(m.animator.inFlight);
      last = t;
      if (t - t0 < ms) requestAnimationFrame(tick); else resolve();
    };
    requestAnimationFrame(tick);
  });
  clearInterval(feedTimer);
  clearInterval(statsTimer);
  m.animator.setEnabled(false);
  m.animator.setEnabled(true);
  const total = deltas.reduce((s, d) => s + d, 0);
  const sorted = [...deltas].sort((x, y) => x - y);
  const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  return {
    frames: deltas.length, seconds: total / 1000, fps: deltas.length / (total / 1000),
    p50_ms: pct(0.5), p95_ms: pct(0.95), max_ms: sorted[sorted.length - 1],
    mean_in_flight: inflight.reduce((s, x) => s + x, 0) / inflight.length,
    received, dropped: m.animator.dropped, link_stats: stats.link_stats,
  };
}
"""


def run(
    seconds: float, dot_targets: list[int], servers: int, width: int, height: int
) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    srv, url = serve()
    data_dir = tempfile.mkdtemp(prefix="ms-bench-chromium-")
    topo = topology(servers)
    rows = []
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                data_dir,
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": width, "height": height},
            )
            page = ctx.new_page()
            page.goto(url)
            page.wait_for_function("() => window.meshsim")
            # keep the (absent) controller's socket from ever delivering a snapshot over ours
            page.evaluate("window.meshsim.conn.start = () => {}")
            page.evaluate("(t) => window.meshsim.inject({type: 'snapshot', seq: 0, topology: t})", topo)
            page.wait_for_function(f"() => document.querySelectorAll('g.server').length === {servers}")
            for target in dot_targets:
                r = page.evaluate(MEASURE_JS, [target, int(seconds * 1000), servers])
                rows.append({"servers": servers, "links": len(topo["links"]), "dots_target": target, **r})
            shot = REPO / "artifacts" / "screenshots"
            shot.mkdir(parents=True, exist_ok=True)
            page.evaluate(MEASURE_JS.replace("clearInterval(feedTimer);", "return {};"), [200, 300, servers])
            page.screenshot(path=str(shot / "bench_ui_fps.png"))
            ctx.close()
    finally:
        srv.shutdown()
        shutil.rmtree(data_dir, ignore_errors=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--dots", default="0,200,500", help="comma-separated numbers of dots to keep in flight")
    ap.add_argument("--servers", type=int, default=100)
    ap.add_argument("--size", default="1280x800")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    load_before = os.getloadavg()[0]
    rows = run(args.seconds, [int(d) for d in args.dots.split(",")], args.servers, width, height)
    print(
        f"{'servers':>7} {'links':>5} {'dots':>5} {'in flight':>9} {'fps':>6} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}"
    )
    for r in rows:
        print(
            f"{r['servers']:>7} {r['links']:>5} {r['dots_target']:>5} {r['mean_in_flight']:>9.0f} {r['fps']:>6.1f}"
            f" {r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f} {r['max_ms']:>7.1f}"
        )
    load = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    print(f"load average {load['before']} -> {load['after']} on {load['cpus']} CPUs (other work skews fps)")
    at200 = [r for r in rows if r["dots_target"] == 200]
    ok = all(r["fps"] >= TARGET_FPS for r in at200)
    if at200:
        print(f"target >= {TARGET_FPS:.0f} fps with 200 dots: {'met' if ok else 'NOT met'}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "bench": "ui_fps",
                "chromium": CHROMIUM,
                "viewport": f"{width}x{height}",
                "seconds": args.seconds,
                "target_fps": TARGET_FPS,
                "machine": platform.platform(),
                "load_average": load,
                "rows": rows,
            },
            indent=1,
        )
    )
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
