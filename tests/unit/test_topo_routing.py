"""Routes against networkx shortest paths, and diffs that replay to the same tables."""

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshsim.topo import Defaults, Topology, apply_route_changes, diff
from meshsim.topo.routing import weight

coords = st.floats(min_value=0, max_value=700, allow_nan=False, allow_infinity=False)
lattice = st.integers(0, 8).map(lambda i: i * 60.0)  # many equal-cost paths: exercises tie-breaks
layouts = st.lists(st.tuples(coords, coords), min_size=1, max_size=30) | st.lists(
    st.tuples(lattice, lattice), min_size=1, max_size=30
)


def build(points, **defaults):
    t = Topology(Defaults(**defaults))
    for x, y in points:
        t.add_server(x, y)
    return t


def graph(t, w=None):
    g = nx.Graph()
    g.add_nodes_from(i for i, s in t.servers.items() if s.up)
    for (a, b), link in t.links().items():
        if not link.cut:
            g.add_edge(a, b, w=w(link.params) if w else weight(link.params, t.defaults.cost))
    return g


def check_against_networkx(t):
    g = graph(t)
    routes = t.routes()
    assert set(routes) == set(t.servers)
    for src in t.servers:
        if src not in g:
            assert routes[src] == {}
            continue
        dist = nx.single_source_dijkstra_path_length(g, src, weight="w")
        assert set(routes[src]) == set(dist) - {src}  # exactly the reachable ones, never src itself
        for dst, hop in routes[src].items():
            path = t.path(src, dst)
            cost = sum(g[u][v]["w"] for u, v in zip(path, path[1:], strict=False))
            assert cost == dist[dst]
            # tie-break: the lowest neighbour that starts a shortest path
            d_to = nx.single_source_dijkstra_path_length(g, dst, weight="w")
            best = min(n for n in g[src] if g[src][n]["w"] + d_to.get(n, float("inf")) == dist[dst])
            assert hop == best


@settings(max_examples=60, deadline=None)
@given(layouts, st.sampled_from(["latency", "bandwidth"]), st.booleans())
def test_routes_are_networkx_shortest_paths(points, cost, decay):
    check_against_networkx(build(points, cost=cost, decay=decay))


@settings(max_examples=30, deadline=None)
@given(layouts, st.data())
def test_routes_with_pins_cuts_and_down_servers(points, data):
    t = build(points)
    for a, b in list(t.links()):
        choice = data.draw(st.sampled_from(["none", "pin", "cut"]))
        if choice == "pin":
            t.pin(a, b, latency=data.draw(st.floats(0, 500)))
        elif choice == "cut":
            t.cut(a, b)
    for i in data.draw(st.sets(st.sampled_from(sorted(t.servers)), max_size=3)):
        t.set_up(i, False)
    check_against_networkx(t)


def test_latency_route_matches_float_latency_shortest_path():
    t = build([(i * 71 % 900, i * 53 % 700) for i in range(60)])
    g = graph(t, w=lambda p: p.latency)
    for src, table in t.routes().items():
        dist = nx.single_source_dijkstra_path_length(g, src, weight="w")
        for dst in table:
            path = t.path(src, dst)
            lat = sum(g[u][v]["w"] for u, v in zip(path, path[1:], strict=False))
            assert lat == pytest.approx(dist[dst], abs=1e-3 * len(path))


def test_bandwidth_cost_prefers_wide_paths():
    # 0-2 direct is short; 0-1-2 is longer but each hop is wider because 0-2 is pinned narrow
    t = build([(0, 0), (100, 50), (200, 0)], cost="bandwidth")
    assert t.path(0, 2) == [0, 2]
    t.pin(0, 2, bandwidth=1000)
    assert t.path(0, 2) == [0, 1, 2]
    t.set_defaults(cost="latency")
    assert t.path(0, 2) == [0, 2]


def test_pinned_latency_steers_routes():
    t = build([(0, 0), (100, 0), (200, 0)])
    assert t.path(0, 2) == [0, 2]  # equal latency, fewer hops
    t.pin(0, 2, latency=250)
    assert t.path(0, 2) == [0, 1, 2]


def test_zero_latency_links_do_not_loop():
    t = build([(0, 0), (0, 0), (0, 0), (100, 0)])
    for src in t.servers:
        for dst in t.servers:
            if src != dst:
                assert t.path(src, dst)[-1] == dst


