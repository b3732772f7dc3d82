"""Start a real `meshsim up` controller as a subprocess in a private state root and drive it.

Used by the tests and the benchmarks; handy for scripts too.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from .kernel.names import address

MESHSIM = str(Path(sys.executable).with_name("meshsim"))
#: Debian's chromium, with the flags it needs here (root, no network beyond loopback).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port_base(count: int) -> int:
    """A base port B with B..B+count-1 free, below the kernel's ephemeral range (32768+)."""
    for _ in range(200):
        base = random.randrange(20000, 32768 - count, 100)
        socks: list[socket.socket] = []
        try:
            for p in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free range of client ports")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sim:
    """A running controller: REST helpers plus commands inside its nodes."""

    def __init__(
        self,
        home: Path,
        *args: str,
        kind: str = "router",
        port: int | None = None,
        new_session: bool = False,
        client_ports: int = 64,
    ) -> None:
        self.home = home
        self.port = port or free_port()
        self.client_port_base = free_port_base(client_ports)
        self.env = {**os.environ, "MESHSIM_HOME": str(home)}
        self.log = home / "controller.log"
        home.mkdir(parents=True, exist_ok=True)
        self._logf = open(self.log, "ab")  # noqa: SIM115  (lives as long as the controller)
        self.proc = subprocess.Popen(
            [MESHSIM, "up", "--port", str(self.port), "--kind", kind,
             "--client-port-base", str(self.client_port_base), *args],
            env=self.env,
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
        self.host = args[args.index("--host") + 1] if "--host" in args else "127.0.0.1"
        self.http = httpx.Client(base_url=f"http://{self.host}:{self.port}", timeout=120)
        try:
            self._wait_ready()
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            subprocess.run([MESHSIM, "clean"], env=self.env, capture_output=True, timeout=120)
            raise
        self.token = self._token()
        if self.token:
            self.http.headers["Authorization"] = f"Bearer {self.token}"
        self.run = self.http.get("/api/status").json()["run"]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"meshsim up exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if self.http.get("/api/status").status_code in (200, 401):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"meshsim up did not answer:\n{self.log.read_text()}")
            time.sleep(0.1)

    def _token(self) -> str | None:
        for info in (self.home / "runs").glob("*/controller.json"):
            data = json.loads(info.read_text())
            if data.get("pid") == self.proc.pid:
                return data.get("token")
        return None

    def client_url(self, sid: int) -> str:
        return f"http://127.0.0.1:{self.client_port_base + sid}"

    # REST
    def get(self, path: str) -> Any:
        r = self.http.get(path)
        r.raise_for_status()
        return r.json()

    def req(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return self.http.request(method, path, json=body)

    def add(self, x: float, y: float, kind: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"x": x, "y": y}
        if kind:
            body["kind"] = kind
        r = self.req("POST", "/api/servers", body)
        assert r.status_code == 201, r.text
        return r.json()

    def wait_state(self, sid: int, state: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            s = self.get(f"/api/servers/{sid}")
            if s["state"] == state:
                return s
            if s["state"] == "failed" and state != "failed":
                raise AssertionError(f"server {sid} failed: {s.get('reason')}")
            if time.monotonic() > deadline:
                raise AssertionError(f"server {sid} is {s['state']}, not {state}")
            time.sleep(0.2)

    # inside nodes
    def netns(self, node: int) -> str:
        return f"ms{self.run}-{node}"

    def exec(
        self, node: int, *argv: str, timeout: float = 60, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.netns(node), *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def popen(self, node: int, *argv: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.netns(node), *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def cli(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([MESHSIM, *argv], env=self.env, capture_output=True, text=True, timeout=timeout)

    def rtt_ms(
        self, src: int, dst: int, count: int = 20, interval: float = 0.05, port: int = 7001
    ) -> dict[str, Any]:
        """Median/p99 RTT measured in user space with the project's UDP prober."""
        echo = self.popen(
            dst, sys.executable, "-m", "meshsim.linkemu.probe", "echo", "--port", str(port), "--seconds", "60"
        )
        try:
            time.sleep(0.3)
            out = self.exec(
                src,
                sys.executable,
                "-m",
                "meshsim.linkemu.probe",
                "ping",
                "--dst",
                address(dst),
                "--port",
                str(port),
                "--count",
                str(count),
                "--interval",
                str(interval),
                check=True,
            )
            return json.loads(out.stdout)
        finally:
            echo.kill()
            echo.wait()

    def stop(self, keep_logs: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.http.close()
        if keep_logs:
            import shutil

            for log in (self.home / "runs").glob("*/servers/*/homeserver.log"):
                shutil.copy(log, self.home / f"server{log.parent.name}.log")
        self.cli("clean")
        self._logf.close()
