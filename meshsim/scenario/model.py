"""Typed scenarios: the topology to start from and the steps, checked against that topology.

`load(path)` is the one entry point: syntax, schema and meaning (server ids exist, links exist,
rooms are created before use, Matrix steps only on synapse servers) are all checked before anything
starts, and every problem names its file and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..topo import TopoError, Topology, files, generators
from ..topo.params import Defaults
from .schema import ACTIONS, Path_, ScenarioError, Source, load_source

ServerSel = list[int]


@dataclass(frozen=True)
class Step:
    """One step: its action name, typed arguments, when it may start, and where it came from."""

    index: int
    action: str
    args: dict[str, Any]
    at: float | None = None
    label: str | None = None
    line: int = 0

    @property
    def title(self) -> str:
        return self.label or f"{self.action} {summary(self.action, self.args)}".strip()


@dataclass
class Scenario:
    name: str
    path: Path
    kind: str
    seed: int
    topology: Topology
    steps: list[Step]
    boot_timeout: float = 300.0
    linger: float = 2.0
    description: str = ""
    rooms: list[str] = field(default_factory=list)

    def matrix_servers(self) -> list[int]:
        return sorted(i for i, s in self.topology.servers.items() if s.kind == "synapse")


def summary(action: str, args: dict[str, Any]) -> str:
    """A short human description of a step's arguments."""
    if action == "sleep":
        return f"{args['seconds']:g}s"
    parts = []
    for k, v in args.items():
        if k in ("timeout", "background", "wait", "on_timeout"):
            continue
        if isinstance(v, list) and k == "link":
            v = f"{v[0]}-{v[1]}"
        elif isinstance(v, list):
            v = ",".join(map(str, v))
        parts.append(f"{k}={v}")
    return " ".join(parts)


def load(path: str | Path) -> Scenario:
    """Read, validate and type a scenario file; raise ScenarioError listing every problem."""
    path = Path(path)
    src = load_source(path)
    d = src.data
    kind = d.get("kind", "synapse")
    seed = d.get("seed", 0)
    topo = _topology(src, path, kind, seed)
    steps = [_step(src, i, raw) for i, raw in enumerate(d["steps"])]
    scn = Scenario(
        name=d.get("name") or path.stem,
        path=path,
        kind=kind,
        seed=seed,
        topology=topo,
        steps=steps,
        boot_timeout=float(d.get("boot_timeout", 300.0)),
        linger=float(d.get("linger", 2.0)),
        description=d.get("description", ""),
    )
    check(scn, src)
    return scn


def _topology(src: Source, path: Path, kind: str, seed: int) -> Topology:
    spec = src.data["topology"]
    where: Path_ = ("topology",)
    try:
        if "file" in spec:
            file = (path.parent / spec["file"]).resolve()
            try:
                topo = files.load(file)
            except TopoError as e:
                raise ScenarioError([src.error((*where, "file"), str(e))]) from None
        elif "generate" in spec:
            topo = _generate(spec["generate"], kind, seed)
        else:
            servers = [
                {"id": s.get("id", i), "x": s["x"], "y": s["y"], "kind": s.get("kind", kind)}
                for i, s in enumerate(spec["servers"])
            ]
            topo = Topology.from_dict({"version": 1, "servers": servers})
        if "defaults" in spec:
            topo.set_defaults(**spec["defaults"])
        for i, pin in enumerate(spec.get("pins", [])):
            fields = {k: v for k, v in pin.items() if k not in ("a", "b")}
            try:
                topo.pin(pin["a"], pin["b"], **fields)
            except TopoError as e:
                raise ScenarioError([src.error((*where, "pins", i), str(e))]) from None
    except TopoError as e:
        sub = "defaults" if "defaults" in spec and "unknown setting" in str(e) else ""
        raise ScenarioError([src.error((*where, sub) if sub else where, str(e))]) from None
    if not topo.servers:
        raise ScenarioError([src.error(where, "the topology has no servers")])
    return topo


def _generate(g: dict[str, Any], kind: str, seed: int) -> Topology:
    t = g["type"]
    opt = {k: g[k] for k in ("spacing", "radius", "width", "height") if k in g}

    def need(*names: str) -> None:
        missing = [n for n in names if n not in g]
        if missing:
            raise TopoError(f"generate: type {t} needs {', '.join(missing)}")

    if t == "grid":
        need("rows", "cols")
        return generators.grid(g["rows"], g["cols"], kind=kind, **opt)
    need("n")
    if t == "line":
        return generators.line(g["n"], kind=kind, **opt)
    if t == "ring":
        return generators.ring(g["n"], kind=kind, **opt)
    return generators.random_geometric(
        g["n"], seed=g.get("seed", seed), kind=kind, defaults=Defaults(), **opt
    )