def test_unreachable_has_no_entry():
    t = build([(0, 0), (100, 0), (5000, 0)])
    assert t.routes() == {0: {1: 1}, 1: {0: 0}, 2: {}}
    assert t.path(0, 2) is None and t.path(2, 2) == [2]


# ---- diffs -----------------------------------------------------------------------------------

ops = st.lists(
    st.tuples(
        st.sampled_from(
            ["add", "move", "remove", "down", "up", "pin", "unpin", "cut", "heal", "defaults", "part"]
        ),
        st.integers(0, 40),
        coords,
        coords,
    ),
    max_size=25,
)


def do(t, op, i, x, y):
    """Apply one random operation; returns its diff or None when it does not apply."""
    ids = sorted(t.servers)
    links = sorted(t.links())
    if op == "add" or not ids:
        return t.add_server(x, y)[1]
    sid = ids[i % len(ids)]
    if op == "move":
        return t.move_server(sid, x, y)
    if op == "remove":
        return t.remove_server(sid)
    if op in ("down", "up"):
        return t.set_up(sid, op == "up")
    if op == "defaults":
        return t.set_defaults(max_latency=100 + x, cost="bandwidth" if y > 350 else "latency")
    if op == "part":
        return t.partition(set(ids[: i % len(ids)]))
    if not links:
        return None
    a, b = links[i % len(links)]
    if op == "pin":
        return t.pin(a, b, latency=x / 2, bandwidth=int(y) + 1)
    if op == "unpin":
        return t.unpin(a, b, "latency")
    if op == "cut":
        return t.cut(a, b)
    return t.heal(a, b)


def links_of(t):
    return {k: (v.params, v.pinned, v.cut) for k, v in t.links().items()}


@settings(max_examples=80, deadline=None)
@given(ops)
def test_diff_sequence_replays_to_current_state(steps):
    t = Topology()
    routes: dict = {}
    links: dict = {}
    servers: dict = {}
    for step in steps:
        before = t.copy()
        d = do(t, *step)
        if d is None:
            continue
        assert d.to_dict() == diff(before, t).to_dict()
        # servers
        for i in d.servers_removed:
            del servers[i]
        for i in d.servers_added + d.servers_changed:
            servers[i] = t.servers[i]
        # links
        for k in d.links_removed:
            del links[k]
        for k, p in {**d.links_added, **d.links_changed}.items():
            links[k] = (p, t.link(*k).pinned, links.get(k, (None, None, False))[2])
        for k in d.links_cut:
            links[k] = (*links[k][:2], True)
        for k in d.links_healed:
            links[k] = (*links[k][:2], False)
        apply_route_changes(routes, d.routes_changed)
        assert servers == dict(t.servers)
        assert links == links_of(t)
        assert routes == {s: r for s, r in t.routes().items() if r}
        if d.empty():
            assert before.to_dict() == t.to_dict() and links_of(before) == links_of(t)


def test_diff_contains_exactly_what_changed_on_move():
    t = build([(0, 0), (100, 0), (1000, 0)])
    d = t.move_server(2, 200, 0)
    assert d.servers_changed == [2] and not d.servers_added and not d.servers_removed
    assert set(d.links_added) == {(0, 2), (1, 2)} and not d.links_removed and not d.links_changed
    assert d.routes_changed == {0: {2: 2}, 1: {2: 2}, 2: {0: 0, 1: 1}}
    assert not d.defaults_changed and not d.empty()
    d = t.move_server(2, 200, 0)
    assert d.empty()


def test_diff_to_dict_is_json_friendly():
    import json

    t = build([(0, 0), (100, 0)])
    d = t.set_defaults(jitter=2)
    out = d.to_dict()
    assert out["links_changed"] == {
        "0-1": {"bandwidth": 341333, "latency": 100.0, "jitter": 2.0, "loss": 0.0}
    }
    assert out["defaults_changed"] == {"jitter": 2.0}
    assert out["routes_changed"] == {}
    json.dumps(out)
    d = t.remove_server(1)
    assert d.to_dict()["routes_changed"] == {"0": {"1": None}, "1": {"0": None}}
    assert d.to_dict()["links_removed"] == ["0-1"]


def test_client_defaults_change_only_defaults():
    t = build([(0, 0), (100, 0)])
    d = t.set_defaults(client_bandwidth=1_000_000)
    assert d.defaults_changed == {"client_bandwidth": 1_000_000}
    assert not d.links_changed and not d.routes_changed
