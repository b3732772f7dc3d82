"""Run-wide services the nodes share: telemetry sink, PostgreSQL, client proxies, certificates."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .rundir import RunDir

if TYPE_CHECKING:
    from ..nodes.base import Node
    from .core import Options

log = logging.getLogger(__name__)


class Services:
    def __init__(self, rundir: RunDir, options: Options) -> None:
        self.rundir = rundir
        self.options = options
        self._sink: Any = None
        self._proxies: dict[int, Any] = {}
        self._shared: dict[str, Any] = {}
        self._pg: Any = None
        self._pg_lock = threading.Lock()

    async def start(self, on_telemetry: Callable[[dict[str, Any]], None]) -> None:
        from ..homeserver.telemetry_sink import TelemetrySink

        self._sink = TelemetrySink(self.rundir.telemetry_socket, on_telemetry)
        await self._sink.start()

    async def stop(self) -> None:
        if self._sink is not None:
            self._sink.close()
        await asyncio.to_thread(self._stop_pg)

    def for_nodes(self) -> dict[str, Any]:
        """What every node context gets: shared settings and lazy accessors."""
        return {
            "db": self.options.db,
            "telemetry_socket": self.rundir.telemetry_socket,
            "postgres": self.postgres,
            "shared": self._shared,
            "record_pid": self.rundir.record_pid,
        }

    def postgres(self) -> Any:
        """The run's PostgreSQL cluster, started on first use (thread-safe, blocking)."""
        with self._pg_lock:
            if self._pg is None:
                from ..homeserver.postgres import PostgresCluster

                pg = PostgresCluster(self.rundir.path / "pg" / "data", self.rundir.path / "pg" / "sock")
                pg.start()
                self._pg = pg
            return self._pg

    def _stop_pg(self) -> None:
        with self._pg_lock:
            if self._pg is not None:
                try:
                    self._pg.stop()
                except Exception as exc:
                    log.warning("postgres stop: %s", exc)
                self._pg = None

    async def start_proxy(self, sid: int, node: Node) -> None:
        sock = getattr(node, "client_socket", None)
        if sock is None or sid in self._proxies:
            return
        from ..homeserver.client_proxy import ClientProxy

        proxy = ClientProxy(self.options.client_port_base + sid, sock)
        await proxy.start()
        self._proxies[sid] = proxy

    async def stop_proxy(self, sid: int) -> None:
        proxy = self._proxies.pop(sid, None)
        if proxy is not None:
            await proxy.stop()

    async def stop_proxies(self) -> None:
        for sid in list(self._proxies):
            await self.stop_proxy(sid)
