"""Names and addresses of everything a run creates in the kernel: pure functions."""

from __future__ import annotations

import ipaddress
import re
import secrets

MESH_NET = ipaddress.IPv4Network("10.99.0.0/16")
MAX_NODE_ID = 65000
IFNAMSIZ = 15
_RUN_RE = re.compile(r"^[0-9a-f]{4}$")


def new_run_id() -> str:
    """A fresh 4-hex-digit run id."""
    return secrets.token_hex(2)


def check_run_id(run: str) -> str:
    if not _RUN_RE.match(run):
        raise ValueError(f"run id must be 4 hex digits, got {run!r}")
    return run


def prefix(run: str) -> str:
    """Every kernel name of a run starts with this."""
    return f"ms{check_run_id(run)}"


def netns(run: str, node: int) -> str:
    """The network namespace of node `node`."""
    return f"{prefix(run)}-{_check_node(node)}"


def node_of_netns(run: str, name: str) -> int | None:
    """The node id of a namespace name of this run, or None."""
    head = f"{prefix(run)}-"
    if name.startswith(head) and name[len(head) :].isdigit():
        return int(name[len(head) :])
    return None


def address(node: int) -> str:
    """Node `node`'s stable address inside the mesh."""
    return str(MESH_NET.network_address + _check_node(node) + 1)


def node_of_address(addr: str) -> int | None:
    ip = ipaddress.IPv4Address(addr)
    if ip not in MESH_NET:
        return None
    return int(ip) - int(MESH_NET.network_address) - 1


def peer_ifname(peer: int) -> str:
    """Inside a node, the interface that leads to `peer`."""
    return f"eth{_check_node(peer)}"



def mac(node: int, peer: int) -> str:
    """A stable locally administered MAC for node's interface towards peer."""
    _check_node(node)
    _check_node(peer)
    return (
        f"02:{(node >> 8) & 0xFF:02x}:{node & 0xFF:02x}:{(peer >> 8) & 0xFF:02x}:{peer & 0xFF:02x}:{0x01:02x}"
    )


def link_id(a: int, b: int) -> str:
    lo, hi = sorted((a, b))
    return f"{lo}-{hi}"


def server_name(node: int) -> str:
    return f"synapse{_check_node(node)}"


def _check_node(node: int) -> int:
    if not isinstance(node, int) or isinstance(node, bool) or not 0 <= node < MAX_NODE_ID:
        raise ValueError(f"node id must be an integer 0..{MAX_NODE_ID - 1}, got {node!r}")
    return node
