"""Run-wide services the nodes share: telemetry sink, PostgreSQL, client proxies, certificates."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .rundir import RunDir

if TYPE_CHECKING:
    from .core import Options

log = logging.getLogger(__name__)


class Services:
    def __init__(self, rundir: RunDir, options: Options) -> None:
        self.rundir = rundir
        self.options = options
        self._sink: Any = None
        self._fleet: Any = None
        self._fleet_lock = threading.Lock()

    async def start(self, on_telemetry: Callable[[dict[str, Any]], None]) -> None:
        from ..homeserver.telemetry_sink import TelemetrySink

        self._sink = TelemetrySink(self.rundir.telemetry_socket, on_telemetry)
        await self._sink.start()

    async def stop(self) -> None:
        if self._sink is not None:
            self._sink.close()
        await asyncio.to_thread(self._stop_fleet)

    def for_nodes(self) -> dict[str, Any]:
        """What every node context gets: shared settings and lazy accessors."""
        return {
            "client_port_base": self.options.client_port_base,
            "fleet": self.fleet,
            "fleet_if_started": lambda: self._fleet,
            "record_pid": self.rundir.record_pid,
        }

    def fleet(self) -> Any:
        """The run's homeserver fleet (CA, secrets, PostgreSQL), started on first use. Blocking."""
        with self._fleet_lock:
            if self._fleet is None:
                from ..homeserver.fleet import HomeserverFleet

                fleet = HomeserverFleet(
                    self.rundir.path,
                    database=self.options.db,
                    telemetry_socket=str(self.rundir.telemetry_socket),
                )
                fleet.start()
                if fleet.postgres is not None:
                    self.rundir.record_pid("postgres", _postmaster_pid(fleet.postgres.data_dir))
                self._fleet = fleet
            return self._fleet

    def _stop_fleet(self) -> None:
        with self._fleet_lock:
            if self._fleet is not None:
                try:
                    self._fleet.stop()
                except Exception as exc:
                    log.warning("homeserver fleet stop: %s", exc)
                self._fleet = None


def _postmaster_pid(data_dir: Any) -> int:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
