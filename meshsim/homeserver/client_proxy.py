"""Host access to one server's client API: 127.0.0.1:PORT -> the server's UNIX-socket listener.

An aiohttp reverse proxy running in the controller's event loop. Bodies stream both ways,
there is no read timeout (Matrix /sync long-polls), and every request gets X-Forwarded-For
(Synapse's UNIX listener needs it to know the client address).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
from pathlib import Path

import aiohttp
from aiohttp import web

from .client_link import ClientLink, LinkSource, delay, transfer_time_s

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_BUFFER_BODY_MAX = 1024 * 1024


class ProxyPortInUse(OSError):
    pass


def _forward_headers(request: web.Request) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    remote = request.remote or "127.0.0.1"
    prior = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{prior}, {remote}" if prior else remote
    headers["X-Forwarded-Proto"] = request.scheme
    return headers


class ClientProxy:
    """`await start()` listens on host:port; `await stop()` closes the listener and upstream session."""

    def __init__(
        self, port: int, uds_path: Path | str, *, host: str = "127.0.0.1", link: LinkSource | None = None
    ) -> None:
        self.port = port
        self.link = link or ClientLink
        self._rng = random.Random()
        self.host = host
        self.uds_path = str(uds_path)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, reuse_address=True).start()
        except OSError as exc:
            await runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                raise ProxyPortInUse(
                    errno.EADDRINUSE, f"client proxy: {self.host}:{self.port} is already in use"
                ) from exc
            raise
        self._runner = runner
        self._session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=self.uds_path, limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        data: bytes | object | None = None
        link = self.link()
        if request.body_exists:
            if request.content_length is not None and request.content_length <= _BUFFER_BODY_MAX:
                data = await request.read()
            else:
                data = request.content.iter_any()
        if link.shaped:  # the request crosses the client link
            await delay(link, self._rng, len(data) if isinstance(data, bytes) else 0)
        resp: web.StreamResponse | None = None
        try:
            async with self._session.request(
                request.method,
                f"http://localhost{request.rel_url}",
                headers=_forward_headers(request),
                data=data,
                allow_redirects=False,
            ) as upstream:
                resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for k, v in upstream.headers.items():
                    if k.lower() not in HOP_BY_HOP:
                        resp.headers.add(k, v)
                if link.shaped:  # and so does the response: first byte after one-way delay
                    await delay(link, self._rng)
                await resp.prepare(request)
                async for chunk in upstream.content.iter_any():
                    if link.shaped:
                        await asyncio.sleep(transfer_time_s(link, len(chunk), self._rng))
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
        except (aiohttp.ClientConnectionError, FileNotFoundError) as exc:
            log.debug("client proxy %s: upstream %s: %s", self.port, self.uds_path, exc)
            if resp is not None and resp.prepared:
                return resp  # headers already sent: the client sees a truncated body
            return web.json_response(
                {"errcode": "M_UNKNOWN", "error": f"homeserver unreachable: {exc}"}, status=502
            )
