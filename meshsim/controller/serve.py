"""`meshsim up`: start the controller and the web server in the foreground; Ctrl-C stops both cleanly."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
from typing import Any

from ..clean import clean_run, controller_alive
from .core import Controller, Options
from .rundir import RunDir, state_root

log = logging.getLogger("meshsim")


def needs_token(host: str) -> bool:
    """Only 127.0.0.1 / ::1 / localhost go without a token; any other address needs one."""
    return host not in ("127.0.0.1", "::1", "localhost")


def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    ksm = contextlib.nullcontext()
    if getattr(args, "ksm", False):
        from ..homeserver import ksm as ksm_mod

        if not ksm_mod.available():
            print("meshsim: --ksm: this kernel has no KSM (/sys/kernel/mm/ksm)", file=sys.stderr)
            return 1
        os.environ["MESHSIM_KSM"] = "1"  # every homeserver starts under ksm_exec --same-layout
        ksm = ksm_mod.KsmScanner()  # ksmd runs while the controller does; settings restored on exit
    try:
        rd, options, token, topology = prepare(args)
    except StartError as exc:
        print(f"meshsim: {exc}", file=sys.stderr)
        return 1
    try:
        with ksm:
            return asyncio.run(_main(rd, options, token, topology))
    finally:
        # Runtime goes (namespaces, processes, sockets); the state and homeserver data stay for --resume.
        clean_run(rd, keep_dir=True)


class StartError(Exception):
    pass


def prepare(args: argparse.Namespace) -> tuple[RunDir, Options, str | None, Any]:
    """Check everything before anything is created; pick a fresh run, or the last one to resume."""
    from ..topo import TopoError, Topology, files

    if os.geteuid() != 0:
        raise StartError("meshsim up needs root (it creates network namespaces)")
    root = state_root()
    for rd in RunDir.all(root):
        pid = controller_alive(rd)
        if pid:
            raise StartError(
                f"a controller is already running (pid {pid}, run {rd.run}); `meshsim down` first"
            )
    _check_port(args.host, args.port)
    for rd in RunDir.all(root):
        done = clean_run(rd, keep_dir=True)
        if done:
            print(f"cleaned {len(done)} leftover item(s) of run {rd.run}")
    resumable = sorted(
        (rd for rd in RunDir.all(root) if rd.state_file.exists()), key=lambda r: r.state_file.stat().st_mtime
    )
    topology = None
    if args.topology and args.resume:
        raise StartError("give --topology or --resume, not both")
    if args.topology:
        try:
            topology = files.load(args.topology)
        except (TopoError, OSError) as exc:
            raise StartError(str(exc)) from exc
    db, kind, base = args.db, args.kind, args.client_port_base
    if args.resume:
        if not resumable:
            raise StartError(f"nothing to resume under {root}")
        rd = resumable[-1]
        try:
            topology = Topology.from_dict(json.loads(rd.state_file.read_text()))
        except (TopoError, ValueError, OSError) as exc:
            raise StartError(f"{rd.state_file}: {exc}") from exc
        saved = rd.options()
        db, kind, base = saved.get("db", db), saved.get("kind", kind), saved.get("client_port_base", base)
        print(f"resuming run {rd.run}: {len(topology.servers)} server(s), database {db}")
    else:
        if resumable:
            last = resumable[-1]
            n = len(json.loads(last.state_file.read_text()).get("servers", []))
            print(
                f"note: run {last.run} left a saved topology ({n} server(s)); `meshsim up --resume` brings it back"
            )
        rd = RunDir.create(root)
    token = args.token
    if needs_token(args.host) and not token:
        token = secrets.token_urlsafe(24)
    options = Options(default_kind=kind, db=db, client_port_base=base, host=args.host, port=args.port)
    rd.record_options(db=db, kind=kind, client_port_base=base)
    return rd, options, token, topology


def _check_port(host: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise StartError(f"port must be 1..65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise StartError(f"cannot bind {host}: {exc}") from exc
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            raise StartError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


async def _main(rd: RunDir, options: Options, token: str | None, topology: Any) -> int:
    import uvicorn

    from ..api.app import create_app

    ctl = Controller(rd, options)
    rd.record_controller(
        host=options.host, port=options.port, token=token, connect_host=_connect_host(options.host)
    )
    await ctl.start()
    try:
        if topology is not None:
            await ctl.change(lambda t: t.assign(topology))
        app = create_app(ctl, token=token)
        config = uvicorn.Config(
            app, host=options.host, port=options.port, log_level="warning", lifespan="off"
        )
        server = uvicorn.Server(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        print(f"meshsim run {rd.run}: web UI and API on http://{options.host}:{options.port}/", flush=True)
        if token:
            print(f"API token (required on every request): {token}", flush=True)
        await server.serve()
        return 0 if server.started else 1
    finally:
        print("stopping...", flush=True)
        await ctl.stop()


def _connect_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return host
