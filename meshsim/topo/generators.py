"""Ready-made topologies: line, ring, grid and random geometric layouts.

Spacings default to 100 px, i.e. 100 ms at the default latency scale, well under the default
max latency of 300 ms, so neighbours always link.
"""

from __future__ import annotations

import math
import random

import networkx as nx

from .errors import TopoError
from .model import Server, Topology
from .params import Defaults, check_float, check_int

ORIGIN = 100.0  # px: keeps the layout clear of the canvas edge
MAX_NODES = 65_000


def _build(points: list[tuple[float, float]], defaults: Defaults | None, kind: str) -> Topology:
    servers = [Server(i, x, y, kind) for i, (x, y) in enumerate(points)]
    return Topology._build(defaults or Defaults(), servers, {}, ())


def _count(name: str, n: object, lo: int = 1) -> int:
    return check_int(name, n, lo, MAX_NODES)


def line(n: int, spacing: float = 100.0, defaults: Defaults | None = None, kind: str = "synapse") -> Topology:
    """n servers in a row, `spacing` px apart."""
    n, spacing = _count("n", n), check_float("spacing", spacing, 0.0, 10_000.0, lo_open=True)
    return _build([(ORIGIN + i * spacing, ORIGIN) for i in range(n)], defaults, kind)


def ring(
    n: int, radius: float | None = None, defaults: Defaults | None = None, kind: str = "synapse"
) -> Topology:
    """n servers on a circle; the default radius puts neighbours 100 px apart."""
    n = _count("n", n)
    if radius is None:
        radius = 0.0 if n == 1 else 50.0 / math.sin(math.pi / n)
    radius = check_float("radius", radius, 0.0, 50_000.0)
    centre = ORIGIN + radius
    points = [
        (centre + radius * math.cos(2 * math.pi * i / n), centre + radius * math.sin(2 * math.pi * i / n))
        for i in range(n)
    ]
    return _build(points, defaults, kind)


def grid(
    rows: int, cols: int, spacing: float = 100.0, defaults: Defaults | None = None, kind: str = "synapse"
) -> Topology:
    """rows x cols servers, numbered row by row, `spacing` px apart."""
    rows, cols = _count("rows", rows), _count("cols", cols)
    spacing = check_float("spacing", spacing, 0.0, 10_000.0, lo_open=True)
    if rows * cols > MAX_NODES:
        raise TopoError(f"rows x cols: at most {MAX_NODES} servers, got {rows * cols}")
    return _build(
        [(ORIGIN + c * spacing, ORIGIN + r * spacing) for r in range(rows) for c in range(cols)],
        defaults,
        kind,
    )


def _connected(t: Topology) -> bool:
    g = nx.Graph()
    g.add_nodes_from(t.servers)
    g.add_edges_from(t.links())
    return g.number_of_nodes() == 0 or nx.is_connected(g)


def random_geometric(
    n: int,
    seed: int = 0,
    width: float | None = None,
    height: float | None = None,
    defaults: Defaults | None = None,
    kind: str = "synapse",
    attempts: int = 50,
) -> Topology:
    """n servers at random positions, reproducible for a given seed, connected if possible.

    Each server is placed within 80 % of the link range of an earlier one, so candidates always form a
    connected graph; layouts whose selected links (degree-capped) are not connected are retried, up to
    `attempts` times. The default area grows with n (about 200 x 200 px per server).
    """
    n = _count("n", n)
    d = defaults or Defaults()
    side = 200.0 * math.sqrt(n)
    width = check_float("width", side if width is None else width, 0.0, 200_000.0, lo_open=True)
    height = check_float("height", side if height is None else height, 0.0, 200_000.0, lo_open=True)
    reach = 0.8 * d.max_latency * 100.0 / d.latency_scale
    rng = random.Random(seed)
    best: Topology | None = None
    for _ in range(max(1, attempts)):
        points = [(ORIGIN + rng.uniform(0, width), ORIGIN + rng.uniform(0, height))]
        while len(points) < n:
            p = (ORIGIN + rng.uniform(0, width), ORIGIN + rng.uniform(0, height))
            for _try in range(200):
                if any(math.dist(p, q) < reach for q in points):
                    break
                p = (ORIGIN + rng.uniform(0, width), ORIGIN + rng.uniform(0, height))
            else:  # area too sparse to stay in range: put it near a random earlier server
                qx, qy = rng.choice(points)
                angle = rng.uniform(0, 2 * math.pi)
                p = (qx + reach * 0.5 * math.cos(angle), qy + reach * 0.5 * math.sin(angle))
            points.append(p)
        best = _build(points, d, kind)
        if _connected(best):
            break
    assert best is not None
    return best
