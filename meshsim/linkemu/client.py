"""Synchronous, thread-safe client of the link emulator's control socket, and a process spawner."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from meshsim.linkemu import protocol


class LinkEmuError(RuntimeError):
    """The emulator refused a request, timed out, or is not reachable."""


class LinkEmuClient:
    """Blocking JSON-lines client; one request in flight at a time (guarded by a lock)."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        with self._lock:
            self._connect()

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
            except OSError as exc:
                sock.close()
                raise LinkEmuError(f"cannot connect to link emulator at {self.path}: {exc}") from None
            self._sock = sock
            self._buf.clear()
        return self._sock

    def _reset(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._buf.clear()

    def call(self, msg: dict, fds: list[int] | None = None) -> dict:
        """Send one request (with fds as SCM_RIGHTS if given) and return its successful response."""
        with self._lock:
            sock = self._connect()
            data = protocol.encode(msg)
            try:
                if fds:
                    sent = socket.send_fds(sock, [data], fds)
                    if sent < len(data):
                        sock.sendall(data[sent:])
                else:
                    sock.sendall(data)
                resp = self._read_response(sock, msg["id"])
            except (OSError, protocol.ProtocolError) as exc:
                self._reset()  # the stream may be out of step now
                raise LinkEmuError(f"link emulator {msg['op']} failed: {exc}") from None
        if not resp["ok"]:
            raise LinkEmuError(f"link emulator {msg['op']}: {resp.get('error', 'unknown error')}")
        return resp

    def _read_response(self, sock: socket.socket, req_id: int) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                resp = protocol.parse_response(line)
                if resp.get("id") == req_id:
                    return resp
                continue  # a stale reply to an earlier, timed-out request
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out waiting for a response")
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("link emulator closed the connection")
            self._buf += chunk

    def add(self, link_id: str, fd_a: int, fd_b: int, ab: dict, ba: dict) -> None:
        """Hand the two TAP fds of a link to the emulator (it keeps its own copies; close yours)."""
        self.call(protocol.add_msg(next(self._ids), link_id, ab, ba), [fd_a, fd_b])

    def set(self, link_id: str, ab: dict | None = None, ba: dict | None = None) -> None:
        """Change some parameters of one or both directions; given fields only, others stay."""
        self.call(protocol.set_msg(next(self._ids), link_id, ab, ba))

    def remove(self, link_id: str) -> dict:
        """Remove a link, closing the emulator's TAP fds; returns its final counters."""
        return self.call(protocol.remove_msg(next(self._ids), link_id))["stats"]

    def stats(self) -> dict:
        """Counters of every link: {link: {"ab": S, "ba": S}}."""
        return self.call(protocol.simple_msg(next(self._ids), "stats"))["links"]

    def ping(self) -> None:
        self.call(protocol.simple_msg(next(self._ids), "ping"))

    def close(self) -> None:
        with self._lock:
            self._reset()

    def __enter__(self) -> LinkEmuClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _repo_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def spawn(
    control_path: str,
    log_path: str,
    *,
    seed: int | None = None,
    nice: int = -10,
    realtime: int = 0,
    wait_s: float = 10.0,
) -> subprocess.Popen:
    """Start `python -m meshsim.linkemu` logging to `log_path`; return once it answers ping.

    A negative `nice` (applied only when running as root) keeps link timing accurate while homeservers
    load the CPU; it is harmless because the loop sleeps whenever no frame is due. `realtime` > 0 runs
    it SCHED_FIFO at that priority, which removes the ms-scale tail of late frames on a busy machine.
    """
    argv = [sys.executable, "-m", "meshsim.linkemu", "--control", control_path]
    if nice and os.geteuid() == 0:
        argv += ["--nice", str(nice)]
    if realtime and os.geteuid() == 0:
        argv += ["--realtime", str(realtime)]
    if seed is not None:
        argv += ["--seed", str(seed)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_repo_root(), env.get("PYTHONPATH")) if p)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    deadline = time.monotonic() + wait_s
    while True:
        if proc.poll() is not None:
            raise LinkEmuError(f"link emulator exited with {proc.returncode}; see {log_path}")
        try:
            with LinkEmuClient(control_path, timeout=0.5) as client:
                client.ping()
            return proc
        except LinkEmuError:
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise LinkEmuError(
                    f"link emulator did not answer within {wait_s} s; see {log_path}"
                ) from None
            time.sleep(0.02)
