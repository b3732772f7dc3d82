"""The REST API and the websocket, over a Controller."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Query, Request, WebSocket
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.websockets import WebSocketDisconnect

from ..controller import views
from ..controller.core import ApplyError, Controller
from ..topo import Conflict, NotFound, TopoError, Topology
from . import schema

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).resolve().parents[2] / "web"
NodeId = Annotated[int, PathParam(ge=0, lt=65000, description="server id")]
SEND_TIMEOUT = 5.0


def create_app(ctl: Controller, *, token: str | None = None, web_dir: Path = WEB_DIR) -> FastAPI:
    app = FastAPI(
        title="meshsim", version="0.1.0", description="Drive an emulated mesh of Matrix homeservers."
    )

    @app.exception_handler(TopoError)
    async def topo_error(_: Request, exc: TopoError) -> JSONResponse:
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 400
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(ApplyError)
    async def apply_error(_: Request, exc: ApplyError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=500)

    if token:

        @app.middleware("http")
        async def check_token(request: Request, call_next: Any) -> Response:
            if request.url.path.startswith("/api") and not _token_ok(
                request.headers, request.query_params, token
            ):
                return JSONResponse({"detail": "missing or wrong token"}, status_code=401)
            return await call_next(request)

    # -- topology ----------------------------------------------------------------
    @app.get("/api/topology")
    async def get_topology() -> dict[str, Any]:
        return ctl.snapshot()

    @app.get("/api/topology/file")
    async def get_topology_file() -> dict[str, Any]:
        return ctl.topo.to_dict()

    @app.put("/api/topology/file")
    async def put_topology_file(body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        new = Topology.from_dict(body)
        for s in new.servers.values():
            _check_kind(ctl, s.kind)
        await ctl.change(lambda t: t.assign(new))
        return ctl.snapshot()

    @app.post("/api/reset")
    async def reset() -> dict[str, Any]:
        await ctl.change(lambda t: t.reset())
        return ctl.snapshot()

    # -- servers -----------------------------------------------------------------
    @app.post("/api/servers", status_code=201)
    async def add_server(body: schema.NewServer) -> dict[str, Any]:
        return await ctl.add_server(body.x, body.y, body.kind)

    @app.get("/api/servers/{sid}")
    async def get_server(sid: NodeId) -> dict[str, Any]:
        ctl.topo.server(sid)
        return views.server_detail(ctl, sid)

    @app.put("/api/servers/{sid}")
    async def move_server(body: schema.Position, sid: NodeId) -> dict[str, Any]:
        return await ctl.move_server(sid, body.x, body.y)

    @app.delete("/api/servers/{sid}", status_code=204)
    async def delete_server(sid: NodeId) -> Response:
        await ctl.remove_server(sid)
        return Response(status_code=204)

    @app.post("/api/servers/{sid}/stop")
    async def stop_server(sid: NodeId) -> dict[str, Any]:
        return await ctl.set_power(sid, False, "stop")

    @app.post("/api/servers/{sid}/kill")
    async def kill_server(sid: NodeId) -> dict[str, Any]:
        return await ctl.set_power(sid, False, "kill")

    @app.post("/api/servers/{sid}/start")
    async def start_server(sid: NodeId) -> dict[str, Any]:
        return await ctl.set_power(sid, True)

    @app.post("/api/servers/{sid}/restart")
    async def restart_server(sid: NodeId) -> dict[str, Any]:
        return await ctl.restart_server(sid)

    @app.get("/api/servers/{sid}/logs")
    async def server_logs(sid: NodeId, lines: Annotated[int, Query(ge=1, le=10_000)] = 200) -> dict[str, Any]:
        ctl.topo.server(sid)
        node = ctl.nodes.get(sid)
        return {"lines": node.logs(lines) if node else []}

    # -- links -------------------------------------------------------------------
    @app.get("/api/links")
    async def list_links() -> list[dict[str, Any]]:
        return [views.link(ctl, lk) for _, lk in sorted(ctl.topo.links().items())]

    @app.get("/api/links/{a}/{b}")
    async def get_link(a: NodeId, b: NodeId) -> dict[str, Any]:
        return ctl.link_view(a, b)

    @app.put("/api/links/{a}/{b}")
    async def pin_link(body: schema.LinkPins, a: NodeId, b: NodeId) -> dict[str, Any]:
        fields = body.model_dump(exclude_none=True)
        if not fields:
            raise HTTPException(422, "give at least one of bandwidth, latency, jitter, loss")
        await ctl.change(lambda t: t.pin(a, b, **fields))
        return ctl.link_view(a, b)

    @app.delete("/api/links/{a}/{b}/{field}")
    async def unpin_link(field: schema.FIELD, a: NodeId, b: NodeId) -> dict[str, Any]:
        await ctl.change(lambda t: t.unpin(a, b, field))
        return ctl.link_view(a, b)

    @app.post("/api/links/{a}/{b}/cut")
    async def cut_link(a: NodeId, b: NodeId) -> dict[str, Any]:
        await ctl.change(lambda t: t.cut(a, b))
        return ctl.link_view(a, b)

    @app.post("/api/links/{a}/{b}/heal")
    async def heal_link(a: NodeId, b: NodeId) -> dict[str, Any]:
        await ctl.change(lambda t: t.heal(a, b))
        return ctl.link_view(a, b)

    @app.post("/api/partition")
    async def partition(body: schema.Partition) -> dict[str, Any]:
        await ctl.change(lambda t: t.partition(set(body.servers)))
        return ctl.snapshot()

    @app.post("/api/heal")
    async def heal_all() -> dict[str, Any]:
        await ctl.change(lambda t: t.heal_all())
        return ctl.snapshot()

    # -- defaults ------------------------------------------------------------------
    @app.get("/api/defaults")
    async def get_defaults() -> dict[str, Any]:
        return ctl.topo.defaults.to_dict()

    @app.put("/api/defaults")
    async def put_defaults(body: schema.DefaultsPatch) -> dict[str, Any]:
        changes = body.model_dump(exclude_none=True)
        await ctl.change(lambda t: t.set_defaults(**changes))
        return ctl.topo.defaults.to_dict()

    # -- telemetry, chat, status -----------------------------------------------------
    @app.get("/api/events")
    async def get_events(
        since: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000
    ) -> list[dict[str, Any]]:
        return [e for e in ctl.events if e.get("recv_ts", 0) >= since][-limit:]

    @app.post("/api/chat")
    async def chat(body: schema.Chat) -> dict[str, Any]:
        return await ctl.chat(body.server, body.body)

    @app.get("/api/check")
    async def check() -> dict[str, Any]:
        """Compare every node's kernel routes with the model (ground truth, not exit codes)."""
        return await ctl.check()

    @app.get("/api/status")
    async def status() -> dict[str, Any]:
        return {
            "run": ctl.rundir.run,
            "servers": len(ctl.topo.servers),
            "links": len(ctl.topo.links()),
            "subscribers": ctl.bus.subscribers,
            "booting": len(ctl._boots),
        }

    # -- websocket -------------------------------------------------------------------
    @app.websocket("/api/ws")
    async def ws(sock: WebSocket) -> None:
        if token and not _token_ok(sock.headers, sock.query_params, token):
            await sock.close(code=4401)
            return
        if not _origin_ok(sock):
            await sock.close(code=4403)
            return
        await sock.accept()
        snap, sub = ctl.bus.subscribe()
        reader = asyncio.get_running_loop().create_task(_drain(sock))
        try:
            await sock.send_json(snap)
            while True:
                getter = asyncio.ensure_future(sub.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:  # the page went away
                    getter.cancel()
                    return
                msg = getter.result()
                if msg is None:
                    await sock.close(code=4000, reason="too slow: reconnect for a fresh snapshot")
                    return
                await asyncio.wait_for(sock.send_json(msg), SEND_TIMEOUT)
        except (WebSocketDisconnect, TimeoutError, RuntimeError):
            pass
        finally:
            ctl.bus.unsubscribe(sub)
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    if (web_dir / "index.html").exists():
        vendor = web_dir / "node_modules" / "d3" / "dist"
        if vendor.is_dir():
            app.mount("/vendor", StaticFiles(directory=vendor), name="vendor")
        app.mount("/", StaticFiles(directory=web_dir, html=True), name="web")
    return app


def _check_kind(ctl: Controller, kind: str) -> None:
    from ..nodes import registry

    if kind not in registry.kinds():
        raise TopoError(f"unknown kind {kind!r}; supported: {', '.join(registry.kinds())}")


def _token_ok(headers: Any, query: Any, token: str) -> bool:
    given = headers.get("authorization", "").removeprefix("Bearer ").strip() or query.get("token", "")
    return hmac.compare_digest(given.encode(), token.encode())


def _origin_ok(sock: WebSocket) -> bool:
    """Browsers send Origin: it must be this server. Non-browser clients send none."""
    origin = sock.headers.get("origin")
    if not origin:
        return True
    host = sock.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host


async def _drain(sock: WebSocket) -> None:
    """Read (and ignore) what the page sends, so a closed socket is noticed."""
    with contextlib.suppress(Exception):
        while True:
            await sock.receive_text()
