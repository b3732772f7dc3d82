"""Telemetry: the Synapse module's reports (with real Synapse event objects) and the sink's checks."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from synapse.api.room_versions import RoomVersions
from synapse.events import make_event_from_dict
from synapse.module_api.callbacks.federation import FederatedEventDeliveryMethod, FederationEventDeliveryEvent

from meshsim.homeserver.telemetry import DatagramReporter, TelemetryModule, joined_servers
from meshsim.homeserver.telemetry_sink import TelemetrySink, validate

ROOM = "!r:synapse0"


def ev(
    sender: str, etype: str = "m.room.message", state_key: str | None = None, membership: str | None = None
):
    d: dict[str, Any] = {
        "event_id": f"$e{abs(hash((sender, etype, state_key)))}:{sender.split(':')[1]}",
        "room_id": ROOM,
        "sender": sender,
        "type": etype,
        "content": {"membership": membership} if membership else {"body": "hi"},
        "origin_server_ts": 0,
        "auth_events": [],
        "prev_events": [],
        "hashes": {"sha256": "x"},
        "signatures": {},
        "depth": 1,
    }
    if state_key is not None:
        d["state_key"] = state_key
    return make_event_from_dict(d, RoomVersions.V1)


def member(user: str, membership: str = "join"):
    return ("m.room.member", user), ev(user, "m.room.member", user, membership)


STATE = dict(
    [member("@a:synapse0"), member("@b:synapse1"), member("@c:synapse1"), member("@d:synapse3", "leave"),
     member("@e:other.example"), member("@f:synapse5")]
)  # fmt: skip


class FakeApi:
    server_name = "synapse1"

    def __init__(self) -> None:
        self.callbacks: dict[str, Any] = {}

    def register_third_party_rules_callbacks(self, **kw: Any) -> None:
        self.callbacks.update(kw)

    def register_federation_callbacks(self, **kw: Any) -> None:
        self.callbacks.update(kw)


class Receiver:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(2)

    def get(self) -> dict[str, Any]:
        return json.loads(self.sock.recv(65536))


@pytest.fixture
def setup(tmp_path):
    path = tmp_path / "t.sock"
    rx = Receiver(path)
    api = FakeApi()
    cfg = TelemetryModule.parse_config({"socket": str(path), "server_id": 1})
    mod = TelemetryModule(cfg, api)  # type: ignore[arg-type]
    yield mod, api, rx
    rx.sock.close()


def test_joined_servers_counts_only_joins():
    assert joined_servers(STATE) == {"synapse0", "synapse1", "other.example", "synapse5"}


async def test_local_event_is_sent_with_destinations(setup):
    mod, api, rx = setup
    assert api.callbacks["on_new_event"] == mod.on_new_event
    e = ev("@b:synapse1")
    await mod.on_new_event(e, STATE)
    msg = rx.get()
    assert msg["type"] == "event_sent"
    assert msg["event_id"] == e.event_id and msg["room_id"] == ROOM
    assert msg["server"] == 1 and msg["origin"] == 1
    assert msg["destinations"] == [0, 5]  # not itself, not left members, not non-synapseN names
    assert msg["sender"] == "@b:synapse1" and msg["event_type"] == "m.room.message"
    assert isinstance(msg["ts"], int)
    assert validate(json.dumps(msg).encode()) == msg


async def test_remote_event_is_received(setup):
    mod, _, rx = setup
    await mod.on_new_event(ev("@f:synapse5"), STATE)
    msg = rx.get()
    assert msg["type"] == "event_received" and msg["server"] == 1 and msg["origin"] == 5
    assert "destinations" not in msg
    assert validate(json.dumps(msg).encode()) == msg


async def test_delivery_reports_each_event_for_send_only(setup):
    mod, api, rx = setup
    e1, e2 = ev("@b:synapse1"), ev("@c:synapse1")
    cb = api.callbacks["on_event_delivered_over_federation"]
    await cb(FederationEventDeliveryEvent("synapse0", [e1, e2], FederatedEventDeliveryMethod.BACKFILL))
    await cb(FederationEventDeliveryEvent("synapse0", [e1, e2], FederatedEventDeliveryMethod.SEND))
    got = [rx.get(), rx.get()]
    assert [m["event_id"] for m in got] == [e1.event_id, e2.event_id]
    for m in got:
        assert m["type"] == "event_delivered" and m["server"] == 1 and m["origin"] == 1
        assert m["destination"] == 0 and m["method"] == "/send"
        assert validate(json.dumps(m).encode()) == m
    rx.sock.settimeout(0.1)
    with pytest.raises(TimeoutError):
        rx.get()  # the backfill produced nothing


def test_reporter_drops_without_receiver_and_when_full(tmp_path):
    r = DatagramReporter(str(tmp_path / "absent.sock"))
    assert r.send({"x": 1}) is False and r.dropped == 1
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(tmp_path / "full.sock"))
    r = DatagramReporter(str(tmp_path / "full.sock"))
    for _ in range(100000):  # nobody reads: the queue fills and sends start failing, never blocking
        if not r.send({"type": "event_sent", "pad": "x" * 1000}):
            break
    assert r.dropped >= 1 and r.sent > 0
    rx.close()


def test_parse_config_rejects_bad():
    with pytest.raises(ValueError):
        TelemetryModule.parse_config({"server_id": 1})
    with pytest.raises(ValueError):
        TelemetryModule.parse_config({"socket": "/x", "server_id": -1})
    with pytest.raises(ValueError):
        TelemetryModule.parse_config({"socket": "/x", "server_id": True})


GOOD = {"type": "event_received", "event_id": "$e", "room_id": "!r", "server": 0, "origin": 2,
        "sender": "@m:synapse2", "event_type": "m.room.message", "ts": 5}  # fmt: skip


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"\xff\xfe",
        b"[1,2]",
        json.dumps({**GOOD, "type": "bogus"}).encode(),
        json.dumps({**GOOD, "server": "0"}).encode(),
        json.dumps({**GOOD, "server": True}).encode(),
        json.dumps({k: v for k, v in GOOD.items() if k != "event_id"}).encode(),
        json.dumps({**GOOD, "event_id": "x" * 5000}).encode(),
        json.dumps({**GOOD, "type": "event_sent", "destinations": [1, "2"]}).encode(),
        b" " * 70000,
    ],
)
def test_validate_rejects(raw):
    assert validate(raw) is None


def test_validate_keeps_only_known_fields():
    assert validate(json.dumps({**GOOD, "extra": "<script>"}).encode()) == GOOD


async def test_sink_receives_over_real_socket(tmp_path):
    got: list[dict[str, Any]] = []
    sink = TelemetrySink(tmp_path / "sink.sock", got.append)
    (tmp_path / "sink.sock").write_text("stale")  # a leftover file is replaced
    await sink.start()
    try:
        tx = DatagramReporter(str(sink.path))
        assert tx.send(GOOD)
        assert tx.send({"type": "garbage"})
        for _ in range(50):
            if sink.received + sink.invalid == 2:
                break
            await asyncio.sleep(0.02)
        assert got == [GOOD] and sink.invalid == 1
    finally:
        sink.close()
    assert not sink.path.exists()
