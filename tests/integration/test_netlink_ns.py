"""NsRoutes against the real kernel: two namespaces joined by a veth pair, compared with `ip`."""

from __future__ import annotations

import errno
import json
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from meshsim.kernel.netlink import NetlinkError, NsRoutes

pytestmark = pytest.mark.root

A_ADDR, B_ADDR = "10.99.0.1", "10.99.0.2"
A_MAC, B_MAC = "02:00:0a:63:00:01", "02:00:0a:63:00:02"


def ip(*args: str, check: bool = True) -> str:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True).stdout


def ipj(ns: str, *args: str) -> list[dict]:
    return json.loads(ip("-n", ns, "-j", "-d", *args) or "[]")


@dataclass
class Pair:
    a: str  # namespace of node 1 (address A_ADDR, interface eth2 to b)
    b: str  # namespace of node 2 (address B_ADDR, interface eth1 to a)
    ra: NsRoutes
    rb: NsRoutes


@pytest.fixture
def pair() -> Iterator[Pair]:
    run = secrets.token_hex(2)
    a, b = f"ms{run}-0", f"ms{run}-1"
    made: list[str] = []
    opened: list[NsRoutes] = []
    try:
        for ns, addr in ((a, A_ADDR), (b, B_ADDR)):
            ip("netns", "add", ns)
            made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", f"{addr}/32", "dev", "lo")
        ip("-n", a, "link", "add", "eth2", "type", "veth", "peer", "name", "eth1", "netns", b)
        ip("-n", a, "link", "set", "eth2", "up")
        ip("-n", b, "link", "set", "eth1", "up")
        opened += [NsRoutes(a), NsRoutes(b)]
        yield Pair(a, b, *opened)
    finally:
        for r in opened:
            r.close()  # an open socket would keep the namespace alive
        for ns in made:
            ip("netns", "del", ns, check=False)


def route_of(ns: str, dst: str) -> dict:
    (r,) = ipj(ns, "route", "show", f"{dst}/32")
    return r


def test_replace_matches_ip_route_replace(pair: Pair) -> None:
    ip(
        "-n",
        pair.a,
        "route",
        "replace",
        "10.99.0.50/32",
        "via",
        B_ADDR,
        "dev",
        "eth2",
        "onlink",
        "src",
        A_ADDR,
    )
    assert pair.ra.apply([("10.99.0.51", B_ADDR, "eth2", A_ADDR)]) == []
    by_ip, ours = route_of(pair.a, "10.99.0.50"), route_of(pair.a, "10.99.0.51")
    assert ours.pop("dst") == "10.99.0.51" and by_ip.pop("dst") == "10.99.0.50"
    assert ours == by_ip
    assert ours["gateway"] == B_ADDR and ours["dev"] == "eth2" and ours["prefsrc"] == A_ADDR
    assert ours["flags"] == ["onlink"] and ours["scope"] == "global" and ours["type"] == "unicast"
    assert pair.ra.routes() == {"10.99.0.50": B_ADDR, "10.99.0.51": B_ADDR}


def test_replace_changes_gateway_and_routes_reads_back(pair: Pair) -> None:
    assert pair.ra.apply([("10.99.0.9", B_ADDR, "eth2", A_ADDR)]) == []
    assert pair.ra.apply([("10.99.0.9", "10.99.0.7", "eth2", A_ADDR)]) == []
    assert route_of(pair.a, "10.99.0.9")["gateway"] == "10.99.0.7"
    assert pair.ra.routes() == {"10.99.0.9": "10.99.0.7"}
    # the socket is bound to its own namespace
    assert pair.rb.routes() == {}
    assert ipj(pair.b, "route", "show") == []


