"""One Synapse process inside a network namespace: prepare its files, start, health, stop.

`SynapseServer` is a handle; its `state` is one of new / prepared / starting / up / stopped /
failed, with `reason` set on failure. Nothing here blocks for long on the event loop:
`start()` only spawns, `wait_ready()` and `stop()` are async, `prepare()` does file and database
work of a few tens of ms (run it in a thread when booting many). `BootLimiter` caps how many
servers boot at once; one that fails to boot never holds up the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from signedjson.key import generate_signing_key, write_signing_keys

from meshsim.homeserver import _run, ksm
from meshsim.homeserver.certs import CertificateAuthority
from meshsim.homeserver.config import (
    PostgresDB,
    Secrets,
    ServerPaths,
    SqliteDB,
    log_config,
    synapse_config,
)
from meshsim.homeserver.postgres import PostgresCluster
from meshsim.kernel import names

STATES = ("new", "prepared", "starting", "up", "stopped", "failed")
StateCallback = Callable[["SynapseServer", str, str | None], None]


class ServerFailed(RuntimeError):
    """A server did not come up; the message carries the reason and the last log lines."""


@dataclass
class SynapseSpec:
    """Everything that decides one server's files and process."""

    server_id: int
    netns: str
    data_dir: Path
    secrets: Secrets
    postgres: PostgresCluster | None = None  # None: SQLite in the data dir
    telemetry_socket: str | None = None
    python: str = sys.executable
    public_baseurl: str | None = None
    presence: bool = False
    cache_factor: float = 0.5
    cp_max: int = 3
    ksm: str = field(default_factory=ksm.mode_from_env)  # memory merging: see meshsim.homeserver.ksm
    extra_config: dict[str, Any] = field(default_factory=dict)  # merged over the generated yaml

    @property
    def server_name(self) -> str:
        return names.server_name(self.server_id)

    @property
    def address(self) -> str:
        return names.address(self.server_id)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _tail(path: Path, n: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * n))
            return [line.decode(errors="replace") for line in deque(f.read().splitlines(), maxlen=n)]
    except FileNotFoundError:
        return []


