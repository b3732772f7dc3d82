"""The emulated network at run time: namespaces, TAP pairs in the link emulator, and routes.

`Network.apply(diff)` touches only what a topology diff names, in a fixed order: new namespaces,
new links, changed links, routes, removed links, removed namespaces. Blocking; the controller calls it
from a worker thread while it holds the change lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..kernel import cmds, names, nsexec
from ..kernel.runner import Runner
from ..kernel.tap import open_tap
from ..linkemu.client import LinkEmuClient
from ..topo import LinkParams, TopoDiff

log = logging.getLogger(__name__)

Pair = tuple[int, int]


def emu_params(p: LinkParams, up: bool = True) -> dict[str, object]:
    """One direction of a link, in the emulator's terms."""
    return {
        "rate_bps": int(p.bandwidth),
        "delay_ms": float(p.latency),
        "jitter_ms": float(p.jitter),
        "loss_pct": float(p.loss),
        "queue_bytes": None,
        "up": up,
    }


@dataclass
class TapPair:
    fd_a: int
    fd_b: int
    params: LinkParams
    up: bool = True


@dataclass
class Network:
    run: str
    runner: Runner
    emu: LinkEmuClient
    nodes: set[int] = field(default_factory=set)
    links: dict[Pair, TapPair] = field(default_factory=dict)
    _seq: int = 0
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4, "ipbatch"))

    def netns(self, node: int) -> str:
        return names.netns(self.run, node)

    # -- the one entry point -------------------------------------------------
    def apply(self, diff: TopoDiff) -> None:
        self.add_nodes(diff.servers_added)
        for pair, params in sorted(diff.links_added.items()):
            self.add_link(pair, params)
        for pair, params in sorted(diff.links_changed.items()):
            self.change_link(pair, params)
        for pair in diff.links_cut:
            self.set_link_up(pair, False)
        for pair in diff.links_healed:
            self.set_link_up(pair, True)
        self.push_routes(diff.routes_changed)
        for pair in sorted(diff.links_removed):
            self.remove_link(pair)
        self.remove_nodes(diff.servers_removed)

    # -- nodes ----------------------------------------------------------------
    def add_nodes(self, ids: list[int]) -> None:
        ids = [i for i in ids if i not in self.nodes]
        if not ids:
            return
        self.runner.batch([cmds.netns_add(self.netns(i)) for i in ids])
        self.nodes.update(ids)
        list(self._pool.map(self._init_node, ids))

    def _init_node(self, node: int) -> None:
        ns = self.netns(node)
        nsexec.write_sysctls(ns, cmds.NODE_SYSCTLS)
        self.runner.batch(cmds.node_init(node), netns=ns)

    def remove_nodes(self, ids: list[int]) -> None:
        ids = [i for i in ids if i in self.nodes]
        for i in ids:
            kill_netns_processes(self.netns(i))
        if ids:
            self.runner.batch([cmds.netns_del(self.netns(i)) for i in ids])
        for i in ids:
            self.nodes.discard(i)
            shutil.rmtree(Path("/etc/netns") / self.netns(i), ignore_errors=True)

    # -- links ----------------------------------------------------------------
    def add_link(self, pair: Pair, params: LinkParams, up: bool = True) -> None:
        a, b = pair
        if pair in self.links:
            self.change_link(pair, params)
            return
        tmp_a, tmp_b = self._tmpname(), self._tmpname()
        fd_a = open_tap(tmp_a)
        try:
            fd_b = open_tap(tmp_b)
        except BaseException:
            os.close(fd_a)
            raise
        try:
            self.runner.batch(
                [cmds.tap_move(tmp_a, self.netns(a), a, b), cmds.tap_move(tmp_b, self.netns(b), b, a)]
            )
            self.runner.batch(cmds.link_end_up(a, b), netns=self.netns(a))
            self.runner.batch(cmds.link_end_up(b, a), netns=self.netns(b))
            p = emu_params(params, up)
            self.emu.add(names.link_id(a, b), fd_a, fd_b, p, p)
        except BaseException:
            os.close(fd_a)
            os.close(fd_b)
            raise
        self.links[pair] = TapPair(fd_a, fd_b, params, up)

    def change_link(self, pair: Pair, params: LinkParams) -> None:
        tp = self.links[pair]
        p = emu_params(params, tp.up)
        self.emu.set(names.link_id(*pair), p, p)
        tp.params = params

    def set_link_up(self, pair: Pair, up: bool) -> None:
        tp = self.links.get(pair)
        if tp is None:
            return
        tp.up = up
        p = emu_params(tp.params, up)
        self.emu.set(names.link_id(*pair), p, p)

    def remove_link(self, pair: Pair) -> None:
        tp = self.links.pop(pair, None)
        if tp is None:
            return
        try:
            self.emu.remove(names.link_id(*pair))
        finally:
            os.close(tp.fd_a)
            os.close(tp.fd_b)

    def reattach(self, emu: LinkEmuClient) -> None:
        """Hand every link to a fresh emulator process (after the old one died)."""
        self.emu = emu
        for pair, tp in sorted(self.links.items()):
            p = emu_params(tp.params, tp.up)
            emu.add(names.link_id(*pair), tp.fd_a, tp.fd_b, p, p)

    def _tmpname(self) -> str:
        self._seq += 1
        return names.tap_tmpname(self.run, self._seq)

    # -- routes ---------------------------------------------------------------
    def push_routes(self, changes: dict[int, dict[int, int | None]]) -> None:
        jobs = [(n, ch) for n, ch in sorted(changes.items()) if ch and n in self.nodes]
        if not jobs:
            return
        futures = [
            self._pool.submit(self.runner.batch, cmds.route_lines(n, ch), netns=self.netns(n))
            for n, ch in jobs
        ]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]  # type: ignore[misc]

    def kernel_routes(self, node: int) -> dict[int, int]:
        """Read node's mesh routes back from the kernel: {dst: nexthop}."""
        res = self.runner.run(["ip", "-n", self.netns(node), "-j", "route", "show"])
        import json

        out: dict[int, int] = {}
        for r in json.loads(res.out or "[]"):
            dst, gw = r.get("dst"), r.get("gateway")
            if not dst or not gw:
                continue
            d, g = names.node_of_address(dst.split("/")[0]), names.node_of_address(gw)
            if d is not None and g is not None:
                out[d] = g
        return out

    def close(self) -> None:
        """Tear down everything this network made (links first, then namespaces)."""
        for pair in sorted(self.links):
            try:
                self.remove_link(pair)
            except Exception as exc:  # the emulator may be gone already
                log.debug("remove %s: %s", pair, exc)
                tp = self.links.pop(pair, None)
                if tp:
                    os.close(tp.fd_a)
                    os.close(tp.fd_b)
        self.remove_nodes(sorted(self.nodes))
        self._pool.shutdown(wait=False)


def kill_netns_processes(ns: str, grace: float = 2.0) -> None:
    """SIGTERM every process in the namespace, SIGKILL what is left after `grace` seconds."""
    pids = nsexec.netns_pids(ns)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _alive(p)]
        if pids:
            time.sleep(0.05)
    for pid in pids:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
