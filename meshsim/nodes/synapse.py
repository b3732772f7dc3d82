"""The `synapse` node kind: a Synapse homeserver plus its host-side client proxy.

The namespace, addresses and routes are the controller's; this kind only runs what lives in it.
`start()` opens the client proxy first (it answers 502 until Synapse is up) and then boots under
the shared `BootLimiter`, so a server that fails to boot never holds up the others.
"""

from __future__ import annotations

from typing import Any

from meshsim.homeserver.client_proxy import ClientProxy
from meshsim.homeserver.netns_files import write_hosts
from meshsim.homeserver.process import BootLimiter, SynapseServer

CLIENT_PORT_BASE = 18000


class SynapseNode:
    kind = "synapse"

    def __init__(
        self,
        server: SynapseServer,
        limiter: BootLimiter,
        *,
        client_port: int | None = None,
        hosts_max_id: int | None = None,
        boot_timeout: float = 180.0,
    ) -> None:
        self.server = server
        self.limiter = limiter
        self.boot_timeout = boot_timeout
        self.hosts_max_id = hosts_max_id
        port = CLIENT_PORT_BASE + server.spec.server_id if client_port is None else client_port
        self.proxy = ClientProxy(port, server.paths.client_socket)

    @property
    def node_id(self) -> int:
        return self.server.spec.server_id

    @property
    def state(self) -> str:
        return self.server.poll()

    @property
    def reason(self) -> str | None:
        return self.server.reason

    async def prepare(self) -> None:
        """Hosts file for the namespace (if asked to), then the server's files and database."""
        if self.hosts_max_id is not None:
            write_hosts(self.server.spec.netns, self.hosts_max_id)

    async def start(self) -> bool:
        """Proxy up, then boot; False if the server failed (see `state` / `reason`)."""
        await self.proxy.start()
        return await self.limiter.boot(self.server, self.boot_timeout)

    async def stop(self) -> None:
        await self.server.stop()
        await self.proxy.stop()

    async def kill(self) -> None:
        self.server.kill()
        await self.proxy.stop()

    async def healthy(self) -> bool:
        return await self.server.healthy()

    def endpoints(self) -> dict[str, Any]:
        spec = self.server.spec
        return {
            "server_name": spec.server_name,
            "client_url": self.proxy.url,
            "federation": f"https://{spec.server_name}:443",
            "address": spec.address,
            "client_socket": str(self.server.paths.client_socket),
            "metrics_socket": str(self.server.paths.metrics_socket),
            "log": str(self.server.paths.homeserver_log),
            "shell": ["ip", "netns", "exec", spec.netns, "bash"],
        }