def test_links_neighbours_and_routes_carry_a_ping(pair: Pair) -> None:
    pair.ra.set_link("eth2", up=True, mac=A_MAC, mtu=1400)
    pair.rb.set_link("eth1", up=True, mac=B_MAC, mtu=1400)
    pair.ra.neigh_replace(B_ADDR, B_MAC, "eth2")
    pair.rb.neigh_replace(A_ADDR, A_MAC, "eth1")
    (link,) = ipj(pair.a, "link", "show", "eth2")
    assert (link["address"], link["mtu"], "UP" in link["flags"]) == (A_MAC, 1400, True)
    (neigh,) = ipj(pair.a, "neigh", "show", "dev", "eth2")
    assert (neigh["dst"], neigh["lladdr"], neigh["state"]) == (B_ADDR, B_MAC, ["PERMANENT"])
    assert pair.ra.apply([(B_ADDR, B_ADDR, "eth2", A_ADDR)]) == []
    assert pair.rb.apply([(A_ADDR, A_ADDR, "eth1", B_ADDR)]) == []
    ping = ["ip", "netns", "exec", pair.a, "ping", "-c", "1", "-W", "2", B_ADDR]
    assert subprocess.run(ping, capture_output=True).returncode == 0
    pair.ra.set_link("eth2", up=False)
    (link,) = ipj(pair.a, "link", "show", "eth2")
    assert "UP" not in link["flags"]
    assert subprocess.run(ping, capture_output=True).returncode != 0


def test_delete_and_already_gone_is_not_an_error(pair: Pair) -> None:
    routes = [(f"10.99.1.{i}", B_ADDR, "eth2", A_ADDR) for i in range(1, 6)]
    assert pair.ra.apply(routes) == []
    assert pair.ra.apply(delete=["10.99.1.1", "10.99.1.2"]) == []
    assert set(pair.ra.routes()) == {"10.99.1.3", "10.99.1.4", "10.99.1.5"}
    assert pair.ra.apply(delete=["10.99.1.1", "10.99.1.3", "10.99.9.9"]) == []
    assert set(pair.ra.routes()) == {"10.99.1.4", "10.99.1.5"}


def test_errors_are_all_reported_and_do_not_stop_the_rest(pair: Pair) -> None:
    errs = pair.ra.apply(
        [
            ("10.99.2.1", B_ADDR, "eth2", A_ADDR),
            ("10.99.2.2", B_ADDR, "eth77", A_ADDR),  # no such interface
            ("10.99.2.3", B_ADDR, "eth2", "10.1.2.3"),  # not a local address
            ("10.99.2.4", B_ADDR, "eth2", A_ADDR),
        ],
        delete=["10.99.2.99"],
    )
    assert [(e.errno, e.dst) for e in errs] == [(errno.ENODEV, "10.99.2.2"), (errno.EINVAL, "10.99.2.3")]
    assert all(isinstance(e, NetlinkError) for e in errs)
    assert "eth77" in errs[0].request and "src 10.1.2.3" in errs[1].request
    assert "prefsrc" in errs[1].detail.lower()  # the kernel's extended ack
    assert set(pair.ra.routes()) == {"10.99.2.1", "10.99.2.4"}


def test_interface_down_is_refused(pair: Pair) -> None:
    ip("-n", pair.a, "link", "set", "eth2", "down")
    (err,) = pair.ra.apply([("10.99.3.1", B_ADDR, "eth2", A_ADDR)])
    assert err.errno == errno.ENETDOWN
    with pytest.raises(NetlinkError) as info:
        pair.ra.set_link("eth77", up=True)
    assert info.value.errno == errno.ENODEV


def test_recreated_interface_gets_its_new_index(pair: Pair) -> None:
    ip("-n", pair.a, "link", "add", "eth5", "type", "veth", "peer", "name", "p5")
    ip("-n", pair.a, "link", "set", "eth5", "up")
    old = pair.ra.ifindex("eth5")
    assert pair.ra.apply([("10.99.4.1", B_ADDR, "eth5", A_ADDR)]) == []
    ip("-n", pair.a, "link", "del", "eth5")
    ip("-n", pair.a, "link", "add", "eth5", "type", "veth", "peer", "name", "p5")
    ip("-n", pair.a, "link", "set", "eth5", "up")
    assert pair.ra.apply([("10.99.4.2", B_ADDR, "eth5", A_ADDR)]) == []  # stale cache, retried
    assert pair.ra.ifindex("eth5") != old
    assert route_of(pair.a, "10.99.4.2")["dev"] == "eth5"


