"""`meshsim up`: start the controller and the web server in the foreground; Ctrl-C stops both cleanly."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import secrets
import signal
import sys
from typing import Any

from ..clean import clean_run, controller_alive
from .core import Controller, Options
from .rundir import RunDir, state_root

log = logging.getLogger("meshsim")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    root = state_root()
    for rd in RunDir.all(root):
        pid = controller_alive(rd)
        if pid:
            print(
                f"meshsim: a controller is already running (pid {pid}, run {rd.run}); `meshsim down` first",
                file=sys.stderr,
            )
            return 1
    leftovers = [rd for rd in RunDir.all(root) if rd.path.exists()]
    for rd in leftovers:
        done = clean_run(rd)
        if done:
            print(f"cleaned {len(done)} leftover item(s) of run {rd.run}")
    token = args.token
    if not is_loopback(args.host) and not token:
        token = secrets.token_urlsafe(24)
    topology = None
    if args.topology:
        from ..topo import TopoError, files

        try:
            topology = files.load(args.topology)
        except (TopoError, OSError) as exc:
            print(f"meshsim: {exc}", file=sys.stderr)
            return 1
    options = Options(
        default_kind=args.kind,
        db=args.db,
        client_port_base=args.client_port_base,
        host=args.host,
        port=args.port,
    )
    rd = RunDir.create(root)
    try:
        return asyncio.run(_main(rd, options, token, topology))
    finally:
        clean_run(rd)


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
