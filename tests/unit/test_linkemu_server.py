"""The emulator process and its client, without TAP devices (no root needed)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshsim.linkemu.client import LinkEmuClient, LinkEmuError, spawn


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "emu.sock")
    proc = spawn(path, str(tmp_path / "emu.log"))
    try:
        yield path
    finally:
        proc.terminate()
        assert proc.wait(5) == 0
        assert not os.path.exists(path)  # cleaned up its socket


def raw_exchange(path: str, payload: bytes, fds: list[int] | None = None) -> list[dict]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(3)
        sock.connect(path)
        if fds:
            socket.send_fds(sock, [payload], fds)
        else:
            sock.sendall(payload)
        want = payload.count(b"\n")
        buf = b""
        while buf.count(b"\n") < want:
            chunk = sock.recv(65536)
            assert chunk, "emulator closed the connection"
            buf += chunk
    return [json.loads(x) for x in buf.splitlines()]


def test_ping_and_empty_stats(emu: str) -> None:
    with LinkEmuClient(emu) as client:
        client.ping()
        assert client.stats() == {}


def test_malformed_requests_get_errors_and_emulator_survives(emu: str) -> None:
    payload = b"".join(
        [
            b"garbage\n",
            b"[]\n",
            b'{"id": 7, "op": "nope"}\n',
            b'{"id": 8, "op": "set", "link": "x", "ab": {"delay_ms": 1}}\n',
            b'{"id": 9, "op": "remove", "link": "x"}\n',
            b'{"id": 10, "op": "add", "link": "x", "ab": {}, "ba": {}}\n',
            b'{"id": 11, "op": "add", "link": "x", "ab": {"loss_pct": 200}, "ba": {}}\n',
            b'{"id": 12, "op": "ping"}\n',
        ]
    )
    replies = raw_exchange(emu, payload)
    assert [r["ok"] for r in replies] == [False] * 7 + [True]
    assert [r["id"] for r in replies] == [None, None, 7, 8, 9, 10, 11, 12]
    assert all(r["error"] for r in replies[:7])
    with LinkEmuClient(emu) as client:
        client.ping()
        assert client.stats() == {}


def test_add_with_non_tap_fds_is_refused_and_fds_are_closed(emu: str) -> None:
    r, w = os.pipe()
    try:
        replies = raw_exchange(emu, b'{"id": 1, "op": "add", "link": "p", "ab": {}, "ba": {}}\n', [r, w])
        assert replies[0]["ok"] is False and "TAP" in replies[0]["error"]
        # the emulator closed its copy of the write end: the pipe reads EOF once ours is closed too
        os.close(w)
        os.set_blocking(r, False)
        assert os.read(r, 1) == b""
    finally:
        os.close(r)
    with LinkEmuClient(emu) as client:
        assert client.stats() == {}


def test_client_raises_on_error_and_keeps_working(emu: str) -> None:
    with LinkEmuClient(emu) as client:
        with pytest.raises(LinkEmuError, match="no link"):
            client.remove("absent")
        with pytest.raises(LinkEmuError, match="no link"):
            client.set("absent", ab={"delay_ms": 1})
        client.ping()


def test_several_clients_at_once(emu: str) -> None:
    clients = [LinkEmuClient(emu) for _ in range(5)]
    try:
        for _ in range(3):
            for c in clients:
                c.ping()
    finally:
        for c in clients:
            c.close()


def test_half_line_then_disconnect_does_not_hurt(emu: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(emu)
        sock.sendall(b'{"id": 1, "op": "pi')
    with LinkEmuClient(emu) as client:
        client.ping()


def test_connect_failure_is_linkemu_error(tmp_path: Path) -> None:
    with pytest.raises(LinkEmuError):
        LinkEmuClient(str(tmp_path / "absent.sock"))
