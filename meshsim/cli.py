"""The `meshsim` command: parses arguments, calls the controller or its API, prints the result."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .controller.rundir import RunDir, state_root


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"meshsim: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


class CLIError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="meshsim", description="Emulate a mesh of real Matrix homeservers.")
    sub = p.add_subparsers(metavar="COMMAND")

    up = sub.add_parser("up", help="run the controller and web UI in the foreground")
    up.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=3000)
    up.add_argument("--topology", type=Path, help="topology file (JSON/YAML) to load at start")
    up.add_argument("--db", choices=["postgres", "sqlite"], default="postgres", help="homeserver database")
    up.add_argument("--kind", choices=["synapse", "router"], default="synapse", help="default node kind")
    up.add_argument(
        "--client-port-base", type=int, default=18000, help="server N's client API port is BASE+N"
    )
    up.add_argument(
        "--token", help="API token (required, and generated if absent, when --host is not loopback)"
    )
    up.add_argument("--resume", action="store_true", help="bring back the last run's topology and data")
    up.add_argument(
        "--ksm",
        action="store_true",
        help="share identical memory between homeservers (KSM, same memory layout): ~1.4x more servers per GB, "
        "ksmd costs CPU while it scans",
    )
    up.add_argument("-v", "--verbose", action="store_true")
    up.set_defaults(func=cmd_up)

    sub.add_parser("down", help="stop the running controller").set_defaults(func=cmd_down)
    cl = sub.add_parser("clean", help="remove everything meshsim made (namespaces, links, processes, state)")
    cl.set_defaults(func=cmd_clean)
    sub.add_parser("status", help="show servers and links").set_defaults(func=cmd_status)
    sub.add_parser("check", help="compare every node's kernel routes with the model").set_defaults(
        func=cmd_check
    )

    add = sub.add_parser("add", help="add a server at X Y")
    add.add_argument("x", type=float)
    add.add_argument("y", type=float)
    add.add_argument("--kind", choices=["synapse", "router"])
    add.set_defaults(func=cmd_add)

    mv = sub.add_parser("move", help="move server ID to X Y")
    mv.add_argument("id", type=int)
    mv.add_argument("x", type=float)
    mv.add_argument("y", type=float)
    mv.set_defaults(func=cmd_move)

    rm = sub.add_parser("rm", help="remove server ID")
    rm.add_argument("id", type=int)
    rm.set_defaults(func=cmd_rm)

    for verb in ("stop", "start", "kill", "restart"):
        sp = sub.add_parser(verb, help=f"{verb} server ID")
        sp.add_argument("id", type=int)
        sp.set_defaults(func=cmd_power, verb=verb)

    ln = sub.add_parser("link", help="show a link, or pin its parameters")
    ln.add_argument("a", type=int)
    ln.add_argument("b", type=int)
    ln.add_argument("--bandwidth", type=int, help="bit/s")
    ln.add_argument("--latency", type=float, help="ms")
    ln.add_argument("--jitter", type=float, help="ms")
    ln.add_argument("--loss", type=float, help="percent")
    ln.add_argument(
        "--unpin", action="append", choices=["bandwidth", "latency", "jitter", "loss"], default=[]
    )
    ln.add_argument("--cut", action="store_true")
    ln.add_argument("--heal", action="store_true")
    ln.set_defaults(func=cmd_link)

    df = sub.add_parser("defaults", help="show or set defaults, e.g. `meshsim defaults max_latency=200`")
    df.add_argument("settings", nargs="*", metavar="NAME=VALUE")
    df.set_defaults(func=cmd_defaults)

    sv = sub.add_parser("save", help="save the running topology to FILE")
    sv.add_argument("file", type=Path)
    sv.set_defaults(func=cmd_save)
    ld = sub.add_parser("load", help="replace the running topology with FILE")
    ld.add_argument("file", type=Path)
    ld.set_defaults(func=cmd_load)

    ex = sub.add_parser("exec", help="run CMD inside node N: meshsim exec N -- CMD...")
    ex.add_argument("id", type=int)
    ex.add_argument("cmd", nargs=argparse.REMAINDER)
    ex.set_defaults(func=cmd_exec)
    sh = sub.add_parser("shell", help="open a shell inside node N")
    sh.add_argument("id", type=int)
    sh.set_defaults(func=cmd_shell)

    lg = sub.add_parser("logs", help="print server N's log")
    lg.add_argument("id", type=int)
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("-n", "--lines", type=int, default=200)
    lg.set_defaults(func=cmd_logs)

    rn = sub.add_parser("run", help="run a scenario file unattended and write a report")
    rn.add_argument("scenario", type=Path)
    rn.add_argument("--out", type=Path, default=Path("meshsim-report"))
    rn.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    rn.set_defaults(func=cmd_run)
    return p


# -- up / down / clean -----------------------------------------------------------------
def cmd_up(args: argparse.Namespace) -> int:
    from .controller.serve import serve

    return serve(args)


def cmd_down(args: argparse.Namespace) -> int:
    from .clean import controller_alive, stop_pid

    stopped = 0
    for rd in RunDir.all():
        pid = controller_alive(rd)
        if pid and stop_pid(pid, "meshsim", grace=60.0):
            print(f"stopped controller (run {rd.run}, pid {pid})")
            stopped += 1
    if not stopped:
        print("no controller is running")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from .clean import clean_all

    done = clean_all()
    for item in done:
        print(f"removed {item}")
    print("clean" if not done else f"removed {len(done)} item(s)")
    return 0


# -- REST clients ---------------------------------------------------------------------
def _controller() -> dict[str, Any]:
    from .clean import controller_alive

    for rd in RunDir.all():
        if controller_alive(rd):
            info = rd.controller_info() or {}
            return info
    raise CLIError(f"no controller is running (state root {state_root()}); start one with `meshsim up`")


def _api(method: str, path: str, body: Any = None) -> Any:
    import httpx

    info = _controller()
    headers = {"Authorization": f"Bearer {info['token']}"} if info.get("token") else {}
    url = f"http://{info.get('connect_host', '127.0.0.1')}:{info['port']}{path}"
    try:
        r = httpx.request(method, url, json=body, headers=headers, timeout=120)
    except httpx.HTTPError as exc:
        raise CLIError(f"cannot reach the controller at {url}: {exc}") from exc
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail")
        except ValueError:
            detail = r.text
        raise CLIError(f"{r.status_code}: {detail}")
    return r.json() if r.content else None


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True))


def cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    topo = _api("GET", "/api/topology")
    console = Console()
    t = Table(title=f"servers (run {topo.get('run')})")
    for col in ("id", "name", "kind", "state", "address", "x", "y", "client"):
        t.add_column(col)
    for s in topo["servers"]:
        t.add_row(
            str(s["id"]),
            s["name"],
            s["kind"],
            s["state"] + (f" ({s['reason']})" if s.get("reason") else ""),
            s["address"],
            f"{s['x']:.0f}",
            f"{s['y']:.0f}",
            s.get("client_url") or "",
        )
    console.print(t)
    lt = Table(title="links")
    for col in ("a", "b", "latency ms", "bandwidth bit/s", "jitter ms", "loss %", "pinned", "cut"):
        lt.add_column(col)
    for lk in topo["links"]:
        lt.add_row(
            str(lk["a"]),
            str(lk["b"]),
            f"{lk['latency']:.1f}",
            str(lk["bandwidth"]),
            f"{lk['jitter']:g}",
            f"{lk['loss']:g}",
            ",".join(lk["pinned"]),
            "yes" if lk["cut"] else "",
        )
    console.print(lt)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    out = _api("GET", "/api/check")
    if out["ok"]:
        print(f"ok: {out['nodes']} node(s), {out['routes']} kernel route(s) match the model")
        return 0
    _print(out)
    return 1


def cmd_add(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"x": args.x, "y": args.y}
    if args.kind:
        body["kind"] = args.kind
    _print(_api("POST", "/api/servers", body))
    return 0


def cmd_move(args: argparse.Namespace) -> int:
    _print(_api("PUT", f"/api/servers/{args.id}", {"x": args.x, "y": args.y}))
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    _api("DELETE", f"/api/servers/{args.id}")
    return 0


def cmd_power(args: argparse.Namespace) -> int:
    _print(_api("POST", f"/api/servers/{args.id}/{args.verb}"))
    return 0


def cmd_link(args: argparse.Namespace) -> int:
    path = f"/api/links/{args.a}/{args.b}"
    pins = {
        k: getattr(args, k)
        for k in ("bandwidth", "latency", "jitter", "loss")
        if getattr(args, k) is not None
    }
    out = None
    if pins:
        out = _api("PUT", path, pins)
    for field in args.unpin:
        out = _api("DELETE", f"{path}/{field}")
    if args.cut:
        out = _api("POST", f"{path}/cut")
    if args.heal:
        out = _api("POST", f"{path}/heal")
    _print(out if out is not None else _api("GET", path))
    return 0


def cmd_defaults(args: argparse.Namespace) -> int:
    if not args.settings:
        _print(_api("GET", "/api/defaults"))
        return 0
    body: dict[str, Any] = {}
    for item in args.settings:
        name, sep, raw = item.partition("=")
        if not sep:
            raise CLIError(f"expected NAME=VALUE, got {item!r}")
        try:
            body[name] = json.loads(raw)
        except ValueError:
            body[name] = raw
    _print(_api("PUT", "/api/defaults", body))
    return 0


def cmd_save(args: argparse.Namespace) -> int:
    from .topo import Topology, files

    data = _api("GET", "/api/topology/file")
    files.save(Topology.from_dict(data), args.file)
    print(f"saved {len(data['servers'])} server(s) to {args.file}")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from .topo import TopoError, files

    try:
        topo = files.load(args.file)
    except TopoError as exc:
        raise CLIError(str(exc)) from exc
    out = _api("PUT", "/api/topology/file", topo.to_dict())
    print(f"loaded {len(out['servers'])} server(s) from {args.file}")
    return 0


# -- inside nodes -----------------------------------------------------------------------
def _netns_of(node: int) -> str:
    from .clean import run_namespaces
    from .kernel import names

    run = _controller()["run"]
    ns = names.netns(run, node)
    if ns not in run_namespaces(run):
        raise CLIError(f"node {node} does not exist in run {run}")
    return ns


def cmd_exec(args: argparse.Namespace) -> int:
    import subprocess

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise CLIError("give a command: meshsim exec N -- CMD...")
    return subprocess.run(["ip", "netns", "exec", _netns_of(args.id), *cmd], check=False).returncode


def cmd_shell(args: argparse.Namespace) -> int:
    ns = _netns_of(args.id)
    shell = os.environ.get("SHELL", "/bin/bash")
    os.execvp("ip", ["ip", "netns", "exec", ns, shell])
    return 0  # not reached


def cmd_logs(args: argparse.Namespace) -> int:
    import time

    seen: list[str] = []
    while True:
        lines = _api("GET", f"/api/servers/{args.id}/logs?lines={args.lines}")["lines"]
        start = _overlap(seen, lines)
        for line in lines[start:]:
            print(line)
        sys.stdout.flush()
        seen = lines
        if not args.follow:
            return 0
        time.sleep(1.0)


def _overlap(old: list[str], new: list[str]) -> int:
    """Index in `new` after the part already printed from `old`."""
    if not old:
        return 0
    for k in range(min(len(old), len(new)), 0, -1):
        if old[-k:] == new[:k]:
            return k
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    try:
        from .scenario.runner import run_cli
    except ImportError as exc:
        raise CLIError(f"scenarios are not available: {exc}") from exc
    return run_cli(args)


if __name__ == "__main__":
    sys.exit(main())
