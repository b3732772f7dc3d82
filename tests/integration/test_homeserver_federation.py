"""Real Synapse servers federating over a line of namespaces (0-1-...-n), driven by matrix-nio.

Each server lives in its own namespace with its mesh address on lo; neighbours are joined by
veth pairs with onlink /32 routes, and middle nodes forward. Clients reach the servers only
through the host-side client proxies on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshsim.harness import free_port_base
from meshsim.homeserver.client_proxy import ClientProxy
from meshsim.homeserver.fleet import HomeserverFleet
from meshsim.homeserver.netns_files import remove_netns_etc, write_hosts
from meshsim.homeserver.process import BootLimiter, SynapseServer
from meshsim.homeserver.telemetry_sink import TelemetrySink
from meshsim.kernel import names

pytestmark = [
    pytest.mark.root,
    pytest.mark.synapse,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]


class LibNode:
    """A homeserver and its client proxy, composed from the library without the controller."""

    def __init__(self, server: SynapseServer, limiter: BootLimiter, port: int) -> None:
        self.server, self.limiter = server, limiter
        self.proxy = ClientProxy(port, server.paths.client_socket)
        self.node_id = server.spec.server_id

    async def start(self) -> bool:
        await self.proxy.start()
        return await self.limiter.boot(self.server, 180)

    async def stop(self) -> None:
        await self.server.stop()
        await self.proxy.stop()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class LineNet:
    """n namespaces in a line, built with plain `ip` commands; `close()` removes everything."""

    def __init__(self, n: int) -> None:
        self.run = secrets.token_hex(2)
        self.n = n
        self.netns = [names.netns(self.run, i) for i in range(n)]

    def build(self) -> None:
        for i, ns in enumerate(self.netns):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{names.address(i)}/32", "dev", "lo")
            subprocess.run(
                ["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True, timeout=30
            )
            write_hosts(ns, self.n - 1)
        for i in range(self.n - 1):
            a, b = f"{names.prefix(self.run)}v{i}a", f"{names.prefix(self.run)}v{i}b"
            _ip(
                "link",
                "add",
                a,
                "netns",
                self.netns[i],
                "type",
                "veth",
                "peer",
                "name",
                b,
                "netns",
                self.netns[i + 1],
            )
            _ip("-n", self.netns[i], "link", "set", a, "name", f"eth{i + 1}", "up")
            _ip("-n", self.netns[i + 1], "link", "set", b, "name", f"eth{i}", "up")
        for i, ns in enumerate(self.netns):
            for j in range(self.n):
                if j != i:
                    nh = i + 1 if j > i else i - 1
                    _ip("-n", ns, "route", "replace", f"{names.address(j)}/32", "via", names.address(nh),
                        "dev", f"eth{nh}", "onlink")  # fmt: skip

    def close(self) -> None:
        for ns in self.netns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
            remove_netns_etc(ns)




@pytest.fixture
def run_dir() -> Iterator[Path]:
    # Short (UNIX socket paths <= 107 bytes) and traversable by the postgres user.
    d = Path(tempfile.mkdtemp(prefix="mshs-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


async def _wait_for(pred: Any, timeout: float, what: str, interval: float = 0.1) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - t0


@pytest.mark.parametrize(("backend", "n"), [("postgres", 3), ("sqlite", 2)])
async def test_federation_over_line(run_dir: Path, backend: str, n: int) -> None:
    from nio import AsyncClient, JoinResponse, LoginResponse, RoomCreateResponse, RoomSendResponse
    from nio.api import RoomVisibility

    net = LineNet(n)
    messages: list[dict[str, Any]] = []
    sink = TelemetrySink(run_dir / "telemetry.sock", messages.append)
    fleet = HomeserverFleet(run_dir, database=backend, telemetry_socket=str(sink.path))  # type: ignore[arg-type]
    limiter = BootLimiter(2)
    base = free_port_base(n)
    nodes: list[LibNode] = []
    clients: list[AsyncClient] = []
    try:
        net.build()
        await sink.start()
        fleet.start()
        nodes = [LibNode(fleet.server(i, net.netns[i]), limiter, base + i) for i in range(n)]
        t0 = time.monotonic()
        ok = await asyncio.gather(*(node.start() for node in nodes))
        boot_all = time.monotonic() - t0
        for node in nodes:
            print(f"[{backend}] synapse{node.node_id}: boot {node.server.boot_seconds:.2f} s, "
                  f"rss {node.server.rss_bytes() / 1e6:.0f} MB, pss {node.server.pss_bytes() / 1e6:.0f} MB")  # fmt: skip
        print(f"[{backend}] all {n} up in {boot_all:.2f} s (2 boots at a time)")
        assert all(ok), [(nd.server.state, nd.server.reason) for nd in nodes]

        for node in nodes:
            assert await node.server.register_user("matthew", "secret") == f"@matthew:synapse{node.node_id}"
            assert await node.server.register_user("matthew", "secret") == f"@matthew:synapse{node.node_id}"
        for node in nodes:
            c = AsyncClient(node.proxy.url, f"@matthew:synapse{node.node_id}")
            clients.append(c)
            assert isinstance(await c.login("secret"), LoginResponse)

        created = await clients[0].room_create(visibility=RoomVisibility.public, alias="mesh", name="mesh")
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        for i in range(1, n):
            t = time.monotonic()
            joined = await clients[i].join("#mesh:synapse0")
            assert isinstance(joined, JoinResponse), joined
            assert joined.room_id == room_id
            print(f"[{backend}] synapse{i} joined over federation in {time.monotonic() - t:.2f} s")

        # Wait until the last server's view of the room includes everyone, then send from it.
        last = clients[-1]

        async def members_seen() -> int:
            r = await last.joined_members(room_id)
            return len(getattr(r, "members", []))

        t = time.monotonic()
        while await members_seen() < n:
            assert time.monotonic() - t < 30, "joined members never converged"
            await asyncio.sleep(0.2)

        sent = await last.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "hello from the end"}
        )
        assert isinstance(sent, RoomSendResponse), sent
        event_id = sent.event_id
        t = time.monotonic()
        while True:
            r = await clients[0].room_get_event(room_id, event_id)
            if getattr(r, "event", None) is not None:
                break
            assert time.monotonic() - t < 30, f"{event_id} never reached synapse0: {r}"
            await asyncio.sleep(0.1)
        print(f"[{backend}] message synapse{n - 1} -> synapse0 visible in {time.monotonic() - t:.2f} s")
        assert r.event.body == "hello from the end"

        def of(kind: str, **match: Any) -> list[dict[str, Any]]:
            return [m for m in messages if m["type"] == kind and all(m.get(k) == v for k, v in match.items())]

        await _wait_for(lambda: of("event_received", event_id=event_id, server=0), 20, "event_received at 0")
        await _wait_for(lambda: of("event_delivered", event_id=event_id, server=n - 1, destination=0), 20,
                        "event_delivered to 0")  # fmt: skip
        sent_msgs = of("event_sent", event_id=event_id)
        assert len(sent_msgs) == 1
        assert sent_msgs[0]["server"] == n - 1 and sent_msgs[0]["origin"] == n - 1
        assert sent_msgs[0]["destinations"] == list(range(n - 1))
        assert sent_msgs[0]["sender"] == f"@matthew:synapse{n - 1}"
        assert of("event_received", event_id=event_id, server=0)[0]["origin"] == n - 1
        print(f"[{backend}] telemetry: {sink.received} messages, {sink.invalid} invalid")
    finally:
        for c in clients:
            await c.close()
        for node in nodes:
            await node.stop()
        sink.close()
        fleet.stop()
        net.close()
