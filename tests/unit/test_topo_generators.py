"""Generators produce the expected shapes and connected graphs."""

import networkx as nx
import pytest

from meshsim.topo import TopoError
from meshsim.topo import generators as gen


def connected(t):
    g = nx.Graph()
    g.add_nodes_from(t.servers)
    g.add_edges_from(t.links())
    return nx.is_connected(g)


def test_line():
    t = gen.line(5)
    assert sorted(t.servers) == [0, 1, 2, 3, 4] and connected(t)
    assert t.path(0, 4)[0] == 0 and t.path(0, 4)[-1] == 4
    assert all(t.link(i, i + 1) for i in range(4))
    assert gen.line(1).links() == {}


def test_ring_neighbours_link():
    for n in (3, 6, 12, 40):
        t = gen.ring(n)
        assert all((i, i + 1) in t.links() for i in range(n - 1)) and connected(t)
        assert t.link(0, n - 1)
    t = gen.ring(12, radius=200)
    assert connected(t)


def test_grid():
    t = gen.grid(3, 4)
    assert len(t.servers) == 12 and connected(t)
    assert t.link(0, 1).params.latency == pytest.approx(100) and t.link(0, 4).params.latency == pytest.approx(
        100
    )


def test_random_geometric_reproducible_and_connected():
    a, b = gen.random_geometric(40, seed=7), gen.random_geometric(40, seed=7)
    assert a.to_dict() == b.to_dict()
    assert gen.random_geometric(40, seed=8).to_dict() != a.to_dict()
    for seed in range(5):
        assert connected(gen.random_geometric(30, seed=seed))
    t = gen.random_geometric(20, seed=1, width=5000, height=5000)
    assert connected(t)


def test_generator_arguments_are_validated():
    with pytest.raises(TopoError):
        gen.line(0)
    with pytest.raises(TopoError):
        gen.grid(2, "3")
    with pytest.raises(TopoError):
        gen.line(3, spacing=-1)
