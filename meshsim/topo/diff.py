"""What changed between two topologies: the exact work list for the controller and the page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .params import LinkParams

if TYPE_CHECKING:
    from .model import Topology

Pair = tuple[int, int]
RouteChanges = dict[int, dict[int, int | None]]


def pair_key(pair: Pair) -> str:
    """The JSON key of a link: "a-b" with a < b."""
    return f"{pair[0]}-{pair[1]}"


@dataclass
class TopoDiff:
    """Changes from one topology to the next.

    `links_changed` holds links present before and after whose parameters or pinned fields changed.
    `links_cut` lists links that are cut now and were not before (including newly added cut links);
    `links_healed` lists links present before and after that were cut and are not any more.
    `routes_changed` maps src -> {dst: new next hop, or None when the route is gone}; a removed or
    stopped server's table is cleared entry by entry. `defaults_changed` maps changed settings to their
    new values.
    """

    servers_added: list[int] = field(default_factory=list)
    servers_removed: list[int] = field(default_factory=list)
    servers_changed: list[int] = field(default_factory=list)
    links_added: dict[Pair, LinkParams] = field(default_factory=dict)
    links_removed: list[Pair] = field(default_factory=list)
    links_changed: dict[Pair, LinkParams] = field(default_factory=dict)
    links_cut: list[Pair] = field(default_factory=list)
    links_healed: list[Pair] = field(default_factory=list)
    routes_changed: RouteChanges = field(default_factory=dict)
    defaults_changed: dict[str, Any] = field(default_factory=dict)

    def empty(self) -> bool:
        return not any(
            (
                self.servers_added,
                self.servers_removed,
                self.servers_changed,
                self.links_added,
                self.links_removed,
                self.links_changed,
                self.links_cut,
                self.links_healed,
                self.routes_changed,
                self.defaults_changed,
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form: link keys as "a-b", route keys as strings."""
        return {
            "servers_added": list(self.servers_added),
            "servers_removed": list(self.servers_removed),
            "servers_changed": list(self.servers_changed),
            "links_added": {pair_key(k): p.to_dict() for k, p in self.links_added.items()},
            "links_removed": [pair_key(k) for k in self.links_removed],
            "links_changed": {pair_key(k): p.to_dict() for k, p in self.links_changed.items()},
            "links_cut": [pair_key(k) for k in self.links_cut],
            "links_healed": [pair_key(k) for k in self.links_healed],
            "routes_changed": {
                str(src): {str(dst): hop for dst, hop in table.items()}
                for src, table in self.routes_changed.items()
            },
            "defaults_changed": dict(self.defaults_changed),
        }


def route_changes(old: dict[int, dict[int, int]], new: dict[int, dict[int, int]]) -> RouteChanges:
    """Per-source changes turning routing tables `old` into `new`."""
    out: RouteChanges = {}
    for src in sorted(old.keys() | new.keys()):
        o = old.get(src, {})
        n = new.get(src, {})
        if o is n or o == n:
            continue
        changes: dict[int, int | None] = {dst: hop for dst, hop in n.items() if o.get(dst) != hop}
        changes.update({dst: None for dst in o if dst not in n})
        out[src] = dict(sorted(changes.items()))
    return out


def apply_route_changes(tables: dict[int, dict[int, int]], changes: RouteChanges) -> None:
    """Apply `changes` to `tables` in place, dropping tables that become empty."""
    for src, table_changes in changes.items():
        table = tables.setdefault(src, {})
        for dst, hop in table_changes.items():
            if hop is None:
                table.pop(dst, None)
            else:
                table[dst] = hop
        if not table:
            del tables[src]


def diff(old: Topology, new: Topology) -> TopoDiff:
    """Everything that differs between `old` and `new`."""
    d = TopoDiff()
    os_, ns = old._servers, new._servers
    d.servers_added = sorted(ns.keys() - os_.keys())
    d.servers_removed = sorted(os_.keys() - ns.keys())
    d.servers_changed = sorted(i for i in os_.keys() & ns.keys() if os_[i] != ns[i])

    ol, nl = old._link_map(), new._link_map()
    for pair in sorted(nl):
        link = nl[pair]
        before = ol.get(pair)
        if before is None:
            d.links_added[pair] = link.params
        elif before.params != link.params or before.pinned != link.pinned:
            d.links_changed[pair] = link.params
        if link.cut and (before is None or not before.cut):
            d.links_cut.append(pair)
        elif before is not None and before.cut and not link.cut:
            d.links_healed.append(pair)
    d.links_removed = sorted(ol.keys() - nl.keys())

    d.routes_changed = route_changes(old._route_map(), new._route_map())
    od, nd = old.defaults.to_dict(), new.defaults.to_dict()
    d.defaults_changed = {k: v for k, v in nd.items() if od[k] != v}
    return d
