"""Robustness workloads against a real controller: fuzzing, emulator crashes, telemetry and API load.

Each workload takes a running `meshsim.harness.Sim` (router nodes) and returns a dict of figures. The
integration tests run them briefly and assert on the figures; `bench/robustness.py` runs them longer and
reports. `consistency(sim)` is the shared oracle: the model, the kernel and the link emulator agree.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from meshsim.harness import Sim
from meshsim.kernel.names import address
from meshsim.linkemu.client import LinkEmuClient, LinkEmuError

# -- the oracle -------------------------------------------------------------------------------------


def kernel_routes(sim: Sim, node: int) -> dict[str, str]:
    """Node's routes with a gateway, read from the kernel: {dst address: gateway address}."""
    out = subprocess.run(
        ["ip", "-n", sim.netns(node), "-j", "route"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    return {r["dst"]: r["gateway"] for r in json.loads(out or "[]") if "gateway" in r}


def run_netns(sim: Sim) -> set[int]:
    """Node ids of the namespaces this run has right now."""
    prefix = f"ms{sim.run}-"
    names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    return {int(n[len(prefix) :]) for n in names if n.startswith(prefix) and n[len(prefix) :].isdigit()}


def emulator_links(sim: Sim) -> set[tuple[int, int]]:
    """Links the link emulator carries, asked over its own control socket."""
    deadline = time.monotonic() + 5  # it may be restarting after a kill
    while True:
        try:
            client = LinkEmuClient(str(sim.home / "runs" / sim.run / "linkemu.sock"))
            try:
                links = client.stats()
            finally:
                client.close()
            break
        except LinkEmuError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    return {tuple(int(x) for x in key.split("-")) for key in links}  # type: ignore[misc]


def check_topology(topo: dict[str, Any]) -> list[str]:
    """Problems with a GET /api/topology body (empty when it is valid)."""
    problems: list[str] = []
    ids = [s["id"] for s in topo["servers"]]
    if len(set(ids)) != len(ids):
        problems.append(f"duplicate server ids {ids}")
    servers = set(ids)
    up = {s["id"] for s in topo["servers"] if s["up"]}
    linked: set[tuple[int, int]] = set()
    for lk in topo["links"]:
        a, b = lk["a"], lk["b"]
        if a not in servers or b not in servers or a >= b:
            problems.append(f"link {a}-{b}: not a pair of servers (a < b)")
        if a not in up or b not in up:
            problems.append(f"link {a}-{b}: an end is down")
        if not lk["cut"]:
            linked |= {(a, b), (b, a)}
        for f in ("bandwidth", "latency", "jitter", "loss"):
            if not isinstance(lk[f], int | float) or lk[f] < 0:
                problems.append(f"link {a}-{b}: bad {f} {lk[f]!r}")
    for src, table in topo["routes"].items():
        if int(src) not in servers:
            problems.append(f"routes of unknown server {src}")
        for dst, hop in table.items():
            if int(dst) not in servers or hop not in servers:
                problems.append(f"route {src}->{dst} via {hop}: unknown server")
            elif (int(src), hop) not in linked:
                problems.append(f"route {src}->{dst} via {hop}: {src} and {hop} are not linked")
    return problems


def consistency(sim: Sim) -> list[str]:
    """Everything that disagrees between the API's model, the kernel routes and the emulator."""
    topo = sim.get("/api/topology")
    problems = check_topology(topo)
    servers = {s["id"] for s in topo["servers"]}
    if run_netns(sim) != servers:
        problems.append(f"namespaces {sorted(run_netns(sim))} != servers {sorted(servers)}")
    for sid in sorted(servers):
        model = {address(int(d)): address(h) for d, h in topo["routes"].get(str(sid), {}).items()}
        try:
            kernel = kernel_routes(sim, sid)
        except subprocess.CalledProcessError as exc:
            problems.append(f"node {sid}: cannot read routes: {exc.stderr.strip()}")
            continue
        if kernel != model:
            problems.append(f"node {sid}: kernel routes {kernel} != model {model}")
    model_links = {(lk["a"], lk["b"]) for lk in topo["links"]}
    emu = emulator_links(sim)
    if emu != model_links:
        problems.append(f"emulator links {sorted(emu)} != model links {sorted(model_links)}")
    return problems


def grid(n: int, spacing: float = 150.0, cols: int = 4) -> dict[str, Any]:
    """A topology file with n routers on a grid (neighbours link, diagonals mostly too)."""
    servers = [
        {"id": i, "x": 100 + (i % cols) * spacing, "y": 100 + (i // cols) * spacing, "kind": "router"}
        for i in range(n)
    ]
    return {"version": 1, "servers": servers}


def load_topology(sim: Sim, topo: dict[str, Any]) -> None:
    sim.req("PUT", "/api/topology/file", topo).raise_for_status()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# -- websocket pages --------------------------------------------------------------------------------


class Page:
    """A well-behaved websocket reader: reads every message, checks `seq`, remembers what it saw."""

    def __init__(self, url: str, keep: frozenset[str] = frozenset({"emulator", "link_stats"})) -> None:
        self.url = url
        self.keep = keep
        self.count = 0
        self.types: collections.Counter[str] = collections.Counter()
        self.seq_errors = 0
        self.close_code: int | None = None
        self.kept: list[tuple[float, dict[str, Any]]] = []
        self.connected = asyncio.Event()
        self._last_seq: int | None = None

    async def run(self, stop: asyncio.Event) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        async with connect(self.url, max_size=None, ping_interval=None) as ws:
            self.connected.set()
            recv = asyncio.ensure_future(ws.recv())
            halt = asyncio.ensure_future(stop.wait())
            try:
                while True:
                    done, _ = await asyncio.wait({recv, halt}, return_when=asyncio.FIRST_COMPLETED)
                    if recv not in done:
                        break
                    try:
                        raw = recv.result()
                    except ConnectionClosed as exc:
                        self.close_code = exc.rcvd.code if exc.rcvd else 1006
                        break
                    self._seen(json.loads(raw))
                    recv = asyncio.ensure_future(ws.recv())
            finally:
                recv.cancel()
                halt.cancel()

    def _seen(self, msg: dict[str, Any]) -> None:
        self.count += 1
        self.types[msg["type"]] += 1
        seq = msg["seq"]
        if self._last_seq is not None and seq != self._last_seq + 1:
            self.seq_errors += 1
        self._last_seq = seq
        if msg["type"] in self.keep:
            self.kept.append((time.monotonic(), msg))


class PageThread:
    """A Page on its own event loop in a thread, for synchronous workloads."""

    def __init__(self, url: str) -> None:
        self.page = Page(url)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._ready = threading.Event()
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("websocket did not connect")

    def _main(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            task = asyncio.ensure_future(self.page.run(self._stop))
            await self.page.connected.wait()
            self._ready.set()
            await task

        self._loop.run_until_complete(main())

    def close(self) -> Page:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        return self.page


def ws_url(sim: Sim) -> str:
    return f"ws://127.0.0.1:{sim.port}/api/ws"


# -- 1. fuzzing -------------------------------------------------------------------------------------


def _routers_only(case: Any) -> Any:
    """Turn requested Synapse servers into routers (same endpoint, same validation, no minute-long boot)."""
    body = getattr(case, "body", None)
    if isinstance(body, dict):
        if body.get("kind") == "synapse":
            body["kind"] = "router"
        servers = body.get("servers")
        if isinstance(servers, list):
            for s in servers:
                if isinstance(s, dict) and s.get("kind", "synapse") == "synapse" and "id" in s:
                    s["kind"] = "router"
    return case


def fuzz(sim: Sim, examples: int = 10, seed: int = 1, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fuzz every operation of /openapi.json (positive and negative cases, free and real path ids).

    Before each operation the baseline topology is loaded; after it, `consistency` must hold. Returns
    request counts by status, every 5xx (with a curl line) and every inconsistency.
    """
    import schemathesis

    base = base or grid(5)
    url = f"http://127.0.0.1:{sim.port}"
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    tally = _Tally(sim, url)
    inconsistent: list[dict[str, Any]] = []
    t0 = time.monotonic()
    rnd = random.Random(seed)
    for op in ops:
        load_topology(sim, base)
        topo = sim.get("/api/topology")
        ids = [s["id"] for s in topo["servers"]]
        pairs = [(lk["a"], lk["b"]) for lk in topo["links"]]
        real = _real_path_params([p.name for p in op.path_parameters], ids, pairs)
        label = op_label(op)
        for strategy in _strategies(op, real):
            _drive(
                strategy,
                examples,
                rnd.randrange(2**32),
                functools.partial(tally.call, label),
            )
        problems = consistency(sim)
        if problems:
            inconsistent.append({"op": op_label(op), "problems": problems})
    load_topology(sim, base)
    final = consistency(sim)
    if final:
        inconsistent.append({"op": "final", "problems": final})
    return {
        "operations": len(ops),
        "requests": sum(tally.statuses.values()),
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "per_operation": dict(sorted(tally.per_op.items())),
        "failures": tally.failures,
        "inconsistent": inconsistent,
        "seconds": time.monotonic() - t0,
    }


def fuzz_sequences(
    sim: Sim, sequences: int = 5, steps: int = 20, seed: int = 5, base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Random runs of `steps` fuzz cases over all operations on one evolving state, then `consistency`.

    Unlike `fuzz`, state carries over between requests (delete, then re-add, then pin...). Cases come
    from a pool drawn by schemathesis up front; their path ids are mostly replaced by ids of servers
    and links that exist at that moment.
    """
    import schemathesis

    base = base or grid(5)
    url = f"http://127.0.0.1:{sim.port}"
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    rnd = random.Random(seed)
    pool = _case_pool(ops, 12, rnd.randrange(2**32))
    keys = sorted(pool)
    tally = _Tally(sim, url)
    inconsistent: list[dict[str, Any]] = []
    t0 = time.monotonic()
    for _ in range(sequences):
        load_topology(sim, base)
        trail: list[str] = []
        for _ in range(steps):
            label, mode = rnd.choice(keys)
            case = rnd.choice(pool[(label, mode)]).derive()
            topo = sim.get("/api/topology")
            real = _real_path_params(
                list(case.path_parameters or {}),
                [s["id"] for s in topo["servers"]],
                [(lk["a"], lk["b"]) for lk in topo["links"]],
            )
            if real and rnd.random() < 0.75:
                case.path_parameters = {**case.path_parameters, **rnd.choice(real)}
            tally.call(label, case)
            trail.append(f"{case.method} {case.formatted_path}")
        problems = consistency(sim)
        if problems:
            inconsistent.append({"trail": trail, "problems": problems})
    return {
        "sequences": sequences,
        "steps": steps,
        "requests": sum(tally.statuses.values()),
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "failures": tally.failures,
        "inconsistent": inconsistent,
        "seconds": time.monotonic() - t0,
    }


def _case_pool(ops: list[Any], per_op: int, seed: int) -> dict[tuple[str, str], list[Any]]:
    """Up to `per_op` positive and `per_op` negative cases for every operation (nothing is sent)."""
    from schemathesis import GenerationMode

    pool: dict[tuple[str, str], list[Any]] = {}
    for op in ops:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            cases: list[Any] = []
            _drive(op.as_strategy(generation_mode=mode).map(_routers_only), per_op, seed, cases.append)
            if cases:
                pool[(op_label(op), mode.value)] = cases
    return pool


def op_label(op: Any) -> str:
    return f"{op.method.upper()} {op.path}"


def _strategies(op: Any, real: list[dict[str, Any]]) -> list[Any]:
    """Positive and negative cases, each with generated path ids and with ids that exist."""
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    out = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        out.append(op.as_strategy(generation_mode=mode))
        if real:
            out.append(
                st.sampled_from(real).flatmap(
                    lambda p, m=mode: op.as_strategy(generation_mode=m, path_parameters=p)
                )
            )
    return [s.map(_routers_only) for s in out]


def _drive(strategy: Any, examples: int, seed: int, check: Any, arg: str = "case") -> None:
    """Run `check(case)` on `examples` cases drawn by Hypothesis (no shrinking: failures are logged)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from hypothesis.errors import Unsatisfiable

    @hseed(seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(**{arg: strategy})
    def one(**kw: Any) -> None:
        check(kw[arg])

    with contextlib.suppress(Unsatisfiable):  # e.g. negative cases of an operation without parameters
        one()


@dataclasses.dataclass
class _Tally:
    """Sends fuzz cases and counts the answers; 5xx and no-answer are failures."""

    sim: Sim
    url: str
    statuses: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    per_op: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    failures: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def call(self, label: str, case: Any) -> None:
        try:
            resp = case.call(base_url=self.url, timeout=60)
        except Exception as exc:
            self.failures.append({"op": label, "error": repr(exc), "curl": case.as_curl_command()})
            return
        self.statuses[resp.status_code] += 1
        self.per_op[label] += 1
        if resp.status_code >= 500:
            self.failures.append(
                {
                    "op": label,
                    "status": resp.status_code,
                    "body": resp.text[:300],
                    "curl": case.as_curl_command(),
                }
            )
        if self.sim.proc.poll() is not None:
            raise RuntimeError(f"controller exited {self.sim.proc.returncode}")


def _real_path_params(names: list[str], ids: list[int], pairs: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Path parameters naming servers and links that exist (random ids are nearly always 404)."""
    if names == ["sid"]:
        return [{"sid": i} for i in ids]
    if "a" in names and "b" in names and pairs:
        out = [{"a": a, "b": b} for a, b in pairs] + [{"a": b, "b": a} for a, b in pairs]
        if "field" in names:
            return [{**p, "field": f} for p in out for f in ("bandwidth", "latency", "jitter", "loss")]
        return out
    return []


def fuzz_telemetry(sim: Sim, datagrams: int = 2000, seed: int = 2) -> dict[str, Any]:
    """Throw hostile datagrams at the telemetry socket; a valid event afterwards must still arrive."""
    rnd = random.Random(seed)
    path = str(sim.home / "runs" / sim.run / "telemetry.sock")
    good = _telemetry(0, "$fuzz-good")
    junk: list[bytes] = [
        b"",
        b"\xff\xfe\x00",
        b"{",
        b"[]",
        b"null",
        json.dumps({"type": "event_sent"}).encode(),
        json.dumps({**good, "server": "0"}).encode(),
        json.dumps({**good, "server": True}).encode(),
        json.dumps({**good, "destinations": ["x"]}).encode(),
        json.dumps({**good, "destinations": list(range(70000))}).encode()[:65000],
        json.dumps({**good, "event_id": "x" * 5000}).encode(),
        json.dumps({**good, "type": "server_removed", "id": 0}).encode(),
        json.dumps({**good, "type": "snapshot"}).encode(),
        b"9" * 60000,
        json.dumps({**good, "ts": 10**400}).encode(),
    ]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sent = 0
    try:
        for i in range(datagrams):
            data = junk[i % len(junk)] if i < len(junk) * 4 else rnd.randbytes(rnd.randrange(0, 2000))
            try:
                sock.sendto(data, path)
                sent += 1
            except OSError:
                pass
        page = PageThread(ws_url(sim))
        page.page.keep = frozenset({"event_sent"})
        try:
            sock.sendto(json.dumps(good).encode(), path)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not page.page.kept:
                time.sleep(0.05)
        finally:
            page.close()
    finally:
        sock.close()
    topo_ok = not check_topology(sim.get("/api/topology"))
    return {
        "datagrams": sent,
        "valid_event_delivered": any(m["event_id"] == "$fuzz-good" for _, m in page.page.kept),
        "controller_alive": sim.proc.poll() is None,
        "topology_valid": topo_ok,
    }


# -- 2. emulator crash ------------------------------------------------------------------------------


def emulator_pid(sim: Sim) -> int:
    return int((sim.home / "runs" / sim.run / "pids" / "linkemu").read_text())


def _line3(sim: Sim, latency: float) -> None:
    load_topology(
        sim,
        {
            "version": 1,
            "servers": [{"id": i, "x": 100 + 200 * i, "y": 100, "kind": "router"} for i in range(3)],
        },
    )
    for a, b in ((0, 1), (1, 2)):
        sim.req(
            "PUT", f"/api/links/{a}/{b}", {"latency": latency, "bandwidth": 100_000_000}
        ).raise_for_status()


def emulator_crash(
    sim: Sim,
    kills: int = 2,
    latency: float = 20.0,
    interval: float = 0.02,
    settle: float = 0.5,
    after: float = 5.0,
) -> dict[str, Any]:
    """SIGKILL the link emulator mid-traffic `kills` times on a 0-1-2 line with pinned latency.

    Per kill: probes from 0 to 2 every `interval` s; the emulator is killed `settle` s after they
    start to flow, and probing goes on for `after` s; the
    websocket must say down then up; traffic must flow again with the pinned RTT; link counters
    (from the websocket's link_stats and the REST link view) must never go backwards.
    """
    _line3(sim, latency)
    page = PageThread(ws_url(sim))
    probe = [sys.executable, "-m", "meshsim.linkemu.probe"]
    echo = sim.popen(2, *probe, "echo", "--port", "7301", "--seconds", str(30 + kills * 15))
    rounds: list[dict[str, Any]] = []
    rest_samples: list[dict[str, Any]] = []
    try:
        time.sleep(0.3)
        for _ in range(kills):
            count = int((settle + after) / interval)
            before = _emu_packets(sim)
            ping = sim.popen(
                0,
                *probe,
                "ping",
                "--dst",
                address(2),
                "--port",
                "7301",
                "--count",
                str(count),
                "--interval",
                str(interval),
            )
            _wait_traffic(sim, before)  # the prober takes a while to start on a busy machine
            time.sleep(settle)
            rest_samples.append(sim.get("/api/links/0/1")["stats"])
            old = emulator_pid(sim)
            killed_at = time.monotonic()
            os.kill(old, signal.SIGKILL)
            out, err = ping.communicate(timeout=60)
            result = json.loads(out)
            rest_samples.append(sim.get("/api/links/0/1")["stats"])
            rounds.append(
                _crash_round(result, old, emulator_pid(sim), killed_at, page.page, interval, latency)
            )
        time.sleep(1.5)  # one more stats tick after the last restart
        rest_samples.append(sim.get("/api/links/0/1")["stats"])
    finally:
        echo.kill()
        echo.wait()
        seen = page.close()
    counters = _counters_monotonic(seen, rest_samples)
    return {
        "kills": kills,
        "rounds": rounds,
        "survived": sum(r["recovered"] for r in rounds),
        "emulator_messages": [m["state"] for _, m in seen.kept if m["type"] == "emulator"],
        "page_close_code": seen.close_code,
        "seq_errors": seen.seq_errors,
        **counters,
        "consistency": consistency(sim),
    }


def _emu_packets(sim: Sim) -> int:
    """Packets the current emulator has carried 0 -> 1 (0 while it is restarting)."""
    try:
        client = LinkEmuClient(str(sim.home / "runs" / sim.run / "linkemu.sock"), timeout=2)
        try:
            return client.stats().get("0-1", {}).get("ab", {}).get("packets", 0)
        finally:
            client.close()
    except Exception:
        return 0


def _wait_traffic(sim: Sim, before: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while _emu_packets(sim) < before + 5:
        if time.monotonic() > deadline:
            raise RuntimeError("no probe traffic on link 0-1")
        time.sleep(0.05)


def _crash_round(
    result: dict[str, Any], old: int, new: int, killed_at: float, page: Page, interval: float, latency: float
) -> dict[str, Any]:
    rtts = result["rtt_ms"]
    lost = [i for i, r in enumerate(rtts) if r is None]
    first_lost = lost[0] if lost else None
    last_lost = lost[-1] if lost else None
    tail = rtts[(last_lost + 1) if last_lost is not None else 0 :]
    tail_ok = [r for r in tail if r is not None]
    states = [(t, m["state"]) for t, m in page.kept if m["type"] == "emulator" and t >= killed_at]
    down_at = next((t for t, s in states if s == "down"), None)
    up_at = next((t for t, s in states if s == "up"), None)
    outage_s = (last_lost - first_lost + 1) * interval if lost else 0.0
    return {
        "old_pid": old,
        "new_pid": new,
        "probes": len(rtts),
        "lost": len(lost),
        "outage_s": outage_s,
        "down_after_s": None if down_at is None else down_at - killed_at,
        "up_after_s": None if up_at is None else up_at - killed_at,
        "rtt_after_ms": statistics.median(tail_ok) if tail_ok else None,
        "expected_rtt_ms": 4 * latency,
        "recovered": bool(
            new != old
            and up_at is not None
            and len(tail_ok) >= 25
            and 4 * latency <= statistics.median(tail_ok) <= 4 * latency + 20  # a busy host adds ms
        ),
    }


def _counters_monotonic(page: Page, rest: list[dict[str, Any]]) -> dict[str, Any]:
    """Do byte/packet counters of link 0-1 only grow, in the websocket stream and over REST?"""
    series: list[dict[str, Any]] = []
    for _, m in page.kept:
        if m["type"] == "link_stats":
            series += [lk["stats"] for lk in m["links"] if (lk["a"], lk["b"]) == (0, 1)]
    backwards = 0
    for samples in (series, rest):
        for prev, cur in zip(samples, samples[1:], strict=False):
            for d in ("ab", "ba"):
                for f in ("bytes", "packets"):
                    if cur[d][f] < prev[d][f]:
                        backwards += 1
    return {
        "stats_samples": len(series),
        "counter_regressions": backwards,
        "bytes_before_first_kill": rest[0]["ab"]["bytes"] if rest else 0,
        "bytes_at_end": rest[-1]["ab"]["bytes"] if rest else 0,
    }


# -- 3. load ----------------------------------------------------------------------------------------


def _telemetry(i: int, event_id: str | None = None) -> dict[str, Any]:
    kinds = ("event_sent", "event_received", "event_delivered")
    kind = kinds[i % 3]
    msg: dict[str, Any] = {
        "type": kind,
        "event_id": event_id or f"$load{i}",
        "room_id": "!load:synapse0",
        "server": i % 5,
        "origin": 0,
        "ts": int(time.time() * 1000),
    }
    if kind == "event_sent":
        msg |= {"sender": "@u:synapse0", "event_type": "m.room.message", "destinations": [1, 2, 3, 4]}
    elif kind == "event_received":
        msg |= {"sender": "@u:synapse0", "event_type": "m.room.message"}
    else:
        msg |= {"destination": 1 + i % 4, "method": "federation"}
    return msg


async def _telemetry_async(sim: Sim, rate: int, seconds: float, pages: int) -> dict[str, Any]:
    path = str(sim.home / "runs" / sim.run / "telemetry.sock")
    readers = [Page(ws_url(sim), keep=frozenset()) for _ in range(pages)]
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(p.run(stop)) for p in readers]
    await asyncio.wait_for(asyncio.gather(*(p.connected.wait() for p in readers)), 10)
    pid = sim.proc.pid
    rss_before = rss_bytes(pid)
    rss_samples: list[int] = []
    sender = subprocess.Popen(
        [sys.executable, __file__, "send-telemetry", path, str(rate), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        while sender.poll() is None:
            rss_samples.append(rss_bytes(pid))
            await asyncio.sleep(1.0)
        counts = json.loads(sender.stdout.read())  # type: ignore[union-attr]
        elapsed = counts["seconds"]
        await asyncio.sleep(1.5)  # let the pages drain
    finally:
        if sender.poll() is None:
            sender.kill()
        sender.wait()
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    sent, send_errors = counts["sent"], counts["eagain"]
    rss_after = rss_bytes(pid)
    status = sim.get("/api/status")
    telemetry_types = ("event_sent", "event_received", "event_delivered")
    return {
        "rate_target": rate,
        "seconds": elapsed,
        "sent": sent,
        "eagain": send_errors,
        "rate_sent": sent / elapsed,
        "rss_per_event": (rss_after - rss_before) / max(1, sent),
        "pages": [
            {
                "messages": p.count,
                "telemetry": sum(p.types[t] for t in telemetry_types),
                "delivered_ratio": sum(p.types[t] for t in telemetry_types) / max(1, sent),
                "seq_errors": p.seq_errors,
                "close_code": p.close_code,
            }
            for p in readers
        ],
        "rss_before": rss_before,
        "rss_peak": max([rss_after, *rss_samples]),
        "rss_after": rss_after,
        "rss_samples": rss_samples,
        "controller_alive": sim.proc.poll() is None,
        "subscribers_after": status["subscribers"],
    }


def send_telemetry(path: str, rate: int, seconds: float) -> dict[str, int]:
    """Send telemetry datagrams evenly paced at `rate`/s, without blocking, like the Synapse module.

    A datagram the controller has no room for (EAGAIN: its socket queue is full) is counted, not retried.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sent = eagain = 0
    t0 = time.monotonic()
    while (now := time.monotonic()) < t0 + seconds:
        while sent + eagain < int((now - t0) * rate):
            try:
                sock.sendto(json.dumps(_telemetry(sent + eagain)).encode(), path)
                sent += 1
            except BlockingIOError:
                eagain += 1
        time.sleep(0.0005)
    sock.close()
    return {"sent": sent, "eagain": eagain, "seconds": time.monotonic() - t0}


def telemetry_load(sim: Sim, rate: int = 1000, seconds: float = 10, pages: int = 3) -> dict[str, Any]:
    """Telemetry datagrams at `rate`/s for `seconds` with `pages` websocket readers; memory and drops."""
    load_topology(sim, grid(5))
    return asyncio.run(_telemetry_async(sim, rate, seconds, pages))


async def _api_async(
    sim: Sim, n: int, rate: float, seconds: float, seed: int, kill_every: float | None
) -> dict[str, Any]:
    rnd = random.Random(seed)
    url = f"http://127.0.0.1:{sim.port}"
    links: set[tuple[int, int]] = {(lk["a"], lk["b"]) for lk in sim.get("/api/topology")["links"]}
    last_move: dict[int, tuple[float, float]] = {}
    last_pin: dict[tuple[int, int], dict[str, float]] = collections.defaultdict(dict)
    statuses: collections.Counter[str] = collections.Counter()
    errors: list[str] = []
    latencies: list[float] = []
    done = asyncio.Event()
    kills: list[float] = []
    per_lane = rate / n

    async def refresh(client: httpx.AsyncClient) -> None:
        nonlocal links
        while not done.is_set():
            with contextlib.suppress(Exception):
                r = await client.get("/api/topology")
                links = {(lk["a"], lk["b"]) for lk in r.json()["links"]}
            await asyncio.sleep(0.3)

    async def killer(every: float) -> None:
        """SIGKILL the link emulator every `every` s while the requests go on."""
        while not done.is_set():
            await asyncio.sleep(every)
            with contextlib.suppress(OSError, ValueError):
                os.kill(emulator_pid(sim), signal.SIGKILL)
                kills.append(time.monotonic())

    async def lane(client: httpx.AsyncClient, sid: int) -> None:
        """Lane `sid` moves server sid and pins links (sid, j>sid): its requests are in order."""
        t0 = time.monotonic()
        k = 0
        while (start := t0 + k / per_lane) < t0 + seconds:
            k += 1
            await asyncio.sleep(max(0.0, start - time.monotonic()))
            mine = [p for p in links if p[0] == sid]
            if mine and rnd.random() < 0.5:
                pair = rnd.choice(mine)
                field = rnd.choice(("latency", "bandwidth"))
                value: float = (
                    round(rnd.uniform(1, 200), 1) if field == "latency" else rnd.randrange(10**5, 10**8)
                )
                method, path, body, kind = "PUT", f"/api/links/{pair[0]}/{pair[1]}", {field: value}, "pin"
            else:
                xy = (round(rnd.uniform(50, 650), 1), round(rnd.uniform(50, 650), 1))
                method, path, body, kind = "PUT", f"/api/servers/{sid}", {"x": xy[0], "y": xy[1]}, "move"
            t = time.monotonic()
            try:
                r = await client.request(method, path, json=body)
            except httpx.HTTPError as exc:
                errors.append(f"{method} {path}: {exc!r}")
                continue
            latencies.append(time.monotonic() - t)
            statuses[f"{kind} {r.status_code}"] += 1
            if r.status_code >= 500 or (kind == "move" and r.status_code != 200):
                errors.append(f"{method} {path} {body}: {r.status_code} {r.text[:200]}")
            elif r.status_code == 200 and kind == "move":
                last_move[sid] = xy
            elif r.status_code == 200:
                last_pin[pair][field] = value

    limits = httpx.Limits(max_connections=n + 2, max_keepalive_connections=n + 2)
    t0 = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        bg = [asyncio.ensure_future(refresh(client))]
        if kill_every:
            bg.append(asyncio.ensure_future(killer(kill_every)))
        await asyncio.gather(*(lane(client, i) for i in range(n)))
        done.set()
        await asyncio.gather(*bg)
    elapsed = time.monotonic() - t0
    final = sim.get("/api/topology/file")
    lost: list[str] = []
    pos = {s["id"]: (s["x"], s["y"]) for s in final["servers"]}
    for sid, xy in last_move.items():
        if pos.get(sid) != xy:
            lost.append(f"server {sid} at {pos.get(sid)}, last move was {xy}")
    pins = {(p["a"], p["b"]): p for p in final["pins"]}
    for pair, fields in last_pin.items():
        for f, v in fields.items():
            if pins.get(pair, {}).get(f) != v:
                lost.append(f"pin {pair} {f} = {pins.get(pair, {}).get(f)}, last pin was {v}")
    requests = sum(statuses.values()) + len([e for e in errors if "Error" in e])
    return {
        "servers": n,
        "emulator_kills": len(kills),
        "rate_target": rate,
        "seconds": elapsed,
        "requests": requests,
        "rate_achieved": requests / elapsed,
        "statuses": dict(sorted(statuses.items())),
        "errors": errors,
        "lost_changes": lost,
        "latency_p50_ms": 1000 * pct(latencies, 0.5),
        "latency_p99_ms": 1000 * pct(latencies, 0.99),
        "latency_max_ms": 1000 * max(latencies, default=0.0),
        "consistency": consistency(sim),
    }


def api_load(
    sim: Sim,
    rate: float = 50,
    seconds: float = 10,
    servers: int = 10,
    seed: int = 3,
    kill_every: float | None = None,
) -> dict[str, Any]:
    """Moves and pins at `rate` requests/s for `seconds` over `servers` routers; nothing may be lost.

    With `kill_every`, the link emulator is SIGKILLed that often during the run.
    """
    load_topology(sim, grid(servers))
    return asyncio.run(_api_async(sim, servers, rate, seconds, seed, kill_every))


def home_dir() -> Path:
    """A fresh private state root under /tmp (traversable, like the tests' sim_factory)."""
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="meshsim-robust-", dir="/tmp"))
    os.chmod(home, 0o755)
    return home


if (
    __name__ == "__main__"
):  # the telemetry sender runs as its own process: python bench/_load.py send-telemetry
    if sys.argv[1:2] == ["send-telemetry"]:
        print(json.dumps(send_telemetry(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))))
