"""Real Synapse servers on the emulated mesh, driven through the controller (PostgreSQL and SQLite)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from nio import AsyncClient, JoinResponse, LoginResponse, RoomCreateResponse, RoomPreset, RoomSendResponse
from websockets.sync.client import connect

pytestmark = [pytest.mark.root, pytest.mark.synapse]


class WsRecorder:
    """Collects every websocket message in a background thread."""

    def __init__(self, port: int) -> None:
        self.msgs: list[dict[str, Any]] = []
        self._ws = connect(f"ws://127.0.0.1:{port}/api/ws", open_timeout=10, max_size=None)
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        try:
            for raw in self._ws:
                self.msgs.append(json.loads(raw))
        except Exception:
            pass

    def of(self, type_: str, **match: Any) -> list[dict[str, Any]]:
        return [m for m in list(self.msgs) if m["type"] == type_ and all(m.get(k) == v for k, v in match.items())]

    def wait(self, type_: str, timeout: float = 30, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of(type_, **match)
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no {type_} {match} within {timeout} s")

    def close(self) -> None:
        self._ws.close()


async def login(sim, sid: int) -> AsyncClient:
    c = AsyncClient(sim.client_url(sid), f"@matthew:synapse{sid}")
    assert isinstance(await c.login("secret"), LoginResponse)
    return c


async def send(c: AsyncClient, room: str, body: str) -> str:
    r = await c.room_send(room, "m.room.message", {"msgtype": "m.text", "body": body})
    assert isinstance(r, RoomSendResponse), r
    return r.event_id


@pytest.mark.parametrize("db", ["postgres", "sqlite"])
def test_three_servers_in_a_line_federate_over_the_mesh(sim_factory, db):
    sim = sim_factory("--db", db, kind="synapse")
    ws = WsRecorder(sim.port)
    try:
        asyncio.run(_scenario(sim, ws))
    finally:
        ws.close()


async def _scenario(sim, ws: WsRecorder) -> None:
    # 20 ms per hop, fast links; 0 and 2 are 40 ms apart, beyond max latency, so not linked
    defaults = {"max_latency": 30, "decay": False, "bandwidth": 20_000_000}
    sim.req("PUT", "/api/defaults", defaults).raise_for_status()
    for i in range(3):
        sim.add(100 + 20 * i, 100)
    for i in range(3):
        sim.wait_state(i, "up", timeout=120)
    assert {(lk["a"], lk["b"]) for lk in sim.get("/api/topology")["links"]} == {(0, 1), (1, 2)}
    # the shaped client link: every request and response waits the one-way latency
    url = f"{sim.client_url(0)}/_matrix/client/versions"
    sim.req("PUT", "/api/defaults", {"client_latency": 150}).raise_for_status()
    t0 = time.monotonic()
    assert sim.http.get(url).status_code == 200
    assert time.monotonic() - t0 >= 0.3
    sim.req("PUT", "/api/defaults", {"client_latency": 0}).raise_for_status()
    clients = [await login(sim, i) for i in range(3)]
    try:
        created = await clients[0].room_create(alias="line", preset=RoomPreset.public_chat)
        assert isinstance(created, RoomCreateResponse), created
        room = created.room_id
        for i, c in enumerate(clients[1:], 1):
            joined = await c.join("#line:synapse0")
            assert isinstance(joined, JoinResponse), (i, joined)

        # a message on synapse2 reaches synapse0 (two hops away), seen on the websocket
        event_id = await send(clients[2], room, "hello from the far end")
        sent = ws.wait("event_sent", event_id=event_id)
        assert sent["server"] == 2 and sent["origin"] == 2 and sent["room_id"] == room
        assert set(sent["destinations"]) == {0, 1}
        ws.wait("event_received", event_id=event_id, server=0)
        ws.wait("event_received", event_id=event_id, server=1)
        ws.wait("event_delivered", event_id=event_id, destination=0)

        async def delay_to_0(body: str) -> int:
            eid = await send(clients[2], room, body)
            sent = ws.wait("event_sent", event_id=eid)
            return ws.wait("event_received", event_id=eid, server=0)["ts"] - sent["ts"]

        fast = min([await delay_to_0(f"fast {i}") for i in range(5)])
        # 200 ms more on the 1-2 link makes delivery measurably slower
        sim.req("PUT", "/api/links/1/2", {"latency": 200}).raise_for_status()
        slow = min([await delay_to_0(f"slow {i}") for i in range(5)])
        # one way 2 -> 1 -> 0 is now 220 ms instead of 40 ms; Synapse's own processing time varies on a busy machine
        assert slow >= 220 and slow >= fast + 100, (fast, slow)

        # killing the middle server cuts the far end off; restarting it heals
        sim.req("POST", "/api/servers/1/kill").raise_for_status()
        assert "0" not in sim.get("/api/topology")["routes"]["2"]
        event_id = await send(clients[2], room, "while the middle is down")
        ws.wait("event_sent", event_id=event_id)
        time.sleep(5)
        assert not ws.of("event_received", event_id=event_id, server=0)
        sim.req("POST", "/api/servers/1/start").raise_for_status()
        sim.wait_state(1, "up", timeout=120)
        await send(clients[0], room, "poke: tells synapse2 that synapse0 is back")
        ws.wait("event_received", event_id=event_id, server=0, timeout=90)
    finally:
        for c in clients:
            await c.close()
