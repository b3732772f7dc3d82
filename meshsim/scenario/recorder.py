"""Record the controller's websocket stream to JSONL and index what the report needs.

Every message is written as received plus `rt` (local wall clock, ms). Telemetry the websocket
skipped (a slow subscriber may lose droppable messages) is filled in later from GET /api/events;
duplicates are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import websockets

log = logging.getLogger(__name__)

TELEMETRY = ("event_sent", "event_received", "event_delivered")


def _key(msg: dict[str, Any]) -> tuple[Any, ...]:
    return (msg["type"], msg.get("event_id"), msg.get("server"), msg.get("destination"))


class Record:
    """Everything observed during a run, in arrival order, with indexes for conditions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115  (closed in close())
        self.messages: list[dict[str, Any]] = []
        self._seen: set[tuple[Any, ...]] = set()
        #: event_id -> server -> first event_received ts (ms)
        self.received: dict[str, dict[int, int]] = defaultdict(dict)
        #: event_id -> first event_sent message
        self.sent: dict[str, dict[str, Any]] = {}
        self.reconnects = 0
        self.changed = asyncio.Event()

    def add(self, msg: dict[str, Any], source: str = "ws") -> None:
        typ = msg.get("type")
        if typ in TELEMETRY:
            key = _key(msg)
            if key in self._seen:
                return
            self._seen.add(key)
            eid, server, ts = msg.get("event_id"), msg.get("server"), msg.get("ts")
            if typ == "event_received" and isinstance(server, int):
                self.received[eid].setdefault(server, ts)
            elif typ == "event_sent":
                self.sent.setdefault(eid, msg)
        msg = {**msg, "rt": msg.get("rt") or msg.get("recv_ts") or int(time.time() * 1000)}
        if source != "ws":
            msg["source"] = source
        self.messages.append(msg)
        self._file.write(json.dumps(msg, separators=(",", ":")) + "\n")
        self.changed.set()

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") in types]

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class Recorder:
    """Keeps a websocket open to `/api/ws` and feeds a Record; reconnects if dropped."""

    def __init__(self, url: str, record: Record) -> None:
        self.url = url
        self.record = record
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self, timeout: float = 10.0) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.wait_for(self.connected.wait(), timeout)

    async def _run(self) -> None:
        while True:
            try:
                async with websockets.connect(self.url, max_size=None, ping_interval=None) as ws:
                    self.connected.set()
                    async for raw in ws:
                        self.record.add(json.loads(raw))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("websocket: %s", exc)
            self.record.reconnects += 1
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
