"""Parse the topology file form (`Topology.to_dict`) with errors that name the offending field."""

from __future__ import annotations

import re
from typing import Any

from .errors import TopoError
from .model import Server, Topology, check_bool, check_coord, check_id, check_kind, check_pair
from .params import FIELDS, Defaults, check_field

VERSION = 1
_TOP_KEYS = {"version", "defaults", "servers", "pins", "cuts", "links", "routes"}  # links/routes: ignored
_SERVER_KEYS = {"id", "x", "y", "kind", "up"}
_FIELD_FIRST = re.compile(r"^[A-Za-z_]\w*( \([^)]*\))?:")


def _list(d: dict[str, Any], key: str) -> list[Any]:
    value = d.get(key, [])
    if not isinstance(value, list):
        raise TopoError(f"{key}: must be a list, got {type(value).__name__}")
    return value


def _object(value: Any, where: str, allowed: set[str], required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TopoError(f"{where}: must be an object, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed, key=str)
    if unknown:
        raise TopoError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
    for key in required:
        if key not in value:
            raise TopoError(f"{where}: missing {key!r}")
    return value


def _prefixed(where: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except TopoError as e:
        sep = "." if _FIELD_FIRST.match(str(e)) else ": "
        raise TopoError(f"{where}{sep}{e}") from None


def _servers(items: list[Any]) -> dict[int, Server]:
    servers: dict[int, Server] = {}
    for n, item in enumerate(items):
        where = f"servers[{n}]"
        s = _object(item, where, _SERVER_KEYS, ("id", "x", "y"))
        sid = _prefixed(where, check_id, s["id"])
        if sid in servers:
            raise TopoError(f"{where}.id: server {sid} appears twice")
        servers[sid] = Server(
            sid,
            _prefixed(where, check_coord, "x", s["x"]),
            _prefixed(where, check_coord, "y", s["y"]),
            _prefixed(where, check_kind, s.get("kind", "synapse")),
            _prefixed(where, check_bool, "up", s.get("up", True)),
        )
    return servers


def _pair(where: str, a: Any, b: Any, servers: dict[int, Server]) -> tuple[int, int]:
    pair = _prefixed(where, check_pair, a, b)
    for i in pair:
        if i not in servers:
            raise TopoError(f"{where}: no server {i} in servers")
    return pair


def _pins(items: list[Any], servers: dict[int, Server]) -> dict[tuple[int, int], dict[str, int | float]]:
    pins: dict[tuple[int, int], dict[str, int | float]] = {}
    for n, item in enumerate(items):
        where = f"pins[{n}]"
        p = _object(item, where, {"a", "b", *FIELDS}, ("a", "b"))
        pair = _pair(where, p["a"], p["b"], servers)
        values = {f: _prefixed(where, check_field, f, p[f]) for f in FIELDS if f in p}
        if not values:
            raise TopoError(f"{where}: pins nothing (give one or more of {', '.join(FIELDS)})")
        existing = pins.setdefault(pair, {})
        twice = sorted(existing.keys() & values.keys())
        if twice:
            raise TopoError(f"{where}.{twice[0]}: pinned twice for {pair[0]}-{pair[1]}")
        existing.update(values)
    return pins


def _cuts(items: list[Any], servers: dict[int, Server]) -> set[tuple[int, int]]:
    cuts = set()
    for n, item in enumerate(items):
        where = f"cuts[{n}]"
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise TopoError(f"{where}: must be a pair of server ids like [0, 1], got {item!r}")
        cuts.add(_pair(where, item[0], item[1], servers))
    return cuts


def topology_from_dict(d: Any) -> Topology:
    """Build a Topology from its file form, validating every field."""
    if not isinstance(d, dict):
        raise TopoError(f"a topology must be an object, got {type(d).__name__}")
    unknown = sorted(set(d) - _TOP_KEYS, key=str)
    if unknown:
        raise TopoError(f"unknown key {unknown[0]!r} (allowed: defaults, servers, pins, cuts, version)")
    version = d.get("version", VERSION)
    if version != VERSION or isinstance(version, bool):
        raise TopoError(f"version: only version {VERSION} is supported, got {version!r}")
    defaults = d.get("defaults", {})
    if not isinstance(defaults, dict):
        raise TopoError(f"defaults: must be an object, got {type(defaults).__name__}")
    defaults = _prefixed("defaults", lambda: Defaults().replace(**{str(k): v for k, v in defaults.items()}))
    servers = _servers(_list(d, "servers"))
    return Topology._build(
        defaults,
        servers.values(),
        _pins(_list(d, "pins"), servers),
        _cuts(_list(d, "cuts"), servers),
    )
