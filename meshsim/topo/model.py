"""The topology model: servers, defaults, pins and cuts in; links, routes and diffs out.

Every mutation works on a copy, then diffs it against the current state and adopts it, so a mutation
that raises changes nothing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from . import routing, selection
from .diff import TopoDiff, diff
from .errors import Conflict, NotFound, TopoError
from .params import FIELDS, Defaults, LinkParams, check_bool, check_field, check_float, check_int

__all__ = ["Conflict", "Link", "NotFound", "Server", "TopoError", "Topology"]

MAX_ID = 64_999
MAX_COORD = 100_000.0
_KIND = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")

Pair = tuple[int, int]


def check_id(value: Any, name: str = "id") -> int:
    return check_int(name, value, 0, MAX_ID)


def check_coord(name: str, value: Any) -> float:
    return check_float(name, value, -MAX_COORD, MAX_COORD, unit="px")


def check_kind(value: Any, name: str = "kind") -> str:
    if not isinstance(value, str) or not _KIND.match(value):
        raise TopoError(f"{name}: must be a short name of letters, digits, '_', '.' or '-', got {value!r}")
    return value


def check_pair(a: Any, b: Any) -> Pair:
    """Validate two server ids naming a link and return them as (low, high)."""
    a, b = _as_int(a, "a"), _as_int(b, "b")
    if a == b:
        raise TopoError(f"a link joins two different servers, got {a} twice")
    return (a, b) if a < b else (b, a)


def _as_int(value: Any, name: str) -> int:
    """An int as is (any range: unknown ids are NotFound later), else validated as an id."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return check_id(value, name)


@dataclass(frozen=True)
class Server:
    id: int
    x: float
    y: float
    kind: str = "synapse"
    up: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Link:
    """A selected link (a < b) with its effective parameters (derived, overridden by pins)."""

    a: int
    b: int
    params: LinkParams
    pinned: tuple[str, ...] = ()
    cut: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            **self.params.to_dict(),
            "pinned": list(self.pinned),
            "cut": self.cut,
        }


