"""Client proxy: 127.0.0.1:PORT -> a real HTTP server on a UNIX socket."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from aiohttp import web

from meshsim.homeserver.client_proxy import ClientProxy, ProxyPortInUse


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def upstream(tmp_path):
    seen: list[dict] = []

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        return web.json_response({"len": len(body)}, status=201, headers={"X-Up": "1"})

    async def slow(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(3):
            await resp.write(f"chunk{i};".encode())
            await asyncio.sleep(0.4)  # long-poll style: gaps between bytes
        await resp.write_eof()
        return resp

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/slow", slow)
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    path = tmp_path / "client.sock"
    await web.UnixSite(runner, str(path)).start()
    yield path, seen
    await runner.cleanup()


async def test_forwards_method_path_body_and_adds_forwarded_for(upstream):
    path, seen = upstream
    proxy = ClientProxy(free_port(), path)
    await proxy.start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.put(f"{proxy.url}/_matrix/client/v3/x?a=1&b=2", json={"k": "v"}) as r:
                assert r.status == 201 and r.headers["X-Up"] == "1"
                assert await r.json() == {"len": len(b'{"k": "v"}')}
            big = b"x" * (3 * 1024 * 1024)  # above the buffering threshold: streamed upstream
            async with s.post(f"{proxy.url}/upload", data=big) as r:
                assert (await r.json())["len"] == len(big)
    finally:
        await proxy.stop()
    assert seen[0]["method"] == "PUT" and seen[0]["path"] == "/_matrix/client/v3/x?a=1&b=2"
    assert seen[0]["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert seen[1]["body"] == big


async def test_streams_slow_responses_without_timeout(upstream):
    path, _ = upstream
    proxy = ClientProxy(free_port(), path)
    await proxy.start()
    try:
        async with aiohttp.ClientSession() as s, s.get(f"{proxy.url}/slow") as r:
            first = await r.content.readany()
            assert first.startswith(b"chunk0")  # delivered before the upstream finished
            rest = await r.read()
            assert (first + rest) == b"chunk0;chunk1;chunk2;"
    finally:
        await proxy.stop()


async def test_upstream_down_is_502(tmp_path):
    proxy = ClientProxy(free_port(), tmp_path / "nothing.sock")
    await proxy.start()
    try:
        async with aiohttp.ClientSession() as s, s.get(f"{proxy.url}/health") as r:
            assert r.status == 502
            assert (await r.json())["errcode"] == "M_UNKNOWN"
    finally:
        await proxy.stop()


async def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        proxy = ClientProxy(s.getsockname()[1], tmp_path / "x.sock")
        with pytest.raises(ProxyPortInUse, match="already in use"):
            await proxy.start()
    await proxy.stop()