def _step(src: Source, i: int, raw: dict[str, Any]) -> Step:
    action = next(k for k in raw if k in ACTIONS)
    value = raw[action]
    args = {"seconds": float(value)} if action == "sleep" else dict(value)
    return Step(i, action, args, raw.get("at"), raw.get("label"), src.line(("steps", i)))


# -- meaning ------------------------------------------------------------------------------------
def expand(sel: Any, ids: list[int]) -> list[int]:
    """A `servers` value (id, list or "all") as a list of ids; "all" means `ids`."""
    if sel == "all":
        return list(ids)
    if isinstance(sel, int):
        return [sel]
    return list(sel)


def check(scn: Scenario, src: Source) -> None:
    """Check the steps against the topology; raise ScenarioError listing every problem."""
    problems: list[str] = []
    topo = scn.topology
    ids = sorted(topo.servers)
    links = set(topo.links())
    rooms: set[str] = set()
    last_at = 0.0
    next_id = max(ids) + 1

    def bad(i: int, sub: tuple[str | int, ...], msg: str) -> None:
        problems.append(src.error(("steps", i, *sub), msg))

    for s in scn.steps:
        a, args, i = s.action, s.args, s.index
        if s.at is not None:
            if s.at < last_at:
                bad(i, ("at",), f"must not be earlier than a previous step's at ({last_at:g})")
            last_at = s.at
        if a == "add_server":
            ids.append(next_id)
            next_id += 1
            continue
        if a != "traffic":
            for key in ("server", "servers", "from", "join"):
                for sid in expand(args.get(key, []), ids):
                    if sid not in ids:
                        bad(i, (a, key), f"no server {sid} (servers: {_ranges(ids)})")
        if a in ("create_room", "join", "send"):
            room = args["room"]
            if a == "create_room":
                if room in rooms:
                    bad(i, (a, "room"), f"room {room!r} is already created")
                rooms.add(room)
            elif room not in rooms:
                bad(i, (a, "room"), f"room {room!r} is not created by an earlier create_room step")
            matrix = scn.matrix_servers()
            if not matrix:
                bad(i, (a,), "the topology has no synapse servers: Matrix steps need them")
            for key in ("server", "servers", "from", "join"):
                for sid in expand(args.get(key, []), matrix):
                    srv = topo.servers.get(sid)
                    if srv is not None and srv.kind != "synapse":
                        bad(i, (a, key), f"server {sid} is a {srv.kind}: Matrix steps need synapse servers")
        if a == "wait" and "room" in args and args["room"] not in rooms:
            bad(i, (a, "room"), f"room {args['room']!r} is not created by an earlier create_room step")
        if a == "wait" and args["for"] in ("joined", "delivered") and not rooms:
            bad(i, (a, "for"), f"nothing to wait for: no room is created before this step ({args['for']})")
        if a in ("pin", "unpin", "cut", "heal"):
            x, y = args["link"]
            missing = [sid for sid in (x, y) if sid not in ids]
            if x == y:
                bad(i, (a, "link"), "a link joins two different servers")
            elif missing:
                bad(i, (a, "link"), f"no server {missing[0]} (servers: {_ranges(ids)})")
            elif (
                a in ("pin", "cut")
                and x in topo.servers
                and y in topo.servers
                and (min(x, y), max(x, y)) not in links
            ):
                bad(i, (a, "link"), f"servers {x} and {y} are not linked in the initial topology")
        if a == "traffic":
            for key in ("from", "to"):
                if args[key] not in ids:
                    bad(i, (a, key), f"no server {args[key]} (servers: {_ranges(ids)})")
            if args["from"] == args["to"]:
                bad(i, (a, "to"), "traffic needs two different servers")
    scn.rooms = sorted(rooms)
    if problems:
        raise ScenarioError(problems)


def _ranges(ids: list[int]) -> str:
    if not ids:
        return "none"
    ids = sorted(ids)
    out, start, prev = [], ids[0], ids[0]
    for x in [*ids[1:], None]:
        if x is not None and x == prev + 1:
            prev = x
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if x is not None:
            start = prev = x
    return ", ".join(out)
