"""The controller's end of the telemetry socket: an asyncio UNIX datagram receiver.

Every datagram is parsed and checked against the three message shapes of
`meshsim.homeserver.telemetry`; anything else (too big, not JSON, wrong fields) is counted
and dropped. Only the known fields are passed on, so `on_message` sees clean dicts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_DATAGRAM = 64 * 1024
MAX_DESTINATIONS = 65536
RCVBUF = 4 * 1024 * 1024

_COMMON: dict[str, type | tuple[type, ...]] = {
    "event_id": str,
    "room_id": str,
    "server": int,
    "origin": (int, type(None)),
    "ts": int,
}
SHAPES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "event_sent": {**_COMMON, "sender": str, "event_type": str, "destinations": list},
    "event_received": {**_COMMON, "sender": str, "event_type": str},
    "event_delivered": {**_COMMON, "destination": (int, type(None)), "method": str},
}
_MAX_STR = 1024


def validate(raw: bytes) -> dict[str, Any] | None:
    """The cleaned message, or None if the datagram is not a well-formed telemetry message."""
    if len(raw) > MAX_DATAGRAM:
        return None
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(msg, dict) or msg.get("type") not in SHAPES:
        return None
    out: dict[str, Any] = {"type": msg["type"]}
    for key, typ in SHAPES[msg["type"]].items():
        value = msg.get(key)
        if isinstance(value, bool) or not isinstance(value, typ):
            return None
        if isinstance(value, str) and len(value) > _MAX_STR:
            return None
        out[key] = value
    dests = out.get("destinations")
    if dests is not None and (
        len(dests) > MAX_DESTINATIONS
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in dests)
    ):
        return None
    return out


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, sink: TelemetrySink) -> None:
        self._sink = sink

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._sink._handle(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("telemetry socket error: %s", exc)


class TelemetrySink:
    """Bind `path`, call `on_message(dict)` for each valid message. `start()` then `close()`."""

    def __init__(self, path: Path | str, on_message: Callable[[dict[str, Any]], None]) -> None:
        self.path = Path(path)
        self.on_message = on_message
        self.received = 0
        self.invalid = 0
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.bind(str(self.path))
            os.chmod(self.path, 0o666)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        self._transport = transport  # type: ignore[assignment]

    def _handle(self, data: bytes) -> None:
        msg = validate(data)
        if msg is None:
            self.invalid += 1
            return
        self.received += 1
        try:
            self.on_message(msg)
        except Exception:
            log.exception("telemetry on_message failed")

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self.path.unlink(missing_ok=True)