class SynapseServer:
    def __init__(
        self, spec: SynapseSpec, ca: CertificateAuthority, on_state: StateCallback | None = None
    ) -> None:
        self.spec = spec
        self.ca = ca
        self.paths = ServerPaths(spec.data_dir)
        self.on_state = on_state
        self.state = "new"
        self.reason: str | None = None
        self.boot_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0

    def __repr__(self) -> str:
        return f"SynapseServer({self.spec.server_name}, {self.state})"

    def _set(self, state: str, reason: str | None = None) -> None:
        self.state, self.reason = state, reason
        if self.on_state is not None:
            self.on_state(self, state, reason)

    # -- files ---------------------------------------------------------------------------------

    @property
    def database(self) -> PostgresDB | SqliteDB:
        if self.spec.postgres is None:
            return SqliteDB(str(self.paths.sqlite_db))
        return PostgresDB(str(self.spec.postgres.socket_dir), self.spec.server_name, cp_max=self.spec.cp_max)

    def config(self) -> dict[str, Any]:
        cfg = synapse_config(
            server_id=self.spec.server_id,
            paths=self.paths,
            database=self.database,
            secrets=self.spec.secrets,
            telemetry_socket=self.spec.telemetry_socket,
            public_baseurl=self.spec.public_baseurl,
            presence=self.spec.presence,
            cache_factor=self.spec.cache_factor,
        )
        return _deep_merge(cfg, self.spec.extra_config)

    def prepare(self) -> None:
        """Data dir, signing key and TLS cert (kept if present), config files, database. Idempotent."""
        p = self.paths
        p.check_socket_paths()
        p.data_dir.mkdir(parents=True, exist_ok=True)
        p.media_store.mkdir(exist_ok=True)
        if not p.signing_key.exists():
            key = generate_signing_key("a_" + secrets.token_hex(2))
            fd = os.open(p.signing_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                write_signing_keys(f, [key])
        if not (p.tls_cert.exists() and p.tls_key.exists()):
            self.ca.write_server_cert(self.spec.server_name, self.spec.address, p.tls_cert, p.tls_key)
        p.log_config.write_text(yaml.safe_dump(log_config(p), sort_keys=False))
        fd = os.open(p.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(self.config(), f, sort_keys=False)
        if self.spec.postgres is not None:
            self.spec.postgres.create_database(self.spec.server_name)
        if self.state in ("new", "stopped", "failed"):
            self._set("prepared")

    # -- process -------------------------------------------------------------------------------

    def argv(self) -> list[str]:
        synapse = ["synapse.app.homeserver", "-c", str(self.paths.config)]
        return [
            "ip",
            "netns",
            "exec",
            self.spec.netns,
            *ksm.wrap_argv(self.spec.ksm, self.spec.python, synapse),
        ]

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Spawn Synapse (non-blocking). Call `prepare()` first and `wait_ready()` after."""
        if self.running():
            return
        if self.state == "new":
            raise RuntimeError(f"{self.spec.server_name}: prepare() before start()")
        for sock in (self.paths.client_socket, self.paths.metrics_socket):
            sock.unlink(missing_ok=True)
        with open(self.paths.console_log, "ab") as console:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            self._proc = _run.spawn(self.argv(), stdout=console, env=env, cwd=str(self.paths.data_dir))
        self._started_at = time.monotonic()
        self.boot_seconds = None
        self._set("starting")

    def poll(self) -> str:
        """Refresh `state` from the process (an `up` server that exited becomes `failed`)."""
        if self._proc is not None and self.state in ("starting", "up"):
            rc = self._proc.poll()
            if rc is not None:
                self._set("failed", f"exited with code {rc}")
        return self.state

    def _uds_client(self, timeout: float = 10.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(self.paths.client_socket)),
            base_url="http://localhost",
            headers={"X-Forwarded-For": "127.0.0.1"},
            timeout=timeout,
        )

    async def healthy(self) -> bool:
        """One /health probe over the UNIX socket."""
        if not self.paths.client_socket.exists():
            return False
        try:
            async with self._uds_client(timeout=2.0) as client:
                return (await client.get("/health")).status_code == 200
        except httpx.HTTPError:
            return False

    async def wait_ready(self, timeout: float = 120.0, interval: float = 0.2) -> None:
        """Poll /health until 200; raise ServerFailed (state failed) on exit or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is None:
                raise ServerFailed(f"{self.spec.server_name}: not started")
            rc = self._proc.poll()
            if rc is not None:
                self._fail(f"exited with code {rc} while starting")
            if await self.healthy():
                self.boot_seconds = time.monotonic() - self._started_at
                self._set("up")
                return
            if time.monotonic() > deadline:
                self.kill()
                self._fail(f"not healthy after {timeout:.0f} s")
            await asyncio.sleep(interval)

    def _fail(self, reason: str) -> None:
        self._set("failed", reason)
        tail = "\n".join(self.log_tail(15, console=True) + self.log_tail(15))
        raise ServerFailed(f"{self.spec.server_name}: {reason}\n{tail}")

    async def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if self.state != "failed":
            self._set("stopped")

    def kill(self) -> None:
        """SIGKILL, reaped at once."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
            if self.state != "failed":
                self._set("stopped", "killed")

    def rss_bytes(self) -> int | None:
        """Resident set size of the process, or None if it is not running."""
        return self._proc_field("status", "VmRSS:")

    def pss_bytes(self) -> int | None:
        """Proportional set size (shared pages split between sharers): the fair per-server cost."""
        return self._proc_field("smaps_rollup", "Pss:")

    def _proc_field(self, file: str, key: str) -> int | None:
        if not self.running():
            return None
        try:
            with open(f"/proc/{self.pid}/{file}") as f:
                for line in f:
                    if line.startswith(key):
                        return int(line.split()[1]) * 1024
        except (FileNotFoundError, ProcessLookupError):
            return None
        return None

    def log_tail(self, n: int = 50, *, console: bool = False) -> list[str]:
        """Last n lines of homeserver.log (or of the console output: stdout and stderr)."""
        return _tail(self.paths.console_log if console else self.paths.homeserver_log, n)

    # -- users ---------------------------------------------------------------------------------

    async def register_user(self, localpart: str, password: str, *, admin: bool = False) -> str:
        """Create a user via the shared-secret admin API; an existing user is fine. Returns the MXID."""
        user_id = f"@{localpart}:{self.spec.server_name}"
        key = self.spec.secrets.registration_shared_secret.encode()
        async with self._uds_client(timeout=30.0) as client:
            r = await client.get("/_synapse/admin/v1/register")
            r.raise_for_status()
            nonce = r.json()["nonce"]
            parts = (nonce, localpart, password, "admin" if admin else "notadmin")
            mac = hmac.new(key, b"\x00".join(p.encode() for p in parts), hashlib.sha1)
            body = {
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            }
            r = await client.post("/_synapse/admin/v1/register", json=body)
            if r.status_code == 200:
                return str(r.json()["user_id"])
            if r.status_code == 400 and r.json().get("errcode") == "M_USER_IN_USE":
                return user_id
            raise RuntimeError(
                f"{self.spec.server_name}: register {localpart}: {r.status_code} {r.text[:200]}"
            )


class BootLimiter:
    """Caps concurrent boots (start until healthy): many Synapses importing at once thrash 2 cores."""

    def __init__(self, concurrency: int = 2) -> None:
        self._sem = asyncio.Semaphore(concurrency)

    async def boot(self, server: SynapseServer, timeout: float = 180.0) -> bool:
        """prepare + start + wait_ready under the cap; False (state failed, reason set) on failure."""
        async with self._sem:
            try:
                await asyncio.to_thread(server.prepare)
                server.start()
                await server.wait_ready(timeout)
                return True
            except ServerFailed:
                return False
            except Exception as exc:  # a broken prepare must not take down the other boots
                server.kill()
                server._set("failed", f"{type(exc).__name__}: {exc}")
                return False
