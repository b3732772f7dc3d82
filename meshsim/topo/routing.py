"""Shortest-path routing tables over the usable links.

Weights are exact integers so that equal-cost paths compare equal: the cost (latency in µs, or
1e15/bandwidth) scaled by HOP_SCALE, plus 1 per hop. Among equally cheap paths the one with fewer hops
wins, then the lowest next-hop id. Positive integer weights also make every table loop-free, even with
zero-latency links.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from heapq import heapify, heappop, heappush

from .params import LinkParams

HOP_SCALE = 1 << 20
BANDWIDTH_SCALE = 10**15

Pair = tuple[int, int]
Adjacency = dict[int, dict[int, int]]
Routes = dict[int, dict[int, int]]


def weight(params: LinkParams, cost: str) -> int:
    """The integer routing weight of a link with `params` under `cost` ("latency" or "bandwidth")."""
    if cost == "latency":
        return round(params.latency * 1000) * HOP_SCALE + 1
    return -(-BANDWIDTH_SCALE // params.bandwidth) * HOP_SCALE + 1  # ceil(1e15 / bandwidth)


def adjacency(nodes: Iterable[int], links: Mapping[Pair, int]) -> Adjacency:
    """Adjacency map {node: {neighbour: weight}} from weighted undirected links."""
    adj: Adjacency = {n: {} for n in nodes}
    for (a, b), w in links.items():
        adj[a][b] = w
        adj[b][a] = w
    return adj


def first_hops(adj: Adjacency, src: int) -> dict[int, int]:
    """{dst: next hop} for every dst reachable from src, minimising (distance, next hop id)."""
    dist: dict[int, int] = {}
    hop: dict[int, int] = {}
    for n, w in adj[src].items():
        dist[n] = w
        hop[n] = n
    heap = [(w, n, n) for n, w in dist.items()]
    heapify(heap)
    done: dict[int, int] = {src: src}
    pop, push = heappop, heappush
    while heap:
        d, f, v = pop(heap)
        if v in done:
            continue
        done[v] = f
        for u, w in adj[v].items():
            if u in done:
                continue
            nd = d + w
            old = dist.get(u)
            if old is None or nd < old or (nd == old and f < hop[u]):
                dist[u] = nd
                hop[u] = f
                push(heap, (nd, f, u))
    del done[src]
    return done


def all_routes(adj: Adjacency) -> Routes:
    """Routing tables for every node: src -> {dst: next hop}; unreachable destinations are absent."""
    return {src: first_hops(adj, src) for src in adj}
