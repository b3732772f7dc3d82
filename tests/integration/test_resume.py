"""No lost work: after SIGKILL of the controller, `meshsim up --resume` brings everything back."""

from __future__ import annotations

import asyncio
import signal

import pytest
from nio import AsyncClient, LoginResponse, RoomCreateResponse, RoomMessagesResponse, RoomSendResponse

pytestmark = pytest.mark.root


def _kill(sim) -> None:
    sim.proc.send_signal(signal.SIGKILL)
    sim.proc.wait()


def test_resume_brings_back_servers_positions_pins_and_defaults(sim_factory):
    sim = sim_factory()
    sim.req("PUT", "/api/defaults", {"max_latency": 250, "jitter": 1.5}).raise_for_status()
    for x, y in [(100, 100), (250, 120), (400, 100)]:
        sim.add(x, y, kind="router")
    sim.req("PUT", "/api/links/0/1", {"latency": 42, "loss": 1}).raise_for_status()
    before = sim.get("/api/topology/file")
    _kill(sim)
    again = sim_factory("--resume", home=sim.home)
    assert again.run == sim.run
    assert again.get("/api/topology/file") == before
    topo = again.get("/api/topology")
    assert next(lk for lk in topo["links"] if (lk["a"], lk["b"]) == (0, 1))["latency"] == 42
    assert again.exec(0, "ping", "-c", "1", "-W", "2", "10.99.0.3").returncode == 0


def test_start_without_resume_says_a_saved_state_exists(sim_factory):
    sim = sim_factory()
    sim.add(100, 100, kind="router")
    _kill(sim)
    fresh = sim_factory(home=sim.home)
    assert fresh.run != sim.run and fresh.get("/api/topology")["servers"] == []
    assert "--resume" in fresh.log.read_text()


def test_nothing_to_resume_is_a_clear_error(sim_factory, tmp_path):
    home = tmp_path / "empty"
    with pytest.raises(RuntimeError, match="nothing to resume"):
        sim_factory("--resume", home=home)


@pytest.mark.synapse
def test_resume_keeps_homeserver_data(sim_factory):
    sim = sim_factory(kind="synapse")
    sim.add(100, 100)
    sim.wait_state(0, "up")
    room, body = asyncio.run(_write(sim.client_url(0)))
    _kill(sim)
    again = sim_factory("--resume", home=sim.home)
    again.client_port_base = sim.client_port_base  # a resumed run keeps its client ports
    again.wait_state(0, "up")
    assert body in asyncio.run(_read(again.client_url(0), room))


async def _login(url: str) -> AsyncClient:
    c = AsyncClient(url, "@matthew:synapse0")
    assert isinstance(await c.login("secret"), LoginResponse)
    return c


async def _write(url: str) -> tuple[str, str]:
    c = await _login(url)
    try:
        r = await c.room_create(name="kept")
        assert isinstance(r, RoomCreateResponse), r
        s = await c.room_send(r.room_id, "m.room.message", {"msgtype": "m.text", "body": "still here"})
        assert isinstance(s, RoomSendResponse), s
        return r.room_id, "still here"
    finally:
        await c.close()


async def _read(url: str, room: str) -> list[str]:
    c = await _login(url)
    try:
        m = await c.room_messages(room, start="", limit=20)
        assert isinstance(m, RoomMessagesResponse), m
        return [getattr(e, "body", None) or type(e).__name__ for e in m.chunk]
    finally:
        await c.close()
