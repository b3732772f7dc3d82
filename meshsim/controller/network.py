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
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..kernel import cmds, names, nsexec, procs
from ..kernel.netlink import NsRoutes
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
class NodeWork:
    """What one apply does inside one node: links to bring up, route changes, links to retire."""

    link_up: list[int] = field(default_factory=list)
    routes: dict[int, int | None] = field(default_factory=dict)
    retire: list[int] = field(default_factory=list)


@dataclass
class Network:
    run: str
    runner: Runner
    emu: LinkEmuClient
    nodes: set[int] = field(default_factory=set)
    links: dict[Pair, TapPair] = field(default_factory=dict)
    nl: dict[int, NsRoutes] = field(default_factory=dict)
    _seq: int = 0
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4, "ipbatch"))
    _reaper: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "tapreaper"))
    _seq_lock: threading.Lock = field(default_factory=threading.Lock)

    def netns(self, node: int) -> str:
        return names.netns(self.run, node)

    # -- the one entry point -------------------------------------------------
    def apply(self, diff: TopoDiff) -> None:
        """Apply a diff: TAPs in the emulator, then per touched node one pass over its netlink socket."""
        work: dict[int, NodeWork] = defaultdict(NodeWork)
        gone = set(diff.servers_removed)
        self._create_namespaces(diff.servers_added)
        self._add_links(sorted(diff.links_added.items()), work)
        for pair, params in sorted(diff.links_changed.items()):
            self.change_link(pair, params)
        for pair in diff.links_cut:
            self.set_link_up(pair, False)
        for pair in diff.links_healed:
            self.set_link_up(pair, True)
        for node, changes in diff.routes_changed.items():
            if node not in gone and node in self.nodes and changes:
                work[node].routes.update(changes)
        retire: list[TapPair] = []
        touched: set[int] = set()
        for pair in sorted(diff.links_removed):
            tp = self._detach_link(pair)
            if tp is None:
                continue
            # Every surviving end is renamed out of the way (a later link to the same peer reuses the
            # name, and the netlink socket caches indexes by name) and parked in the retired group.
            for node, peer in (pair, pair[::-1]):
                if node not in gone:
                    work[node].retire.append(peer)
                    touched.add(node)
            retire.append(tp)
        self._run_node_work(work)
        self.remove_nodes(sorted(gone))
        if retire:
            self._reaper.submit(self._reap, retire, sorted(touched))

    def _reap(self, tps: list[TapPair], nodes: list[int]) -> None:
        """Destroy retired TAPs off the change path: one batched delete per namespace (a single RCU
        grace period, ~20 ms, however many), then the fds, which are cheap once the devices are gone."""
        for node in nodes:
            self.runner.run(["ip", "-n", self.netns(node), *cmds.delete_retired().split()], check=False)
        for tp in tps:
            _close_pair(tp)

    def _run_node_work(self, work: dict[int, NodeWork]) -> None:
        errors: list[Exception] = []
        for node, w in sorted(work.items()):
            nl = self.nl.get(node)
            if nl is None:
                continue
            try:
                self._do_node_work(node, nl, w)
            except Exception as exc:  # keep going: every other node still gets its changes
                errors.append(exc)
        if errors:
            raise errors[0]

    def _do_node_work(self, node: int, nl: NsRoutes, w: NodeWork) -> None:
        for peer in w.link_up:
            ifname = names.peer_ifname(peer)
            nl.set_link(ifname, up=True, mac=names.mac(node, peer), mtu=1500, group=cmds.LINK_GROUP)
            nl.neigh_replace(names.address(peer), names.mac(peer, node), ifname)
        src = names.address(node)
        replace = [
            (names.address(d), names.address(h), names.peer_ifname(h), src)
            for d, h in sorted(w.routes.items())
            if h is not None
        ]
        delete = [names.address(d) for d, h in sorted(w.routes.items()) if h is None]
        errors = nl.apply(replace, delete)
        if errors:
            raise errors[0]
        for peer in w.retire:
            name = f"old{self._next_seq()}"
            nl.set_link(names.peer_ifname(peer), up=False, name=name, group=cmds.RETIRED_GROUP)

    # -- nodes ----------------------------------------------------------------
    def _create_namespaces(self, ids: list[int]) -> list[int]:
        ids = sorted(i for i in ids if i not in self.nodes)
        if not ids:
            return []
        self.runner.batch([cmds.netns_add(self.netns(i)) for i in ids])
        self.nodes.update(ids)
        for node, nl in zip(ids, self._pool.map(self._init_node, ids), strict=True):
            self.nl[node] = nl
        return ids

    def _init_node(self, node: int) -> NsRoutes:
        ns = self.netns(node)
        nsexec.write_sysctls(ns, cmds.NODE_SYSCTLS)
        nl = NsRoutes(ns)
        nl.set_link("lo", up=True)
        nl.addr_replace(names.address(node), 32, "lo")
        return nl

    def remove_nodes(self, ids: list[int]) -> None:
        ids = [i for i in ids if i in self.nodes]
        for i in ids:
            kill_netns_processes(self.netns(i))
        # One batched delete per node; a node without links answers an error, which is fine.
        list(
            self._pool.map(
                lambda i: self.runner.run(
                    ["ip", "-n", self.netns(i), *cmds.delete_links().split()], check=False
                ),
                ids,
            )
        )
        for i in ids:
            nl = self.nl.pop(i, None)
            if nl is not None:
                nl.close()  # an open socket would keep the namespace alive
        if ids:
            self.runner.batch([cmds.netns_del(self.netns(i)) for i in ids])
        for i in ids:
            self.nodes.discard(i)
            shutil.rmtree(Path("/etc/netns") / self.netns(i), ignore_errors=True)

    # -- links ----------------------------------------------------------------
    def _add_links(self, links: list[tuple[Pair, LinkParams]], work: dict[int, NodeWork]) -> None:
        """Create each TAP directly inside its node (moving a device costs an RCU grace period)."""
        want: dict[int, list[int]] = defaultdict(list)
        todo: list[tuple[Pair, LinkParams]] = []
        for pair, params in links:
            if pair in self.links:
                self.change_link(pair, params)
                continue
            todo.append((pair, params))
            want[pair[0]].append(pair[1])
            want[pair[1]].append(pair[0])
        fds: dict[tuple[int, int], int] = {}
        try:
            for node, fd_map in zip(want, self._pool.map(self._open_taps, want.items()), strict=True):
                fds.update({(node, peer): fd for peer, fd in fd_map.items()})
            for pair, params in todo:
                a, b = pair
                p = emu_params(params)
                self.emu.add(names.link_id(a, b), fds[(a, b)], fds[(b, a)], p, p)
                work[a].link_up.append(b)
                work[b].link_up.append(a)
                self.links[pair] = TapPair(fds.pop((a, b)), fds.pop((b, a)), params)
        except BaseException:
            for fd in fds.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise

    def _open_taps(self, item: tuple[int, list[int]]) -> dict[int, int]:
        node, peers = item

        def open_all() -> dict[int, int]:
            out: dict[int, int] = {}
            try:
                for peer in peers:
                    out[peer] = open_tap(names.peer_ifname(peer))
            except BaseException:
                for fd in out.values():
                    os.close(fd)
                raise
            return out

        return nsexec.in_netns(self.netns(node), open_all)

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

    def _detach_link(self, pair: Pair) -> TapPair | None:
        tp = self.links.pop(pair, None)
        if tp is not None:
            with contextlib.suppress(Exception):
                self.emu.remove(names.link_id(*pair))
        return tp

    def reattach(self, emu: LinkEmuClient) -> None:
        """Hand every link to a fresh emulator process (after the old one died)."""
        self.emu = emu
        for pair, tp in sorted(self.links.items()):
            p = emu_params(tp.params, tp.up)
            emu.add(names.link_id(*pair), tp.fd_a, tp.fd_b, p, p)

    def _next_seq(self) -> int:
        with self._seq_lock:
            self._seq += 1
            return self._seq

    # -- routes ---------------------------------------------------------------
    def kernel_routes(self, node: int) -> dict[int, int]:
        """Read node's mesh routes back from the kernel: {dst: nexthop}."""
        out: dict[int, int] = {}
        for dst, gw in self.nl[node].routes().items():
            d, g = names.node_of_address(dst), names.node_of_address(gw)
            if d is not None and g is not None:
                out[d] = g
        return out

    def close(self) -> None:
        """Tear down everything this network made: namespaces first (their TAPs go in one batch)."""
        pairs = [tp for pair in sorted(self.links) if (tp := self._detach_link(pair))]
        self.remove_nodes(sorted(self.nodes))
        for tp in pairs:
            _close_pair(tp)
        self._reaper.shutdown(wait=True)
        self._pool.shutdown(wait=False)


def _close_pair(tp: TapPair) -> None:
    for fd in (tp.fd_a, tp.fd_b):
        with contextlib.suppress(OSError):
            os.close(fd)


def kill_netns_processes(ns: str, grace: float = 2.0) -> None:
    """SIGTERM every process in the namespace, SIGKILL what is left after `grace` seconds."""
    pids = nsexec.netns_pids(ns)
    for pid in pids:
        procs.send(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if procs.pid_alive(p)]
        if pids:
            time.sleep(0.05)
    for pid in pids:
        procs.send(pid, signal.SIGKILL)
