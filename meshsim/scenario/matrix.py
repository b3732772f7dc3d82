"""Matrix traffic through the servers' client APIs, with matrix-nio.

One `MatrixUser` per server: the test account (matthew / secret) logged in on that server's client
URL. Rooms are public and get the alias `#NAME:SERVER`, so other servers join over federation by
alias. Every message carries a transaction id, and the returned event_id identifies it in telemetry.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinedMembersResponse,
    JoinResponse,
    LoginResponse,
    RoomCreateResponse,
    RoomPreset,
    RoomSendResponse,
    RoomVisibility,
)

USER, PASSWORD = "matthew", "secret"


class MatrixError(RuntimeError):
    pass


@dataclass
class Sent:
    event_id: str | None
    txn_id: str
    t_request: float  # wall clock, seconds
    t_response: float
    error: str | None = None


class MatrixUser:
    """The test user on one server."""

    def __init__(self, server: int, server_name: str, client_url: str, timeout: float = 60.0) -> None:
        self.server = server
        self.server_name = server_name
        self.user_id = f"@{USER}:{server_name}"
        config = AsyncClientConfig(
            encryption_enabled=False, store_sync_tokens=False, request_timeout=timeout, max_timeouts=2
        )
        self.client = AsyncClient(client_url, self.user_id, store_path="", config=config)

    async def login(self, timeout: float = 60.0) -> None:
        """Log in, retrying while the server still answers with errors (it may just have booted)."""
        deadline = time.monotonic() + timeout
        while True:
            resp = await self.client.login(PASSWORD, device_name="meshsim-scenario")
            if isinstance(resp, LoginResponse):
                return
            if time.monotonic() > deadline:
                raise MatrixError(f"server {self.server}: login as {self.user_id} failed: {_why(resp)}")
            await asyncio.sleep(1.0)

    async def create_room(self, name: str) -> tuple[str, str]:
        """A public room with alias #name:server; returns (room_id, alias)."""
        resp = await self.client.room_create(
            visibility=RoomVisibility.public, alias=name, name=name, preset=RoomPreset.public_chat
        )
        if not isinstance(resp, RoomCreateResponse):
            raise MatrixError(f"server {self.server}: create room {name!r}: {_why(resp)}")
        return resp.room_id, f"#{name}:{self.server_name}"

    async def join(self, room: str, timeout: float = 60.0) -> str:
        """Join by alias or id (over federation if remote), retrying until `timeout`; returns the room id."""
        deadline = time.monotonic() + timeout
        while True:
            resp = await self.client.join(room)
            if isinstance(resp, JoinResponse):
                return resp.room_id
            if time.monotonic() > deadline:
                raise MatrixError(f"server {self.server}: join {room}: {_why(resp)}")
            await asyncio.sleep(1.0)

    async def members(self, room_id: str) -> set[str]:
        """User ids joined to the room as this server sees it (empty on error)."""
        resp = await self.client.joined_members(room_id)
        if not isinstance(resp, JoinedMembersResponse):
            return set()
        return {m.user_id for m in resp.members}

    async def send(self, room_id: str, body: str, txn_id: str) -> Sent:
        """Send one m.text message; errors are returned, not raised (they are part of the report)."""
        t0 = time.time()
        try:
            resp = await self.client.room_send(
                room_id, "m.room.message", {"msgtype": "m.text", "body": body}, tx_id=txn_id
            )
        except Exception as exc:  # aiohttp / timeouts: the server may be down on purpose
            return Sent(None, txn_id, t0, time.time(), f"{type(exc).__name__}: {exc}")
        if isinstance(resp, RoomSendResponse):
            return Sent(resp.event_id, txn_id, t0, time.time())
        return Sent(None, txn_id, t0, time.time(), _why(resp))

    async def close(self) -> None:
        await self.client.close()


def _why(resp: object) -> str:
    msg = getattr(resp, "message", None)
    code = getattr(resp, "status_code", None)
    return f"{code}: {msg}" if code else str(msg or resp)
