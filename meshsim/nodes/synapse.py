"""The `synapse` node kind: a real Synapse homeserver in the node's namespace, plus its client proxy.

The namespace, addresses and routes are the controller's; this kind only runs what lives in it. The
run-wide parts (CA, secrets, PostgreSQL) come from a `HomeserverFleet` in the node context's services.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

from ..homeserver.client_proxy import ClientProxy
from ..homeserver.netns_files import remove_netns_etc, write_hosts
from ..homeserver.process import ServerFailed, SynapseServer
from .base import NodeContext

#: Every node's hosts file names synapse0..synapse{HOSTS_MAX_ID}; ids above it are refused.
HOSTS_MAX_ID = 4095
TEST_USER = ("matthew", "secret")
BOOT_TIMEOUT = 180.0


class SynapseNode:
    kind = "synapse"

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.state = "starting"
        self.reason: str | None = None
        self.server: SynapseServer | None = None
        port = ctx.services["client_port_base"] + ctx.node
        self._link = ctx.services.get("client_link")
        self.proxy = ClientProxy(port, ctx.data_dir / "client.sock", link=self._link)

    async def _server(self) -> SynapseServer:
        if self.server is None:
            if self.ctx.node > HOSTS_MAX_ID:
                raise ServerFailed(
                    f"synapse servers need ids up to {HOSTS_MAX_ID}; this one is {self.ctx.node}"
                )
            fleet = await asyncio.to_thread(self.ctx.services["fleet"])
            await asyncio.to_thread(write_hosts, self.ctx.netns, HOSTS_MAX_ID)
            self.server = fleet.server(self.ctx.node, self.ctx.netns)
            self.proxy = ClientProxy(self.proxy.port, self.server.paths.client_socket, link=self._link)
        return self.server

    async def start(self) -> None:
        """Boot Synapse and make sure the test user exists; raises with the reason on failure."""
        self.state, self.reason = "starting", None
        try:
            server = await self._server()
            await self.proxy.start()
            await asyncio.to_thread(server.prepare)
            server.start()
            self.ctx.services["record_pid"](f"synapse{self.ctx.node}", server.pid)
            await server.wait_ready(BOOT_TIMEOUT)
            await server.register_user(*TEST_USER)
        except asyncio.CancelledError:
            await self.kill()
            raise
        except Exception as exc:
            if self.server is not None:
                self.server.kill()
            self.state = "failed"
            self.reason = str(exc) or type(exc).__name__
            raise
        self.state = "up"

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        await self.proxy.stop()
        self.state = "stopped"

    async def kill(self) -> None:
        if self.server is not None:
            self.server.kill()
        await self.proxy.stop()
        self.state = "stopped"

    async def destroy(self) -> None:
        await self.kill()
        remove_netns_etc(self.ctx.netns)
        fleet = self.ctx.services.get("fleet_if_started", lambda: None)()
        if fleet is not None:
            await asyncio.to_thread(fleet.drop_server_data, self.ctx.node)
        if self.server is not None:
            shutil.rmtree(self.server.paths.data_dir, ignore_errors=True)

    def info(self) -> dict[str, Any]:
        s = self.server
        if s is None:
            return {}
        if self.state == "up" and s.poll() == "failed":
            self.state, self.reason = "failed", s.reason
        return {
            "pid": s.pid if s.running() else None,
            "rss_bytes": s.rss_bytes() if s.running() else None,
            "server_name": s.spec.server_name,
            "boot_seconds": s.boot_seconds,
            "log_file": str(s.paths.homeserver_log),
        }

    def logs(self, lines: int = 200) -> list[str]:
        if self.server is None:
            return []
        out = self.server.log_tail(lines)
        return out or self.server.log_tail(lines, console=True)
