"""Control protocol validation and builders."""

from __future__ import annotations

import json

import pytest

from meshsim.linkemu import protocol
from meshsim.linkemu.engine import DirParams

P = {"rate_bps": 1000, "delay_ms": 5, "jitter_ms": 0.5, "loss_pct": 1.5, "queue_bytes": None, "up": True}


def line(msg: dict) -> bytes:
    return json.dumps(msg).encode()


def test_add_roundtrip() -> None:
    msg = protocol.add_msg(1, "3-5", P, {"delay_ms": 2})
    req = protocol.parse_request(protocol.encode(msg))
    assert req.op == "add" and req.id == 1 and req.link == "3-5"
    assert req.ab == {**P, "delay_ms": 5.0}
    assert protocol.merge_params(DirParams(), req.ba) == DirParams(delay_ms=2.0)


def test_set_needs_a_direction() -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_request(line({"id": 2, "op": "set", "link": "a"}))
    with pytest.raises(protocol.ProtocolError):
        protocol.set_msg(2, "a")
    req = protocol.parse_request(line({"id": 2, "op": "set", "link": "a", "ba": {"up": False}}))
    assert req.ab is None and req.ba == {"up": False}


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        line({"id": 1}),
        line({"id": 1, "op": "explode"}),
        line({"id": 1, "op": "remove"}),
        line({"id": 1, "op": "remove", "link": ""}),
        line({"id": 1, "op": "remove", "link": 7}),
        line({"id": 1, "op": "remove", "link": "x" * 65}),
        line({"id": 1, "op": "ping", "link": "a"}),
        line({"id": 1, "op": "add", "link": "a", "ab": [], "ba": {}}),
        line({"id": 1, "op": "add", "link": "a", "ab": {"color": 1}}),
        line({"id": 1, "op": "add", "link": "a", "ab": {"rate_bps": -1}}),
        line({"id": 1, "op": "add", "link": "a", "ab": {"rate_bps": 1.5}}),
        line({"id": 1, "op": "add", "link": "a", "ab": {"rate_bps": True}}),
        line({"id": 1, "op": "add", "link": "a", "ab": {"delay_ms": "5"}}),
        line({"id": 1, "op": "add", "link": "a", "ab": {"delay_ms": -1}}),
        line({"id": 1, "op": "add", "link": "a", "ab": {"loss_pct": 101}}),
        line({"id": 1, "op": "add", "link": "a", "ab": {"queue_bytes": -3}}),
        line({"id": 1, "op": "add", "link": "a", "ab": {"up": 1}}),
        b'{"id": 1, "op": "add", "link": "a", "ab": {"delay_ms": NaN}}',
        b'{"id": 1, "op": "add", "link": "a", "ab": {"delay_ms": Infinity}}',
    ],
)
def test_rejects_malformed(raw: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_request(raw)


def test_best_effort_id_and_op() -> None:
    bad = line({"id": 9, "op": "add", "link": "a", "ab": {"bogus": 1}})
    assert protocol.request_id(bad) == 9 and protocol.request_op(bad) == "add"
    assert protocol.request_id(b"{{{") is None and protocol.request_op(b"[]") is None


def test_simple_messages_and_responses() -> None:
    assert protocol.parse_request(protocol.encode(protocol.simple_msg(4, "stats"))).op == "stats"
    with pytest.raises(protocol.ProtocolError):
        protocol.simple_msg(4, "add")
    assert protocol.parse_response(protocol.encode(protocol.ok(3, links={}))) == {
        "id": 3,
        "ok": True,
        "links": {},
    }
    assert protocol.parse_response(protocol.encode(protocol.error(3, "no")))["error"] == "no"
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_response(b'{"id": 3}')


def test_encode_is_one_line() -> None:
    data = protocol.encode(protocol.add_msg(1, "a-b", P, P))
    assert data.endswith(b"\n") and data.count(b"\n") == 1
