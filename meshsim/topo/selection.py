"""Neighbour selection: derive link parameters from positions and pick each server's cheapest links.

The selection is symmetric and independent of insertion order: candidates are sorted by a key that
depends only on the pair's derived (unpinned) values and ids, then accepted greedily while both ends
have fewer than DEGREE_CAP links.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from .params import Defaults, LinkParams

DEGREE_CAP = 5

Pair = tuple[int, int]
Point = tuple[int, float, float]  # id, x, y


def derived_latency(dx: float, dy: float, defaults: Defaults) -> float:
    """One-way latency in ms of a link spanning (dx, dy) pixels."""
    return math.hypot(dx, dy) * defaults.latency_scale / 100.0


def derived_bandwidth(latency: float, defaults: Defaults) -> int:
    """Bandwidth in bit/s of a link with `latency`: the default, decayed with distance if enabled."""
    if not defaults.decay:
        return defaults.bandwidth
    share = max(0.0, (defaults.max_latency - latency) / defaults.max_latency)
    return max(1, int(defaults.bandwidth * share))


def derive(p: Point, q: Point, defaults: Defaults) -> LinkParams:
    """The unpinned parameters of a link between points p and q (order does not matter)."""
    if p[0] > q[0]:
        p, q = q, p
    latency = derived_latency(q[1] - p[1], q[2] - p[2], defaults)
    return LinkParams(
        bandwidth=derived_bandwidth(latency, defaults),
        latency=latency,
        jitter=defaults.jitter,
        loss=defaults.loss,
    )


def _max_distance(defaults: Defaults) -> float:
    """Distance in px beyond which no pair can be a candidate (slightly padded against rounding)."""
    return defaults.max_latency * 100.0 / defaults.latency_scale * (1 + 1e-9) + 1e-9


def candidates(points: Iterable[Point], defaults: Defaults) -> dict[Pair, LinkParams]:
    """Every pair (a < b) with derived latency < max_latency and derived bandwidth > min_bandwidth."""
    cell = _max_distance(defaults)
    grid: dict[tuple[int, int], list[Point]] = defaultdict(list)
    for p in points:
        grid[(math.floor(p[1] / cell), math.floor(p[2] / cell))].append(p)
    out: dict[Pair, LinkParams] = {}
    for (cx, cy), members in grid.items():
        near = [q for dx in (-1, 0, 1) for dy in (-1, 0, 1) for q in grid.get((cx + dx, cy + dy), ())]
        for p in members:
            for q in near:
                if p[0] >= q[0]:
                    continue  # each unordered pair once, from its lower id
                latency = derived_latency(q[1] - p[1], q[2] - p[2], defaults)
                if latency >= defaults.max_latency:
                    continue
                bandwidth = derived_bandwidth(latency, defaults)
                if bandwidth <= defaults.min_bandwidth:
                    continue
                out[(p[0], q[0])] = LinkParams(bandwidth, latency, defaults.jitter, defaults.loss)
    return out


def select(points: Iterable[Point], defaults: Defaults) -> dict[Pair, LinkParams]:
    """The selected links (a < b) with their derived parameters, in acceptance order."""
    cands = candidates(points, defaults)
    if defaults.cost == "latency":
        order = sorted(cands, key=lambda k: (cands[k].latency, k))
    else:  # cheapest 1/bandwidth first, i.e. widest first; nearer first among equals
        order = sorted(cands, key=lambda k: (-cands[k].bandwidth, cands[k].latency, k))
    degree: dict[int, int] = defaultdict(int)
    chosen: dict[Pair, LinkParams] = {}
    for a, b in order:
        if degree[a] < DEGREE_CAP and degree[b] < DEGREE_CAP:
            degree[a] += 1
            degree[b] += 1
            chosen[(a, b)] = cands[(a, b)]
    return chosen
