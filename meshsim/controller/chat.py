"""The page's chat box: send a message as the test user into one shared demo room (matrix-nio)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from nio import (
    AsyncClient,
    JoinError,
    LoginResponse,
    RoomCreateError,
    RoomPreset,
    RoomResolveAliasError,
    RoomSendResponse,
)

from ..kernel import names
from ..nodes.synapse import TEST_USER
from ..topo import Conflict

if TYPE_CHECKING:
    from .core import Controller

ROOM_ALIAS = "meshsim"
log = logging.getLogger(__name__)


class ChatRoom:
    """One logged-in client per server, and the demo room `#meshsim:synapseH` on the first host."""

    def __init__(self) -> None:
        self.clients: dict[int, AsyncClient] = {}
        self.room_id: str | None = None
        self.host: int | None = None
        self.joined: set[int] = set()
        self.lock = asyncio.Lock()

    async def client(self, ctl: Controller, sid: int) -> AsyncClient:
        if sid not in self.clients:
            url = f"http://127.0.0.1:{ctl.options.client_port_base + sid}"
            c = AsyncClient(url, f"@{TEST_USER[0]}:{names.server_name(sid)}")
            resp = await c.login(TEST_USER[1], device_name="meshsim-chat")
            if not isinstance(resp, LoginResponse):
                await c.close()
                raise Conflict(f"synapse{sid}: login as {TEST_USER[0]} failed: {resp}")
            self.clients[sid] = c
        return self.clients[sid]

    async def ensure_room(self, ctl: Controller, sid: int) -> str:
        if self.room_id is None or self.host not in ctl.topo.servers:
            self.room_id, self.joined = None, set()
            c = await self.client(ctl, sid)
            alias = f"#{ROOM_ALIAS}:{names.server_name(sid)}"
            resolved = await c.room_resolve_alias(alias)
            if isinstance(resolved, RoomResolveAliasError):
                created = await c.room_create(
                    alias=ROOM_ALIAS, name="meshsim demo", preset=RoomPreset.public_chat
                )
                if isinstance(created, RoomCreateError):
                    raise Conflict(f"synapse{sid}: cannot create the demo room: {created.message}")
                self.room_id = created.room_id
            else:
                self.room_id = resolved.room_id
            self.host = sid
            self.joined.add(sid)
            await self.join_everyone(ctl)
        return self.room_id

    async def join_everyone(self, ctl: Controller) -> None:
        """Bring every other up synapse server into the demo room (best effort, concurrently)."""
        others = [
            i
            for i, s in ctl.topo.servers.items()
            if s.kind == "synapse"
            and i not in self.joined
            and (n := ctl.nodes.get(i)) is not None
            and n.state == "up"
        ]

        async def one(i: int) -> None:
            try:
                await _join(
                    await self.client(ctl, i), f"#{ROOM_ALIAS}:{names.server_name(self.host or 0)}", i
                )
                self.joined.add(i)
            except Exception as exc:  # that server joins when it chats
                log.info("demo room: synapse%s did not join: %s", i, exc)

        await asyncio.gather(*(one(i) for i in others))

    async def close(self) -> None:
        for c in self.clients.values():
            await c.close()
        self.clients.clear()


JOIN_ATTEMPTS = 4


async def _join(c: AsyncClient, alias: str, sid: int) -> None:
    """Join over federation. Synapse gives an alias query 10 s, which a slow, far link can exceed on
    the first try (TLS, keys, well-known); the retries find those cached."""
    for attempt in range(JOIN_ATTEMPTS):
        joined = await c.join(alias)
        if not isinstance(joined, JoinError):
            return
        if attempt == JOIN_ATTEMPTS - 1:
            raise Conflict(f"synapse{sid}: cannot join the demo room {alias}: {joined.message}")
        await asyncio.sleep(1.0)


async def send_chat(ctl: Controller, room: ChatRoom, sid: int, body: str) -> dict[str, Any]:
    """Send `body` from server sid; the room is created on the first use, and sid joins it over federation."""
    server = ctl.topo.server(sid)
    node = ctl.nodes.get(sid)
    if server.kind != "synapse" or node is None or node.state != "up":
        raise Conflict(f"server {sid} is not an up synapse server")
    async with room.lock:
        room_id = await room.ensure_room(ctl, sid)
        c = await room.client(ctl, sid)
        if sid not in room.joined:
            await _join(c, f"#{ROOM_ALIAS}:{names.server_name(room.host or 0)}", sid)
            room.joined.add(sid)
    resp = await c.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body})
    if not isinstance(resp, RoomSendResponse):
        raise Conflict(f"synapse{sid}: send failed: {resp}")
    return {"event_id": resp.event_id, "room_id": room_id, "server": sid}
