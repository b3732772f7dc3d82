"""Helpers shared by the homeserver benchmarks: controllers, rooms, telemetry, /proc readings.

`controller()` starts a real `meshsim up` (meshsim.harness.Sim) in a fresh state root and always
cleans it up; `Telemetry` collects event_sent/event_received/event_delivered messages from the
websocket or from a TelemetrySink; `Room` logs in one matrix-nio client per server, creates a
public room on the first one and joins the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import _common  # noqa: F401  (puts the checkout on sys.path)
import httpx
from nio import AsyncClient, LoginResponse, RoomCreateResponse, RoomPreset, RoomSendResponse
from websockets.sync.client import connect

from meshsim.harness import Sim
from meshsim.homeserver import ksm
from meshsim.topo import files
from meshsim.topo.model import Topology

CLK_TCK = os.sysconf("SC_CLK_TCK")
TEST_USER = ("matthew", "secret")
GiB = 1 << 30


# -- controllers -------------------------------------------------------------------------------


@contextlib.contextmanager
def controller(*args: str, ksm_mode: str = "off", kind: str = "synapse", ports: int = 64) -> Iterator[Sim]:
    """A `meshsim up --db postgres` in a fresh /tmp state root (mode 0755), stopped and removed after.

    Its client proxies get a block of `ports` ports that are free right now (other people's runs
    share this machine): the harness checks 64, a bigger run needs more.
    """
    home = Path(tempfile.mkdtemp(prefix="msbench-", dir="/tmp"))
    os.chmod(home, 0o755)
    old = os.environ.get(ksm.ENV)
    os.environ[ksm.ENV] = ksm_mode  # the controller and the Synapses it starts inherit it
    sim = None
    try:
        sim = Sim(home, "--db", "postgres", *args, kind=kind, client_ports=max(64, ports))
        yield sim
    finally:
        if old is None:
            os.environ.pop(ksm.ENV, None)
        else:
            os.environ[ksm.ENV] = old
        if sim is not None:
            sim.stop()
        shutil.rmtree(home, ignore_errors=True)


def topology_body(topo: Topology) -> dict[str, Any]:
    """A generated topology as the body of PUT /api/topology/file."""
    return json.loads(files.dumps(topo))


def wait_all_up(sim: Sim, ids: Iterable[int], timeout: float) -> float:
    """Poll GET /api/topology until every id is up; seconds waited. Raises on failed or timeout."""
    want = set(ids)
    t0 = time.monotonic()
    while True:
        servers = {s["id"]: s for s in sim.get("/api/topology")["servers"]}
        failed = [
            f"{i}: {servers[i].get('reason')}" for i in want if servers.get(i, {}).get("state") == "failed"
        ]
        if failed:
            raise RuntimeError(f"servers failed: {failed[:5]}")
        if all(servers.get(i, {}).get("state") == "up" for i in want):
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            states = {i: servers.get(i, {}).get("state") for i in want}
            raise TimeoutError(f"not all up after {timeout:.0f} s: {states}")
        time.sleep(0.2)


# -- telemetry -----------------------------------------------------------------------------------


class Telemetry:
    """Telemetry messages by event id, fed from a websocket thread or a sink callback.

    Lookups are O(messages of that event): a reader that scanned everything would starve the
    websocket thread, and the controller drops a subscriber that falls behind.
    """

    def __init__(self) -> None:
        self.count = 0
        self._by_event: dict[str, list[dict[str, Any]]] = {}
        self.reconnects = 0
        self._ws: Any = None
        self._closed = False

    def add(self, msg: dict[str, Any]) -> None:
        if msg.get("type", "").startswith("event_"):
            self.count += 1
            self._by_event.setdefault(msg["event_id"], []).append(msg)

    def follow_websocket(self, sim: Sim) -> None:
        """Read the controller's websocket in a thread; reconnect if it drops us (slow reader)."""
        headers = {"Authorization": f"Bearer {sim.token}"} if sim.token else None
        url = f"ws://127.0.0.1:{sim.port}/api/ws"
        self._ws = connect(url, open_timeout=10, max_size=None, additional_headers=headers)

        def run() -> None:
            while not self._closed:
                with contextlib.suppress(Exception):
                    for raw in self._ws:
                        self.add(json.loads(raw))
                if self._closed:
                    return
                self.reconnects += 1
                with contextlib.suppress(Exception):
                    self._ws = connect(url, open_timeout=10, max_size=None, additional_headers=headers)

        threading.Thread(target=run, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            self._ws.close()

    def of(self, type_: str, event_id: str) -> list[dict[str, Any]]:
        return [m for m in list(self._by_event.get(event_id, ())) if m["type"] == type_]

    async def fanout(self, event_id: str, servers: set[int], timeout: float) -> dict[str, Any]:
        """Wait until every server in `servers` reported event_received; delays in ms from event_sent."""
        deadline = time.monotonic() + timeout
        while True:
            sent = self.of("event_sent", event_id)
            got = {
                m["server"]: m["ts"] for m in self.of("event_received", event_id) if m["server"] in servers
            }
            if sent and len(got) == len(servers):
                delays = sorted(ts - sent[0]["ts"] for ts in got.values())
                return {"all_ms": delays[-1], "median_ms": statistics.median(delays), "delays": delays}
            if time.monotonic() > deadline:
                missing = sorted(servers - set(got))
                raise TimeoutError(f"{event_id}: no event_received from {missing[:10]} after {timeout:.0f} s")
            await asyncio.sleep(0.02)


# -- rooms -----------------------------------------------------------------------------------


class Room:
    """One logged-in client per server (base_url(i)), a public room on server `host`."""

    def __init__(self, urls: dict[int, str], host: int = 0) -> None:
        self.urls = urls
        self.host = host
        self.clients: dict[int, AsyncClient] = {}
        self.room_id = ""

    async def login(self, concurrency: int = 8) -> None:
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with sem:
                c = AsyncClient(self.urls[i], f"@{TEST_USER[0]}:synapse{i}")
                r = await c.login(TEST_USER[1])
                if not isinstance(r, LoginResponse):
                    await c.close()
                    raise RuntimeError(f"synapse{i}: login: {r}")
                self.clients[i] = c

        await asyncio.gather(*(one(i) for i in self.urls))

    async def create_and_join(
        self, alias: str = "bench", concurrency: int = 4, timeout: float = 600
    ) -> float:
        """Create #alias:synapse{host}, join every other server to it; seconds for the joins.

        Joins go by room id via up to three servers already in the room (not only the host), so
        the host is not the bottleneck of a big room; each join is retried with back-off.
        """
        created = await self.clients[self.host].room_create(alias=alias, preset=RoomPreset.public_chat)
        if not isinstance(created, RoomCreateResponse):
            raise RuntimeError(f"room create: {created}")
        self.room_id = created.room_id
        joined = [self.host]
        sem = asyncio.Semaphore(concurrency)
        t0 = time.monotonic()

        async def join(i: int) -> None:
            c = self.clients[i]
            async with sem, httpx.AsyncClient(base_url=self.urls[i], timeout=180) as http:
                err = ""
                for attempt in range(8):
                    via = [self.host, *random.sample(joined, min(2, len(joined)))]
                    params = [("server_name", f"synapse{v}") for v in dict.fromkeys(via)]
                    try:
                        r = await http.post(
                            f"/_matrix/client/v3/join/{quote(self.room_id)}",
                            params=params,
                            json={},
                            headers={"Authorization": f"Bearer {c.access_token}"},
                        )
                        if r.status_code == 200:
                            joined.append(i)
                            return
                        err = f"{r.status_code} {r.text[:200]}"
                    except httpx.HTTPError as exc:
                        err = repr(exc)
                    await asyncio.sleep(2 + 3 * attempt)
                raise RuntimeError(f"synapse{i}: join: {err}")

        others = [i for i in self.clients if i != self.host]
        await asyncio.wait_for(asyncio.gather(*(join(i) for i in others)), timeout)
        return time.monotonic() - t0

    async def joined_count(self, server: int) -> int:
        r = await self.clients[server].joined_members(self.room_id)
        return len(getattr(r, "members", []))

    async def send(self, server: int, body: str) -> str:
        r = await self.clients[server].room_send(
            self.room_id, "m.room.message", {"msgtype": "m.text", "body": body}
        )
        if not isinstance(r, RoomSendResponse):
            raise RuntimeError(f"synapse{server}: send: {r}")
        return r.event_id

    async def close(self) -> None:
        for c in self.clients.values():
            await c.close()


# -- /proc -------------------------------------------------------------------------------------


def _status_kb(pid: int, file: str, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0


def rss(pid: int) -> int:
    return _status_kb(pid, "status", "VmRSS:")


def pss(pid: int) -> int:
    return _status_kb(pid, "smaps_rollup", "Pss:")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children(pid: int) -> list[int]:
    """Direct children of pid."""
    out = []
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append(int(d))
    return out


def postgres_pids(sim: Sim) -> list[int]:
    """This run's postmaster and its backends (not other people's clusters)."""
    pidfile = sim.home / "runs" / sim.run / "pg" / "data" / "postmaster.pid"
    try:
        master = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    return [master, *children(master)]


def mem_used() -> int:
    """MemTotal - MemAvailable, bytes (the whole machine)."""
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        k, v = line.split(":", 1)
        info[k] = int(v.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


def cpu_percent(pids: list[int], seconds: float) -> dict[int, float]:
    """Per-pid CPU use in % of one core over `seconds`."""
    before = {p: cpu_seconds(p) for p in pids}
    time.sleep(seconds)
    return {p: 100.0 * (cpu_seconds(p) - before[p]) / seconds for p in pids}


def quantiles(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    if not xs:
        return {"median": 0.0, "p90": 0.0, "max": 0.0}
    return {"median": statistics.median(xs), "p90": xs[min(len(xs) - 1, int(0.9 * len(xs)))], "max": xs[-1]}


