"""The event bus: every subscriber gets the full state first, then every change in order.

State deltas must reach a subscriber or the subscriber is dropped (it reconnects and gets a fresh
snapshot), so no page ever shows a wrong state. Telemetry and stats are droppable: a slow subscriber
skips them rather than grow memory. Everything runs on the controller's event loop.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]

#: Message types a slow subscriber may skip.
DROPPABLE = frozenset({"event_sent", "event_received", "event_delivered", "link_stats"})


@dataclass
class Subscription:
    id: int
    queue: asyncio.Queue[Message | None]
    soft_limit: int
    seq: int = 0
    dropped: int = 0
    overflowed: bool = False

    def offer(self, msg: Message) -> None:
        """Queue a message; skip droppable ones past the soft limit; overflow ends the subscription."""
        if self.overflowed:
            return
        if msg.get("type") in DROPPABLE and self.queue.qsize() >= self.soft_limit:
            self.dropped += 1
            return
        self.seq += 1
        try:
            self.queue.put_nowait({**msg, "seq": self.seq})
        except asyncio.QueueFull:
            self.overflowed = True
            _clear(self.queue)
            self.queue.put_nowait(None)

    async def get(self) -> Message | None:
        """The next message, or None once the subscription overflowed."""
        return await self.queue.get()


def _clear(queue: asyncio.Queue[Any]) -> None:
    while not queue.empty():
        queue.get_nowait()


@dataclass
class Bus:
    """Fan-out of messages to subscribers, each with a bounded queue."""

    snapshot: Callable[[], dict[str, Any]]
    max_queue: int = 2000
    soft_limit: int = 500
    _subs: dict[int, Subscription] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _listeners: list[Callable[[Message], None]] = field(default_factory=list)

    def subscribe(self) -> tuple[Message, Subscription]:
        """Atomically (one loop step) take the snapshot and register for the changes after it."""
        sub = Subscription(next(self._ids), asyncio.Queue(self.max_queue), self.soft_limit)
        self._subs[sub.id] = sub
        return {"type": "snapshot", "seq": 0, "topology": self.snapshot()}, sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.pop(sub.id, None)

    def listen(self, fn: Callable[[Message], None]) -> None:
        """Call fn(msg) for every message (in-process consumers such as recorders)."""
        self._listeners.append(fn)

    def publish(self, msg: Message) -> None:
        for fn in self._listeners:
            fn(msg)
        for sub in list(self._subs.values()):
            sub.offer(msg)

    @property
    def subscribers(self) -> int:
        return len(self._subs)
