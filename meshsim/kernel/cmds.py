"""Pure builders of `ip -batch` lines. Nothing here runs anything."""

from __future__ import annotations

from . import names


def netns_add(ns: str) -> str:
    return f"netns add {ns}"


def netns_del(ns: str) -> str:
    return f"netns del {ns}"


#: Every link interface joins this device group, so a node's links go in one batched delete.
LINK_GROUP = 99


#: Interfaces of removed links wait here until the reaper deletes them in one batch.
RETIRED_GROUP = 98


def delete_retired() -> str:
    return f"link del group {RETIRED_GROUP}"


def delete_links() -> str:
    """Inside a node: delete all its link interfaces at once (one RCU grace period, not one per TAP)."""
    return f"link del group {LINK_GROUP}"


def node_init(node: int) -> list[str]:
    """Inside a fresh node namespace: loopback up with the node's mesh address."""
    return ["link set dev lo up", f"addr add {names.address(node)}/32 dev lo"]





def route_replace(node: int, dst: int, nexthop: int) -> str:
    return (
        f"route replace {names.address(dst)}/32 via {names.address(nexthop)} "
        f"dev {names.peer_ifname(nexthop)} onlink src {names.address(node)}"
    )


def route_del(dst: int) -> str:
    return f"route del {names.address(dst)}/32"


def route_lines(node: int, changes: dict[int, int | None]) -> list[str]:
    """Route changes for one node: {dst: nexthop or None (delete)}, in a stable order."""
    return [
        route_replace(node, dst, nh) if nh is not None else route_del(dst)
        for dst, nh in sorted(changes.items())
    ]


NODE_SYSCTLS: dict[str, str] = {
    "net/ipv4/ip_forward": "1",
    "net/ipv4/conf/all/rp_filter": "0",
    "net/ipv4/conf/default/rp_filter": "0",
    "net/ipv4/conf/all/accept_redirects": "0",
    "net/ipv4/conf/all/send_redirects": "0",
    "net/ipv4/conf/default/send_redirects": "0",
    "net/ipv4/icmp_ratelimit": "0",
}
