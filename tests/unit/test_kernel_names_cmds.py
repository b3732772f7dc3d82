"""Names, addresses and the `ip -batch` builders: pure functions, golden strings."""

from __future__ import annotations

import pytest

from meshsim.kernel import cmds, names


def test_addresses_are_stable_and_reversible():
    assert names.address(0) == "10.99.0.1"
    assert names.address(254) == "10.99.0.255"
    assert names.address(255) == "10.99.1.0"
    for n in (0, 1, 255, 256, 4095, 64999):
        assert names.node_of_address(names.address(n)) == n
    assert names.node_of_address("192.168.1.1") is None


def test_names_carry_the_run_prefix_and_fit_ifnamsiz():
    assert names.netns("a3f9", 12) == "msa3f9-12"
    assert names.node_of_netns("a3f9", "msa3f9-12") == 12
    assert names.node_of_netns("a3f9", "msbeef-12") is None
    assert names.peer_ifname(64999) == "eth64999"
    assert len(names.peer_ifname(64999)) <= names.IFNAMSIZ
    assert names.link_id(5, 3) == "3-5"
    assert names.mac(1, 2) == "02:00:01:00:02:01" and names.mac(1, 2) != names.mac(2, 1)


@pytest.mark.parametrize("bad", [-1, 65000, True, 1.5, "3"])
def test_bad_node_ids_are_refused(bad):
    with pytest.raises(ValueError):
        names.address(bad)


@pytest.mark.parametrize("bad", ["", "A3F9", "a3f", "a3f9x", "../x"])
def test_bad_run_ids_are_refused(bad):
    with pytest.raises(ValueError):
        names.prefix(bad)


def test_route_lines_golden():
    assert cmds.route_lines(0, {2: 1, 5: None}) == [
        "route replace 10.99.0.3/32 via 10.99.0.2 dev eth1 onlink src 10.99.0.1",
        "route del 10.99.0.6/32",
    ]
    assert cmds.node_init(3) == ["link set dev lo up", "addr add 10.99.0.4/32 dev lo"]
    assert cmds.netns_add("msa3f9-1") == "netns add msa3f9-1"
    assert cmds.delete_links() == f"link del group {cmds.LINK_GROUP}"