class Topology:
    """Servers on a plane; links, their parameters and routes follow from positions, defaults and pins."""

    def __init__(self, defaults: Defaults | None = None) -> None:
        self._servers: dict[int, Server] = {}
        self._defaults = defaults if defaults is not None else Defaults()
        self._pins: dict[Pair, dict[str, int | float]] = {}
        self._cuts: set[Pair] = set()
        self._invalidate(selection_too=True)
        self._route_basis: tuple[Any, routing.Routes] | None = None

    # ---- reading -------------------------------------------------------------------------------

    @property
    def servers(self) -> Mapping[int, Server]:
        return MappingProxyType(self._servers)

    @property
    def defaults(self) -> Defaults:
        return self._defaults

    def server(self, id: Any) -> Server:
        """The server `id`; NotFound if there is none."""
        key = _as_int(id, "id")
        if key not in self._servers:
            raise NotFound(f"no server {key}")
        return self._servers[key]

    def links(self) -> dict[Pair, Link]:
        return dict(self._link_map())

    def link(self, a: Any, b: Any) -> Link:
        """The link between a and b, in either order; NotFound if they are not linked."""
        pair = self._existing_pair(a, b)
        link = self._link_map().get(pair)
        if link is None:
            raise NotFound(f"servers {pair[0]} and {pair[1]} are not linked")
        return link

    def derived(self, a: Any, b: Any) -> LinkParams:
        """The unpinned parameters a link between a and b would have at their current positions."""
        pair = self._existing_pair(a, b)
        p, q = (self._servers[i] for i in pair)
        return selection.derive((p.id, p.x, p.y), (q.id, q.x, q.y), self._defaults)

    def pins(self) -> dict[Pair, dict[str, int | float]]:
        """Pinned values per pair, including pairs that are not linked at the moment."""
        return {k: dict(v) for k, v in self._pins.items()}

    def cuts(self) -> set[Pair]:
        """Cut pairs, including pairs that are not linked at the moment."""
        return set(self._cuts)

    def routes(self) -> dict[int, dict[int, int]]:
        """src -> {dst: next hop} for every server; only reachable destinations appear."""
        return {src: dict(table) for src, table in self._route_map().items()}

    def path(self, src: Any, dst: Any) -> list[int] | None:
        """The routed path from src to dst (both ends included), or None if dst is unreachable."""
        src, dst = self.server(src).id, self.server(dst).id
        routes = self._route_map()
        if src == dst:
            return [src] if self._servers[src].up else None
        hops = [src]
        while hops[-1] != dst:
            nxt = routes[hops[-1]].get(dst)
            if nxt is None or len(hops) > len(self._servers):
                return None
            hops.append(nxt)
        return hops

    def copy(self) -> Topology:
        new = Topology.__new__(Topology)
        new.__dict__.update(self.__dict__)
        new._servers = dict(self._servers)
        new._pins = {k: dict(v) for k, v in self._pins.items()}
        new._cuts = set(self._cuts)
        return new

    def to_dict(self) -> dict[str, Any]:
        """The topology file form: defaults, servers, pins and cuts (links and routes follow from them)."""
        return {
            "version": 1,
            "defaults": self._defaults.to_dict(),
            "servers": [self._servers[i].to_dict() for i in sorted(self._servers)],
            "pins": [{"a": a, "b": b, **self._pins[(a, b)]} for a, b in sorted(self._pins)],
            "cuts": [[a, b] for a, b in sorted(self._cuts)],
        }

    def view(self) -> dict[str, Any]:
        """The derived state for display: servers, links, defaults and routes (JSON-friendly)."""
        return {
            "servers": [self._servers[i].to_dict() for i in sorted(self._servers)],
            "links": [link.to_dict() for _, link in sorted(self._link_map().items())],
            "defaults": self._defaults.to_dict(),
            "routes": {
                str(src): {str(dst): hop for dst, hop in sorted(table.items())}
                for src, table in sorted(self._route_map().items())
            },
        }

    @classmethod
    def from_dict(cls, d: Any) -> Topology:
        """Build from the `to_dict` form; raises TopoError naming the bad field."""
        from .serial import topology_from_dict

        return topology_from_dict(d)

    # ---- mutations -----------------------------------------------------------------------------

    def add_server(
        self, x: Any, y: Any, kind: Any = "synapse", id: Any = None, up: Any = True
    ) -> tuple[Server, TopoDiff]:
        """Add a server; its id is the smallest unused one unless given."""
        x, y, kind, up = check_coord("x", x), check_coord("y", y), check_kind(kind), check_bool("up", up)
        if id is None:
            id = next((i for i in range(MAX_ID + 1) if i not in self._servers), None)
            if id is None:
                raise Conflict(f"no free server id: all {MAX_ID + 1} are in use")
        else:
            id = check_id(id)
            if id in self._servers:
                raise Conflict(f"server {id} already exists")
        server = Server(id, x, y, kind, up)

        def apply(t: Topology) -> None:
            t._servers[id] = server
            t._invalidate(selection_too=True)

        return server, self._mutate(apply)

    def move_server(self, id: Any, x: Any, y: Any) -> TopoDiff:
        old = self.server(id)
        server = dataclasses.replace(old, x=check_coord("x", x), y=check_coord("y", y))
        return self._replace_server(server)

    def set_up(self, id: Any, up: Any) -> TopoDiff:
        """Mark a server up or down; a down server has no links, so it neither forwards nor is routable."""
        server = dataclasses.replace(self.server(id), up=check_bool("up", up))
        return self._replace_server(server)

    def remove_server(self, id: Any) -> TopoDiff:
        """Remove a server with its pins and cuts."""
        id = self.server(id).id

        def apply(t: Topology) -> None:
            del t._servers[id]
            t._pins = {k: v for k, v in t._pins.items() if id not in k}
            t._cuts = {k for k in t._cuts if id not in k}
            t._invalidate(selection_too=True)

        return self._mutate(apply)

    def pin(self, a: Any, b: Any, **fields: Any) -> TopoDiff:
        """Pin link parameters of a linked pair; pins are kept across moves until unpinned."""
        pair = self._linked_pair(a, b, "pin")
        if not fields:
            raise TopoError(f"nothing to pin: give one or more of {', '.join(FIELDS)}")
        values = {name: check_field(name, value) for name, value in fields.items()}

        def apply(t: Topology) -> None:
            t._pins[pair] = {**t._pins.get(pair, {}), **values}
            t._invalidate()

        return self._mutate(apply)

    def unpin(self, a: Any, b: Any, field: str | None = None) -> TopoDiff:
        """Unpin one field of a pair (all fields if `field` is None); unpinning a free field is a no-op."""
        pair = self._existing_pair(a, b)
        if field is not None and field not in FIELDS:
            raise TopoError(f"{field!r}: unknown link parameter (expected one of {', '.join(FIELDS)})")

        def apply(t: Topology) -> None:
            kept = {k: v for k, v in t._pins.get(pair, {}).items() if field is not None and k != field}
            if kept:
                t._pins[pair] = kept
            else:
                t._pins.pop(pair, None)
            t._invalidate()

        return self._mutate(apply)

    def cut(self, a: Any, b: Any) -> TopoDiff:
        """Cut a linked pair: the link stays selected but carries nothing and is not routed over."""
        pair = self._linked_pair(a, b, "cut")
        return self._mutate(lambda t: t._set_cuts(t._cuts | {pair}))

    def heal(self, a: Any, b: Any) -> TopoDiff:
        """Heal a cut pair; healing a pair that is not cut is a no-op."""
        pair = self._existing_pair(a, b)
        return self._mutate(lambda t: t._set_cuts(t._cuts - {pair}))

    def partition(self, ids: Iterable[Any]) -> TopoDiff:
        """Cut every link between a server in `ids` and one outside."""
        side = {self.server(i).id for i in ids}
        crossing = {p for p in self._link_map() if (p[0] in side) != (p[1] in side)}
        return self._mutate(lambda t: t._set_cuts(t._cuts | crossing))

    def heal_all(self) -> TopoDiff:
        return self._mutate(lambda t: t._set_cuts(set()))

    def set_defaults(self, **changes: Any) -> TopoDiff:
        new_defaults = self._defaults.replace(**changes)

        def apply(t: Topology) -> None:
            t._defaults = new_defaults
            t._invalidate(selection_too=True)

        return self._mutate(apply)

    def reset(self) -> TopoDiff:
        """Remove every server, pin and cut; keep the defaults."""
        return self.assign(Topology(self._defaults))

    def assign(self, other: Topology) -> TopoDiff:
        """Become a copy of `other` (e.g. a loaded file) and return the difference."""
        return self._mutate(lambda t: t._adopt(other.copy()))

    # ---- internals -----------------------------------------------------------------------------

    @classmethod
    def _build(
        cls,
        defaults: Defaults,
        servers: Iterable[Server],
        pins: Mapping[Pair, Mapping[str, int | float]],
        cuts: Iterable[Pair],
    ) -> Topology:
        """Assemble from already validated parts."""
        t = cls(defaults)
        t._servers = {s.id: s for s in servers}
        t._pins = {k: dict(v) for k, v in pins.items()}
        t._cuts = set(cuts)
        return t

    def _mutate(self, apply: Callable[[Topology], None]) -> TopoDiff:
        new = self.copy()
        apply(new)
        d = diff(self, new)
        self._adopt(new)
        return d

    def _adopt(self, other: Topology) -> None:
        self.__dict__.update(other.__dict__)

    def _replace_server(self, server: Server) -> TopoDiff:
        def apply(t: Topology) -> None:
            t._servers[server.id] = server
            t._invalidate(selection_too=True)

        return self._mutate(apply)

    def _set_cuts(self, cuts: set[Pair]) -> None:
        self._cuts = cuts
        self._invalidate()

    def _invalidate(self, selection_too: bool = False) -> None:
        if selection_too:
            self._selection: dict[Pair, LinkParams] | None = None
        self._links: dict[Pair, Link] | None = None
        self._routes: routing.Routes | None = None

    def _existing_pair(self, a: Any, b: Any) -> Pair:
        pair = check_pair(a, b)
        for i in pair:
            self.server(i)
        return pair

    def _linked_pair(self, a: Any, b: Any, verb: str) -> Pair:
        pair = self._existing_pair(a, b)
        if pair not in self._selection_map():
            raise Conflict(f"cannot {verb} {pair[0]}-{pair[1]}: those servers are not linked right now")
        return pair

    def _selection_map(self) -> dict[Pair, LinkParams]:
        if self._selection is None:
            points = [(s.id, s.x, s.y) for s in self._servers.values() if s.up]
            self._selection = selection.select(points, self._defaults)
        return self._selection

    def _link_map(self) -> dict[Pair, Link]:
        if self._links is None:
            links = {}
            for pair, derived in self._selection_map().items():
                pins = self._pins.get(pair)
                params = dataclasses.replace(derived, **pins) if pins else derived
                pinned = tuple(f for f in FIELDS if pins and f in pins)
                links[pair] = Link(pair[0], pair[1], params, pinned, pair in self._cuts)
            self._links = links
        return self._links

    def _route_map(self) -> routing.Routes:
        """Routing tables, reused from the previous state when the weighted graph did not change."""
        if self._routes is None:
            cost = self._defaults.cost
            ids = tuple(sorted(self._servers))
            up = tuple(i for i in ids if self._servers[i].up)
            weights = {p: routing.weight(ln.params, cost) for p, ln in self._link_map().items() if not ln.cut}
            basis = (ids, up, weights)
            if self._route_basis is not None and self._route_basis[0] == basis:
                tables = self._route_basis[1]
            else:
                tables = routing.all_routes(routing.adjacency(up, weights))
                for i in self._servers:
                    tables.setdefault(i, {})
                self._route_basis = (basis, tables)
            self._routes = tables
        return self._routes
