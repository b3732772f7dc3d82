"""The orchestrator: owns the model, applies every change to the network and the nodes, one at a time.

Every change follows one path, `_commit(new)`: diff the model against the new one, stop the software
of servers going down, apply the network diff in a worker thread, adopt the new model, save it, start
the software of servers coming up, and publish the deltas. A change that fails leaves the old model.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import topo as topo_mod
from ..events import Bus, Message
from ..kernel import names
from ..kernel.runner import Runner, SubprocessRunner
from ..linkemu.client import LinkEmuClient, LinkEmuError, spawn
from ..nodes import registry
from ..nodes.base import Node, NodeContext
from ..topo import TopoDiff, Topology
from . import views
from .network import Network
from .rundir import RunDir, write_json_atomic
from .services import Services

log = logging.getLogger(__name__)


async def _call(fn: Callable[[], Any]) -> Any:
    """Await a node method: coroutine functions directly, blocking ones in a worker thread."""
    if inspect.iscoroutinefunction(fn):
        return await fn()
    return await asyncio.to_thread(fn)


class ApplyError(RuntimeError):
    """The kernel or a node refused a change; the model was rolled back."""


@dataclass
class Options:
    default_kind: str = "synapse"
    db: str = "postgres"  # or "sqlite"
    client_port_base: int = 18000
    boot_concurrency: int = 4  # measured: 4 concurrent Synapse boots is fastest on 2 cores with PostgreSQL
    stats_interval: float = 1.0
    host: str = "127.0.0.1"
    port: int = 3000


class Controller:
    def __init__(self, rundir: RunDir, options: Options | None = None, runner: Runner | None = None) -> None:
        self.rundir = rundir
        self.options = options or Options()
        self.runner = runner or SubprocessRunner()
        self.topo = Topology()
        self.nodes: dict[int, Node] = {}
        self.stats: dict[tuple[int, int], dict[str, Any]] = {}
        # Counters each link had carried when an emulator died: a restarted one counts from zero.
        self._stats_base: dict[tuple[int, int], dict[str, Any]] = {}
        self._emu_gen = 0  # bumped on every emulator restart; stats read before one are stale
        self.bus = Bus(self.snapshot)
        self.events: deque[Message] = deque(maxlen=100_000)
        self.services = Services(rundir, self.options)
        self._lock = asyncio.Lock()
        self._boot_sem = asyncio.Semaphore(self.options.boot_concurrency)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._boots: dict[int, asyncio.Task[Any]] = {}
        self._emu_proc: Any = None
        self.net: Network | None = None
        self._chat: Any = None  # the demo room behind POST /api/chat, made on first use

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        emu = await asyncio.to_thread(self._spawn_emulator)
        self.net = Network(self.rundir.run, self.runner, emu)
        await self.services.start(self.on_telemetry)
        self._spawn(self._stats_loop())
        self._spawn(self._emulator_watch())

    async def stop(self) -> None:
        for t in list(self._tasks) + list(self._boots.values()):
            t.cancel()
        if self._chat is not None:
            with contextlib.suppress(Exception):
                await self._chat.close()
        async with self._lock:
            await asyncio.gather(*(_call(n.kill) for n in self.nodes.values()), return_exceptions=True)
            if self.net:
                await asyncio.to_thread(self.net.close)
            await asyncio.to_thread(self._stop_emulator)
            await self.services.stop()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _spawn_emulator(self) -> LinkEmuClient:
        sock = self.rundir.emulator_socket
        sock.unlink(missing_ok=True)
        self._emu_proc = spawn(str(sock), str(self.rundir.path / "linkemu.log"))
        self.rundir.record_pid("linkemu", self._emu_proc.pid)
        return LinkEmuClient(str(sock))

    def _stop_emulator(self) -> None:
        proc = self._emu_proc
        if proc is None:
            return
        with contextlib.suppress(Exception):
            self.net.emu.close() if self.net else None
        proc.terminate()
        try:
            proc.wait(3)
        except Exception:
            proc.kill()
            proc.wait(3)
        self.rundir.forget_pid("linkemu")

    async def _emulator_watch(self) -> None:
        """If the emulator dies, restart it within a second and hand it every link again."""
        while True:
            await asyncio.sleep(0.25)
            if not self._emulator_dead():
                continue
            try:
                async with self._lock:
                    await self._restart_emulator()
            except Exception:  # keep watching: the next turn tries again
                log.exception("could not restart the link emulator")

    def _emulator_dead(self) -> bool:
        return self._emu_proc is not None and self._emu_proc.poll() is not None

    async def _restart_emulator(self) -> None:
        """Start a new emulator and hand it every link, counters kept (call with the lock held)."""
        if not self._emulator_dead():  # a change restarted it while we waited for the lock
            return
        log.warning("link emulator exited (%s); restarting", self._emu_proc.returncode)
        self.bus.publish({"type": "emulator", "state": "down"})
        self._stats_base = {p: s for p, s in self.stats.items() if p in self.topo.links()}
        self._emu_gen += 1
        emu = await asyncio.to_thread(self._spawn_emulator)
        assert self.net is not None
        await asyncio.to_thread(self.net.reattach, emu)
        self.bus.publish({"type": "emulator", "state": "up"})

    # -- views -------------------------------------------------------------------
    def server_view(self, sid: int) -> dict[str, Any]:
        return views.server(self, sid)

    def link_view(self, a: int, b: int) -> dict[str, Any]:
        return views.link(self, self.topo.link(a, b))

    def snapshot(self) -> dict[str, Any]:
        return views.topology(self)

    # -- the one change path -------------------------------------------------------
    async def change(self, mutate: Callable[[Topology], Any], *, how: str = "stop") -> Any:
        """Run mutate on a copy of the model; commit the result. TopoError means nothing changed."""
        async with self._lock:
            new = self.topo.copy()
            result = mutate(new)
            await self._commit(new, how=how)
            return result

    async def _commit(self, new: Topology, *, how: str = "stop") -> TopoDiff:
        old = self.topo
        d = topo_mod.diff(old, new)
        if d.empty():
            return d
        assert self.net is not None
        down = [i for i in d.servers_changed if old.servers[i].up and not new.servers[i].up]
        up = [i for i in d.servers_changed if not old.servers[i].up and new.servers[i].up]
        for sid in down:
            await self._halt(sid, how)
        for sid in d.servers_removed:
            await self._halt(sid, "destroy")
        await self._restart_emulator()  # changes queued behind a crash must not fail on it
        try:
            await self._apply_with_retry(d)
        except Exception as exc:
            log.exception("apply failed; rolling back")
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.net.apply, topo_mod.diff(new, old))
            raise ApplyError(f"the kernel refused the change: {exc}") from exc
        self.topo = new
        self.save_state()
        for pair in d.links_removed:  # a link added again later starts from zero
            self._stats_base.pop(pair, None)
        for sid in d.servers_removed:
            self.nodes.pop(sid, None)
            self.stats = {p: s for p, s in self.stats.items() if sid not in p}
        for sid in d.servers_added:
            self.nodes[sid] = self._make_node(sid)
        self._publish_diff(old, d)
        for sid in list(d.servers_added) + up:
            if new.servers[sid].up:
                self._boot(sid)
        return d

    async def _apply_with_retry(self, d: TopoDiff) -> None:
        """Apply a diff; if the emulator died under it, restart the emulator and apply again (every
        network step is idempotent: existing namespaces, links and routes are kept or replaced)."""
        assert self.net is not None
        try:
            await asyncio.to_thread(self.net.apply, d)
        except Exception:
            await asyncio.sleep(0.05)  # let a dying emulator finish dying
            if not self._emulator_dead():
                raise
            await self._restart_emulator()
            await asyncio.to_thread(self.net.apply, d)

    def _make_node(self, sid: int) -> Node:
        s = self.topo.servers[sid]
        ctx = NodeContext(
            node=sid,
            netns=names.netns(self.rundir.run, sid),
            address=names.address(sid),
            data_dir=self.rundir.node_dir(sid),
            run_dir=self.rundir.path,
            services={**self.services.for_nodes(), "client_link": self.client_link},
        )
        return registry.create(s.kind, ctx)

    async def _halt(self, sid: int, how: str) -> None:
        task = self._boots.pop(sid, None)
        node = self.nodes.get(sid)
        if node is None:
            return
        fn = {"stop": node.stop, "kill": node.kill, "destroy": node.destroy}[how]
        try:
            await asyncio.wait_for(_call(fn), 30)
        except Exception as exc:  # a wedged node never blocks the change
            log.warning("server %s %s: %s", sid, how, exc)
        if task:
            task.cancel()
        if sid in self.topo.servers:
            self.bus.publish({"type": "server_updated", "server": self.server_view(sid)})

    def client_link(self) -> Any:
        """The shaped client link of the current defaults (read by every client proxy per request)."""
        from ..homeserver.client_link import ClientLink

        d = self.topo.defaults
        return ClientLink(d.client_bandwidth, d.client_latency, d.client_jitter, d.client_loss)

    def _boot(self, sid: int) -> None:
        node = self.nodes[sid]
        node.state, node.reason = "starting", None

        async def boot() -> None:
            try:
                async with self._boot_sem:
                    if self.nodes.get(sid) is not node or not self.topo.servers.get(sid, None):
                        return
                    await _call(node.start)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                node.state, node.reason = "failed", str(exc) or type(exc).__name__
                log.warning("server %s failed: %s", sid, node.reason)
            finally:
                if self._boots.get(sid) is task:
                    self._boots.pop(sid, None)
            if sid in self.topo.servers and self.nodes.get(sid) is node:
                self.bus.publish({"type": "server_updated", "server": self.server_view(sid)})

        task = asyncio.get_running_loop().create_task(boot())
        self._boots[sid] = task

    def _publish_diff(self, old: Topology, d: TopoDiff) -> None:
        pub = self.bus.publish
        for sid in d.servers_added:
            pub({"type": "server_added", "server": self.server_view(sid)})
        for sid in d.servers_changed:
            pub({"type": "server_updated", "server": self.server_view(sid)})
        for a, b in d.links_removed:
            pub({"type": "link_removed", "a": a, "b": b})
        for a, b in d.links_added:
            pub({"type": "link_added", "link": self.link_view(a, b)})
        changed = set(d.links_changed) | set(d.links_cut) | set(d.links_healed)
        for a, b in sorted(changed):
            pub({"type": "link_updated", "link": self.link_view(a, b)})
        if d.routes_changed:
            pub({"type": "routes_changed", "changes": views.route_changes(d.routes_changed)})
        if old.defaults != self.topo.defaults:
            pub({"type": "defaults_changed", "defaults": self.topo.defaults.to_dict()})
        for sid in d.servers_removed:
            pub({"type": "server_removed", "id": sid})

    def save_state(self) -> None:
        write_json_atomic(self.rundir.state_file, self.topo.to_dict())

    async def check(self) -> dict[str, Any]:
        """Ground truth: every node's kernel routes against the model's next hops."""
        async with self._lock:
            assert self.net is not None
            want = self.topo.routes()
            nodes = sorted(self.net.nodes)
            tables = await asyncio.to_thread(lambda: {n: self.net.kernel_routes(n) for n in nodes})  # type: ignore[union-attr]
        mismatches = [
            {
                "node": n,
                "model": {str(k): v for k, v in sorted(want.get(n, {}).items())},
                "kernel": {str(k): v for k, v in sorted(tables[n].items())},
            }
            for n in nodes
            if tables[n] != want.get(n, {})
        ]
        missing = sorted(set(self.topo.servers) - set(nodes))
        return {
            "ok": not mismatches and not missing,
            "nodes": len(nodes),
            "routes": sum(len(t) for t in tables.values()),
            "mismatches": mismatches,
            "nodes_without_namespace": missing,
        }

    # -- server operations ----------------------------------------------------------
    async def add_server(self, x: Any, y: Any, kind: str | None = None) -> dict[str, Any]:
        kind = kind or self.options.default_kind
        if kind not in registry.kinds():
            raise topo_mod.TopoError(f"unknown kind {kind!r}; supported: {', '.join(registry.kinds())}")
        server, _ = await self.change(lambda t: t.add_server(x, y, kind))
        return self.server_view(server.id)

    async def move_server(self, sid: Any, x: Any, y: Any) -> dict[str, Any]:
        await self.change(lambda t: t.move_server(sid, x, y))
        return self.server_view(sid)

    async def remove_server(self, sid: Any) -> None:
        await self.change(lambda t: t.remove_server(sid))

    async def set_power(self, sid: Any, on: bool, how: str = "stop") -> dict[str, Any]:
        self.topo.server(sid)
        await self.change(lambda t: t.set_up(sid, on), how=how)
        return self.server_view(sid)

    async def restart_server(self, sid: Any) -> dict[str, Any]:
        self.topo.server(sid)
        if self.topo.servers[sid].up:
            await self.set_power(sid, False)
        return await self.set_power(sid, True)

    # -- telemetry and stats ---------------------------------------------------------
    def on_telemetry(self, msg: Message) -> None:
        msg.setdefault("recv_ts", int(time.time() * 1000))
        self.events.append(msg)
        self.bus.publish(msg)

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.stats_interval)
            if self.net is None:
                continue
            gen = self._emu_gen
            try:
                raw = await asyncio.wait_for(asyncio.to_thread(self.net.emu.stats), 2)
            except (LinkEmuError, OSError, TimeoutError) as exc:
                log.debug("stats: %s", exc)
                continue
            if gen != self._emu_gen:  # counted by the emulator that just died: already in the base
                continue
            self.stats = views.add_stats(views.parse_stats(raw), self._stats_base)
            links = [{"a": a, "b": b, "stats": s} for (a, b), s in sorted(self.stats.items())]
            if links:
                self.bus.publish({"type": "link_stats", "links": links, "ts": int(time.time() * 1000)})

    # -- chat -------------------------------------------------------------------------
    async def chat(self, sid: int, body: str) -> dict[str, Any]:
        """Send `body` as the test user of server `sid` into the shared demo room."""
        from .chat import ChatRoom, send_chat

        if self._chat is None:
            self._chat = ChatRoom()
        return await send_chat(self, self._chat, sid, body)
