"""Topology model: derivation, decay, selection, pins, cuts, up/down, validation atomicity."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshsim.topo import DEGREE_CAP, Conflict, Defaults, LinkParams, NotFound, TopoError, Topology


def topo_with(points, defaults=None):
    t = Topology(defaults)
    for x, y in points:
        t.add_server(x, y)
    return t


# ---- derivation ------------------------------------------------------------------------------


def test_latency_is_distance_times_scale():
    t = topo_with([(0, 0), (30, 40)])
    assert t.link(0, 1).params.latency == pytest.approx(50.0)
    t.set_defaults(latency_scale=200)
    assert t.link(1, 0).params.latency == pytest.approx(100.0)


def test_bandwidth_decays_with_distance():
    t = topo_with([(0, 0), (150, 0)])
    assert t.link(0, 1).params == LinkParams(256_000, 150.0, 0.0, 0.0)
    t.set_defaults(decay=False)
    assert t.link(0, 1).params.bandwidth == 512_000


def test_decayed_bandwidth_is_integer_and_at_least_one():
    t = topo_with([(0, 0), (299.9999999, 0)], Defaults(bandwidth=1000))
    bw = t.link(0, 1).params.bandwidth
    assert bw == 1 and isinstance(bw, int)


def test_jitter_and_loss_come_from_defaults():
    t = topo_with([(0, 0), (10, 0)], Defaults(jitter=3, loss=1.5))
    p = t.link(0, 1).params
    assert (p.jitter, p.loss) == (3.0, 1.5)


def test_candidates_need_latency_under_max_and_bandwidth_over_min():
    t = topo_with([(0, 0), (300, 0)])
    assert t.links() == {}  # exactly max_latency is not under it
    t.move_server(1, 299, 0)
    assert list(t.links()) == [(0, 1)]
    t.set_defaults(min_bandwidth=t.link(0, 1).params.bandwidth)
    assert t.links() == {}  # must be strictly over min_bandwidth
    t.set_defaults(min_bandwidth=0, decay=False, bandwidth=100)
    t.set_defaults(min_bandwidth=100)
    assert t.links() == {}


def test_derived_ignores_pins():
    t = topo_with([(0, 0), (100, 0)])
    t.pin(0, 1, latency=5)
    assert t.derived(0, 1).latency == 100.0
    assert t.link(0, 1).params.latency == 5.0


# ---- selection -------------------------------------------------------------------------------


def test_degree_cap_keeps_nearest_five():
    # centre 0 with 8 neighbours at increasing distance, far from each other
    pts = [(0.0, 0.0)] + [
        (10 * (i + 1) * math.cos(i * 0.785), 10 * (i + 1) * math.sin(i * 0.785)) for i in range(8)
    ]
    t = topo_with(pts, Defaults(max_latency=85))
    deg0 = sorted(b for a, b in t.links() if a == 0)
    assert deg0 == [1, 2, 3, 4, 5]
    for s in t.servers:
        assert sum(s in p for p in t.links()) <= DEGREE_CAP


def test_selection_is_symmetric_pairs_sorted():
    t = topo_with([(0, 0), (50, 0), (100, 0)])
    for a, b in t.links():
        assert a < b
        assert t.link(b, a) is t.link(a, b)


coords = st.floats(min_value=0, max_value=600, allow_nan=False, allow_infinity=False)
lattice = st.integers(0, 8).map(lambda i: i * 50.0)  # many equal distances: exercises tie-breaks
layouts = st.lists(st.tuples(coords, coords), min_size=1, max_size=25) | st.lists(
    st.tuples(lattice, lattice), min_size=6, max_size=30, unique=True
)


@settings(max_examples=100, deadline=None)
@given(layouts, st.randoms(use_true_random=False), st.sampled_from(["latency", "bandwidth"]), st.booleans())
def test_same_positions_same_links_whatever_the_order(points, rnd, cost, decay):
    d = Defaults(cost=cost, decay=decay)
    order = list(range(len(points)))
    first = Topology(d)
    for i in order:
        first.add_server(*points[i], id=i)
    rnd.shuffle(order)
    second = Topology(d)
    for i in order:
        second.add_server(*points[i], id=i)
    assert first.links() == second.links()
    for s in first.servers:
        assert sum(s in p for p in first.links()) <= DEGREE_CAP


def test_full_lattice_same_links_for_every_insertion_order():
    import random

    pts = [(x * 50.0, y * 50.0) for x in range(6) for y in range(6)]
    seen = set()
    for seed in range(10):
        order = list(range(len(pts)))
        random.Random(seed).shuffle(order)
        t = Topology()
        for i in order:
            t.add_server(*pts[i], id=i)
        seen.add(frozenset(t.links()))
    assert len(seen) == 1


@settings(max_examples=40, deadline=None)
@given(layouts, st.lists(st.sampled_from(["bandwidth", "latency", "jitter", "loss"]), min_size=1))
def test_pinning_never_rewires(points, fields):
    t = topo_with(points)
    before = set(t.links())
    values = {"bandwidth": 1, "latency": 0.0, "jitter": 9.0, "loss": 50.0}
    for a, b in before:
        t.pin(a, b, **{f: values[f] for f in fields})
    assert set(t.links()) == before


def test_selection_equals_removal_then_rebuild():
    pts = [(i * 37 % 500, i * 91 % 400) for i in range(30)]
    t = topo_with(pts)
    t.remove_server(7)
    rebuilt = Topology()
    for s in t.servers.values():
        rebuilt.add_server(s.x, s.y, id=s.id)
    assert t.links() == rebuilt.links()


# ---- servers ---------------------------------------------------------------------------------


def test_ids_smallest_unused():
    t = topo_with([(0, 0), (10, 0), (20, 0)])
    t.remove_server(1)
    s, _ = t.add_server(5, 5)
    assert s.id == 1
    s, _ = t.add_server(5, 5, id=100)
    assert s.id == 100
    s, _ = t.add_server(5, 5)
    assert s.id == 3
    with pytest.raises(Conflict, match="already exists"):
        t.add_server(1, 1, id=100)


def test_servers_view_is_read_only():
    t = topo_with([(0, 0)])
    with pytest.raises(TypeError):
        t.servers[5] = None


def test_down_server_has_no_links_and_no_routes():
    t = topo_with([(0, 0), (160, 0), (320, 0)])
    assert t.path(0, 2) == [0, 1, 2]
    d = t.set_up(1, False)
    assert d.servers_changed == [1]
    assert sorted(d.links_removed) == [(0, 1), (1, 2)] and t.links() == {}
    assert d.routes_changed == {0: {1: None, 2: None}, 1: {0: None, 2: None}, 2: {0: None, 1: None}}
    assert t.path(0, 2) is None and t.path(1, 1) is None
    with pytest.raises(Conflict):
        t.pin(0, 1, latency=1)
    t.set_up(1, True)
    t.set_up(2, False)
    assert t.routes()[2] == {}
    assert 2 not in t.routes()[0] and t.path(0, 2) is None


def test_remove_server_drops_its_pins_and_cuts():
    t = topo_with([(0, 0), (100, 0), (200, 0)])
    t.pin(0, 1, latency=1)
    t.cut(1, 2)
    t.remove_server(1)
    assert t.pins() == {} and t.cuts() == set()
    t.add_server(100, 0, id=1)
    assert t.link(0, 1).pinned == () and not t.link(1, 2).cut


# ---- pins ------------------------------------------------------------------------------------


def test_pin_overrides_and_survives_moves_even_when_unlinked():
    t = topo_with([(0, 0), (100, 0)])
    d = t.pin(0, 1, bandwidth=64_000, loss=2)
    assert d.links_changed == {(0, 1): LinkParams(64_000, 100.0, 0.0, 2.0)}
    assert t.link(0, 1).pinned == ("bandwidth", "loss")
    t.move_server(1, 50, 0)
    assert t.link(0, 1).params == LinkParams(64_000, 50.0, 0.0, 2.0)
    t.move_server(1, 1000, 0)  # breaks the link; the pin is kept
    assert t.links() == {} and t.pins() == {(0, 1): {"bandwidth": 64_000, "loss": 2.0}}
    with pytest.raises(Conflict, match="not linked"):
        t.pin(0, 1, latency=3)
    d = t.move_server(1, 10, 0)
    assert d.links_added == {(0, 1): LinkParams(64_000, 10.0, 0.0, 2.0)}


def test_unpin_one_field_and_all():
    t = topo_with([(0, 0), (100, 0)])
    t.pin(1, 0, latency=1, jitter=2)
    t.unpin(0, 1, "latency")
    assert t.link(0, 1).pinned == ("jitter",) and t.link(0, 1).params.latency == 100.0
    assert t.unpin(0, 1, "latency").empty()
    t.unpin(0, 1)
    assert t.pins() == {}
    with pytest.raises(TopoError, match="unknown link parameter"):
        t.unpin(0, 1, "colour")


def test_pin_same_value_as_derived_reports_pinned_change():
    t = topo_with([(0, 0), (100, 0)])
    d = t.pin(0, 1, latency=100.0)
    assert list(d.links_changed) == [(0, 1)] and d.routes_changed == {}


@pytest.mark.parametrize(
    "args, kwargs, exc, words",
    [
        ((0, 0), {"latency": 1}, TopoError, "two different servers"),
        ((0, 9), {"latency": 1}, NotFound, "no server 9"),
        ((0, 2), {"latency": 1}, Conflict, "not linked"),
        ((0, 1), {}, TopoError, "nothing to pin"),
        ((0, 1), {"colour": 1}, TopoError, "unknown link parameter"),
        ((0, 1), {"bandwidth": 0}, TopoError, "bandwidth"),
        ((0, 1), {"bandwidth": "fast"}, TopoError, "whole number"),
        ((0, 1), {"latency": -1}, TopoError, "latency"),
        ((0, 1), {"loss": 101}, TopoError, "loss"),
        ((0, "1"), {"loss": 1}, TopoError, "whole number"),
        ((True, 1), {"loss": 1}, TopoError, "whole number"),
    ],
)
def test_pin_validation(args, kwargs, exc, words):
    t = topo_with([(0, 0), (100, 0), (1000, 0)])
    before = t.to_dict()
    with pytest.raises(exc) as e:
        t.pin(*args, **kwargs)
    assert words in str(e.value)
    assert t.to_dict() == before


# ---- cuts ------------------------------------------------------------------------------------


def test_cut_keeps_link_but_removes_it_from_routing():
    t = topo_with([(0, 0), (100, 0), (200, 0)])
    d = t.cut(0, 1)
    assert d.links_cut == [(0, 1)] and not d.links_removed and not d.links_changed
    assert t.link(0, 1).cut
    assert t.routes()[0] == {1: 2, 2: 2} and t.path(0, 1) == [0, 2, 1]
    assert d.routes_changed == {0: {1: 2}, 1: {0: 2}}
    d = t.heal(1, 0)
    assert d.links_healed == [(0, 1)] and not t.link(0, 1).cut
    assert t.heal(0, 1).empty()


def test_cut_unlinked_pair_conflicts():
    t = topo_with([(0, 0), (1000, 0)])
    with pytest.raises(Conflict, match="not linked"):
        t.cut(0, 1)


def test_partition_and_heal_all():
    t = topo_with([(0, 0), (100, 0), (200, 0), (300, 0)])
    d = t.partition({0, 1})
    crossing = {p for p in t.links() if (p[0] < 2) != (p[1] < 2)}
    assert set(d.links_cut) == crossing and crossing
    for a in (0, 1):
        assert set(t.routes()[a]) == {0, 1} - {a}
    for b in (2, 3):
        assert set(t.routes()[b]) == {2, 3} - {b}
    d = t.heal_all()
    assert set(d.links_healed) == crossing
    assert set(t.routes()[0]) == {1, 2, 3}
    with pytest.raises(NotFound):
        t.partition({0, 42})


def test_cut_survives_move_that_breaks_and_remakes_link():
    t = topo_with([(0, 0), (100, 0)])
    t.cut(0, 1)
    t.move_server(1, 1000, 0)
    d = t.move_server(1, 100, 0)
    assert (0, 1) in d.links_added and d.links_cut == [(0, 1)] and t.link(0, 1).cut


# ---- validation leaves the topology unchanged -------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.add_server(math.nan, 0),
        lambda t: t.add_server(0, 100_001),
        lambda t: t.add_server("1", 0),
        lambda t: t.add_server(0, 0, id=-1),
        lambda t: t.add_server(0, 0, id=65_000),
        lambda t: t.add_server(0, 0, kind=""),
        lambda t: t.add_server(0, 0, kind="a b"),
        lambda t: t.move_server(0, math.inf, 0),
        lambda t: t.move_server(7, 0, 0),
        lambda t: t.remove_server(7),
        lambda t: t.set_up(0, "false"),
        lambda t: t.set_up(0, 0),
        lambda t: t.set_defaults(cost="hops"),
        lambda t: t.set_defaults(bandwidth=0),
        lambda t: t.set_defaults(nonsense=1),
        lambda t: t.link(0, 2),
        lambda t: t.heal(0, 9),
    ],
)
def test_errors_change_nothing(call):
    t = topo_with([(0, 0), (100, 0), (1000, 0)])
    t.pin(0, 1, latency=7)
    before = (t.to_dict(), t.links(), t.routes())
    with pytest.raises(TopoError):
        call(t)
    assert (t.to_dict(), t.links(), t.routes()) == before


def test_copy_is_independent():
    t = topo_with([(0, 0), (100, 0)])
    c = t.copy()
    c.move_server(1, 1000, 0)
    assert list(t.links()) == [(0, 1)] and c.links() == {}


def test_reset_and_assign():
    t = topo_with([(0, 0), (100, 0)], Defaults(bandwidth=9999))
    other = topo_with([(5, 5)])
    d = t.assign(other)
    assert d.servers_removed == [1] and d.servers_changed == [0] and d.links_removed == [(0, 1)]
    assert t.defaults == Defaults()
    d = t.reset()
    assert d.servers_removed == [0] and len(t.servers) == 0


def test_lookup_errors():
    t = topo_with([(0, 0), (100, 0)])
    for bad in (2, 70_000, -1):
        with pytest.raises(NotFound):
            t.server(bad)
        with pytest.raises(NotFound):
            t.link(0, bad)
    for bad in ("0", True, 1.5, None):
        with pytest.raises(TopoError) as e:
            t.server(bad)
        assert not isinstance(e.value, NotFound)
    assert t.server(1.0).id == 1
    with pytest.raises(NotFound, match="not linked"):
        topo_with([(0, 0), (1000, 0)]).link(1, 0)
