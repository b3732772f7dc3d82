"""A throw-away network of namespaces joined by emulated links, for tests and benchmarks (root only).

Follows docs/design.md naming: namespaces `ms{run}-{N}`, node address 10.99.x.y/32 on lo, TAPs created
as `ms{run}t{seq}` and moved in as `eth{peer}`, onlink /32 routes and permanent neighbour entries.
Everything it creates carries the run prefix and is removed by `close()`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

from meshsim.kernel.tap import open_tap
from meshsim.linkemu.client import LinkEmuClient, spawn

_REPO = str(Path(__file__).resolve().parents[2])


def node_addr(n: int) -> str:
    return f"10.99.{(n + 1) // 256}.{(n + 1) % 256}"


def _ip_batch(lines: list[str], netns: str | None = None) -> None:
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    res = subprocess.run(argv, input="\n".join(lines) + "\n", text=True, capture_output=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {res.stderr.strip()}")


class Testbed:
    """Namespaces plus one link emulator process; use as a context manager."""

    __test__ = False  # not a pytest test class

    def __init__(self, run: str | None = None, seed: int | None = None, realtime: int = 0) -> None:
        self.run = run or secrets.token_hex(2)
        self.prefix = f"ms{self.run}"
        self.nodes: list[int] = []
        self.links: dict[str, tuple[int, int]] = {}
        self._seq = 0
        self._procs: list[subprocess.Popen] = []
        self._dir = tempfile.mkdtemp(prefix=f"{self.prefix}-")
        self.control = os.path.join(self._dir, "linkemu.sock")
        self.log_path = os.path.join(self._dir, "linkemu.log")
        self.emu = spawn(self.control, self.log_path, seed=seed, realtime=realtime)
        self.client = LinkEmuClient(self.control)

    def ns(self, n: int) -> str:
        return f"{self.prefix}-{n}"

    def add_nodes(self, count: int) -> list[int]:
        """Create `count` namespaces with their mesh address on lo and forwarding on."""
        new = list(range(len(self.nodes), len(self.nodes) + count))
        _ip_batch([f"netns add {self.ns(n)}" for n in new])
        self.nodes += new
        for n in new:
            _ip_batch(["link set lo up", f"addr add {node_addr(n)}/32 dev lo"], self.ns(n))
            self.sysctl(
                n,
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            )
        return new

    def sysctl(self, n: int, *settings: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.ns(n), "sysctl", "-q", "-w", *settings], check=True)

    def _mac(self, seq: int, side: int) -> str:
        r = self.run
        return f"02:{r[:2]}:{r[2:]}:{(seq >> 8) & 255:02x}:{seq & 255:02x}:{side:02x}"

    def add_link(self, a: int, b: int, ab: dict | None = None, ba: dict | None = None) -> str:
        """Join nodes a and b by an emulated link `a-b` and route each to the other directly."""
        link_id = f"{a}-{b}"
        seq = self._seq
        self._seq += 1
        names = (f"{self.prefix}t{2 * seq}", f"{self.prefix}t{2 * seq + 1}")
        macs = (self._mac(seq, 0), self._mac(seq, 1))
        fds = [open_tap(names[0], macs[0]), open_tap(names[1], macs[1])]
        try:
            _ip_batch(
                [
                    f"link set dev {names[0]} netns {self.ns(a)} name eth{b}",
                    f"link set dev {names[1]} netns {self.ns(b)} name eth{a}",
                ]
            )
            for me, peer, peer_mac in ((a, b, macs[1]), (b, a, macs[0])):
                _ip_batch(
                    [
                        f"link set dev eth{peer} up",
                        f"neigh replace {node_addr(peer)} lladdr {peer_mac} dev eth{peer} nud permanent",
                        f"route replace {node_addr(peer)}/32 via {node_addr(peer)} dev eth{peer} onlink",
                    ],
                    self.ns(me),
                )
            self.client.add(link_id, fds[0], fds[1], ab or {}, ba or {})
        finally:
            for fd in fds:
                os.close(fd)
        self.links[link_id] = (a, b)
        return link_id

    def route(self, src: int, dst: int, via: int) -> None:
        """In node src, reach dst through neighbour via."""
        _ip_batch(
            [f"route replace {node_addr(dst)}/32 via {node_addr(via)} dev eth{via} onlink"], self.ns(src)
        )

    def popen(self, n: int, *args: str, stdout: int | None = subprocess.PIPE) -> subprocess.Popen:
        """Run `python -m meshsim.linkemu.probe ARGS` inside node n."""
        env = dict(os.environ, PYTHONPATH=_REPO)
        argv = ["ip", "netns", "exec", self.ns(n), sys.executable, "-m", "meshsim.linkemu.probe", *args]
        proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env)
        self._procs.append(proc)
        return proc

    def ping(self, src: int, dst: int, count: int, interval: float, wait: float, port: int) -> dict:
        """Run the UDP prober from src to an echo already listening in dst; return its JSON result."""
        args = ["--dst", node_addr(dst), "--port", str(port), "--count", str(count)]
        p = self.popen(src, "ping", *args, "--interval", str(interval), "--wait", str(wait))
        out, err = p.communicate(timeout=count * interval + wait + 60)
        if p.returncode != 0:
            raise RuntimeError(f"prober failed: {err}")
        return json.loads(out)

    def emu_cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the emulator process."""
        with open(f"/proc/{self.emu.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self.client.close()
        if self.emu.poll() is None:
            self.emu.terminate()
            try:
                self.emu.wait(5)
            except subprocess.TimeoutExpired:
                self.emu.kill()
                self.emu.wait()
        for n in self.nodes:
            subprocess.run(["ip", "netns", "del", self.ns(n)], capture_output=True)
        for name in ("linkemu.sock", "linkemu.log"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self._dir, name))
        os.rmdir(self._dir)

    def __enter__(self) -> Testbed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of `values`, nearest-rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def goodput_bps(samples: list[list[float]], skip_s: float) -> float:
    """Receive rate (bit/s) from sink samples [(t, cumulative bytes)], ignoring the first `skip_s`."""
    start = next((s for s in samples if s[0] >= skip_s), samples[-1])
    end = samples[-1]
    if end[0] <= start[0]:
        return 0.0
    return (end[1] - start[1]) * 8 / (end[0] - start[0])