def test_five_thousand_routes_in_one_call(pair: Pair) -> None:
    dsts = [f"10.98.{i // 250}.{i % 250 + 1}" for i in range(5000)]
    assert pair.ra.apply([(d, B_ADDR, "eth2", A_ADDR) for d in dsts]) == []
    shown = ipj(pair.a, "route", "show")
    assert len(shown) == 5000
    assert {r["dst"] for r in shown} == set(dsts)
    assert all(r["gateway"] == B_ADDR and r["flags"] == ["onlink"] for r in shown)
    # change every gateway, delete half
    assert pair.ra.apply([(d, "10.99.0.3", "eth2", A_ADDR) for d in dsts[2500:]], delete=dsts[:2500]) == []
    assert pair.ra.routes() == dict.fromkeys(dsts[2500:], "10.99.0.3")


def test_concurrent_callers_share_one_socket(pair: Pair) -> None:
    failures: list[object] = []

    def work(t: int) -> None:
        for k in range(20):
            failures.extend(pair.ra.apply([(f"10.97.{t}.{k + 1}", B_ADDR, "eth2", A_ADDR)]))
            failures.extend(pair.rb.apply([(f"10.97.{t}.{k + 1}", A_ADDR, "eth1", B_ADDR)]))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert failures == []
    assert len(pair.ra.routes()) == len(pair.rb.routes()) == 120


def test_addr_replace_is_idempotent(pair: Pair) -> None:
    pair.ra.addr_replace("10.99.0.200", 32, "lo")
    pair.ra.addr_replace("10.99.0.200", 32, "lo")
    (lo,) = ipj(pair.a, "addr", "show", "dev", "lo")
    locals_ = [a["local"] for a in lo["addr_info"] if a["family"] == "inet"]
    assert locals_.count("10.99.0.200") == 1 and A_ADDR in locals_


def test_small_socket_buffers_split_a_call_into_many_sends(pair: Pair) -> None:
    small = NsRoutes(pair.a, sndbuf=4096, rcvbuf=8192)
    try:
        assert small._max_inflight < 20  # so 3,000 routes take hundreds of sends
        dsts = [f"10.96.{i // 250}.{i % 250 + 1}" for i in range(3000)]
        assert small.apply([(d, B_ADDR, "eth2", A_ADDR) for d in dsts]) == []
        assert len(small.routes()) == 3000
        errs = small.apply([(d, B_ADDR, "eth2", "10.1.2.3") for d in dsts[:100]], delete=dsts)
        assert len(errs) == 100 and {e.errno for e in errs} == {errno.EINVAL}
        assert small.routes() == {}
    finally:
        small.close()


def test_missing_interface_rereads_links_once_per_call(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    pair.ra.ifindex("eth2")  # fill the cache
    calls: list[int] = []
    real = NsRoutes._refresh_links

    def counting(self: NsRoutes) -> None:
        calls.append(1)
        real(self)

    monkeypatch.setattr(NsRoutes, "_refresh_links", counting)
    routes = [(f"10.99.5.{i}", B_ADDR, "eth77", A_ADDR) for i in range(1, 51)]
    errs = pair.ra.apply([*routes, ("10.99.5.99", B_ADDR, "eth2", A_ADDR)])
    assert [e.dst for e in errs] == [r[0] for r in routes]
    assert {e.errno for e in errs} == {errno.ENODEV}
    assert len(calls) == 1
    assert pair.ra.routes() == {"10.99.5.99": B_ADDR}
