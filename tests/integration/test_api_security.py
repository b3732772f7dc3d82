"""A locked-down API: a token off the default address, Origin checked on the websocket."""

from __future__ import annotations

import re

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from meshsim.harness import Sim

pytestmark = pytest.mark.root


def test_other_address_requires_the_printed_token(sim_factory):
    sim: Sim = sim_factory("--host", "127.0.0.2")
    token = re.search(r"API token \(required on every request\): (\S+)", sim.log.read_text()).group(1)
    base = f"http://127.0.0.2:{sim.port}"
    assert httpx.get(f"{base}/api/topology").status_code == 401
    assert httpx.get(f"{base}/api/topology", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = httpx.get(f"{base}/api/topology", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    r = httpx.post(f"{base}/api/servers", json={"x": 1, "y": 1, "kind": "router"})
    assert r.status_code == 401
    assert httpx.get(f"{base}/api/topology", headers={"Authorization": f"Bearer {token}"}).json()["servers"] == []
    with pytest.raises(InvalidStatus), connect(f"ws://127.0.0.2:{sim.port}/api/ws") as ws:
        ws.recv(timeout=5)
    with connect(f"ws://127.0.0.2:{sim.port}/api/ws?token={token}") as ws:
        assert '"snapshot"' in ws.recv(timeout=5)
    # the CLI finds the token itself
    assert sim.cli("status").returncode == 0


def test_websocket_checks_origin(sim):
    evil = "http://evil.example"
    with pytest.raises(InvalidStatus), connect(f"ws://127.0.0.1:{sim.port}/api/ws", origin=evil) as ws:
        ws.recv(timeout=5)
    with connect(f"ws://127.0.0.1:{sim.port}/api/ws", origin=f"http://127.0.0.1:{sim.port}") as ws:
        assert '"snapshot"' in ws.recv(timeout=5)
