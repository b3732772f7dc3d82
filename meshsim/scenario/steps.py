"""The step actions, each one REST call (or Matrix client call) plus the waiting it implies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import httpx
from rich.progress import Progress

from ..harness import Sim
from .matrix import MatrixError, MatrixUser
from .model import Scenario, Step, expand
from .recorder import Record
from .state import Message, Outcome, Room, StepFailed

POLL = 0.25
BACKFILL_EVERY = 3.0


class Steps:
    """Runs steps against one controller; keeps rooms, messages and partitions."""

    def __init__(
        self,
        scn: Scenario,
        outcome: Outcome,
        http: httpx.AsyncClient,
        record: Record,
        progress: Progress,
        sim: Sim,
    ) -> None:
        self.scn, self.outcome, self.http, self.record, self.progress, self.sim = (
            scn,
            outcome,
            http,
            record,
            progress,
            sim,
        )
        self.users: dict[int, MatrixUser] = {}
        self.partition_cuts: list[tuple[int, int]] = []
        self.background: list[tuple[int, asyncio.Task[Any]]] = []
        self.t0 = time.time()
        self._backfilled_at = 0.0

    # -- REST ------------------------------------------------------------------------------
    async def api(self, method: str, path: str, body: Any = None) -> Any:
        r = await self.http.request(method, path, json=body)
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail")
            except ValueError:
                detail = r.text
            raise StepFailed(f"{method} {path}: {r.status_code} {detail}")
        return r.json() if r.content else None

    async def servers(self) -> dict[int, dict[str, Any]]:
        topo = await self.api("GET", "/api/topology")
        return {s["id"]: s for s in topo["servers"]}

    def ids(self) -> list[int]:
        return sorted(self.scn.topology.servers)

    async def wait_up(self, timeout: float, ids: list[int] | None = None, task: Any = None) -> None:
        """Until every (given) server that should be up is `up`; StepFailed on `failed` or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            servers = await self.servers()
            want = [s for i, s in servers.items() if s["up"] and (ids is None or i in ids)]
            failed = [s for s in want if s["state"] == "failed"]
            if failed:
                s = failed[0]
                raise StepFailed(f"server {s['id']} failed: {s.get('reason')}")
            ready = sum(s["state"] == "up" for s in want)
            if task is not None:
                self.progress.update(task, completed=ready, total=len(want))
            if ready == len(want):
                return
            if time.monotonic() > deadline:
                late = ", ".join(f"{s['id']} ({s['state']})" for s in want if s["state"] != "up")
                raise StepFailed(f"servers not up after {timeout:g}s: {late}")
            await asyncio.sleep(POLL)

    # -- Matrix users -------------------------------------------------------------------------
    async def login_all(self) -> None:
        if not self.scn.rooms:
            return
        servers = await self.servers()
        ids = [i for i in self.scn.matrix_servers() if i in servers]
        for i in ids:
            s = servers[i]
            self.users[i] = MatrixUser(i, s["name"], s["client_url"])
        try:
            await asyncio.gather(*(u.login() for u in self.users.values()))
        except MatrixError as exc:
            raise StepFailed(str(exc)) from None

    async def user(self, sid: int) -> MatrixUser:
        if sid not in self.users:  # a server added by a step
            s = (await self.servers())[sid]
            self.users[sid] = MatrixUser(sid, s["name"], s["client_url"])
            await self.users[sid].login()
        return self.users[sid]

    # -- dispatch -----------------------------------------------------------------------------
    async def run(self, step: Step) -> dict[str, Any] | None:
        fn = getattr(self, f"do_{step.action}")
        return await fn(step, step.args)

    # -- rooms and messages -------------------------------------------------------------------
    async def do_create_room(self, step: Step, a: dict[str, Any]) -> dict[str, Any]:
        creator = await self.user(a["server"])
        try:
            room_id, alias = await creator.create_room(a["room"])
        except MatrixError as exc:
            raise StepFailed(str(exc)) from None
        room = Room(a["room"], room_id, alias, a["server"], {a["server"]})
        self.outcome.rooms[a["room"]] = room
        detail = {"room_id": room_id, "alias": alias}
        if "join" in a:
            joined = await self._join(room, a["join"], a.get("timeout", 120.0))
            detail["joined"] = joined
        return detail

    async def do_join(self, step: Step, a: dict[str, Any]) -> dict[str, Any]:
        room = self.outcome.rooms[a["room"]]
        return {"joined": await self._join(room, a["servers"], a.get("timeout", 120.0))}

    async def _join(self, room: Room, sel: Any, timeout: float) -> list[int]:
        ids = [i for i in expand(sel, self.scn.matrix_servers()) if i not in room.members]

        async def one(sid: int) -> None:
            user = await self.user(sid)
            await user.join(room.alias, timeout)
            room.members.add(sid)

        results = await asyncio.gather(*(one(i) for i in ids), return_exceptions=True)
        errors = [str(r) for r in results if isinstance(r, BaseException)]
        if errors:
            raise StepFailed("; ".join(errors))
        return ids

    async def do_send(self, step: Step, a: dict[str, Any]) -> dict[str, Any]:
        room = self.outcome.rooms[a["room"]]
        origins = expand(a["from"], self.scn.matrix_servers())
        count, rate = a.get("count", 1), a.get("rate", 1.0)
        msgs = []
        for sid in origins:
            for k in range(count):
                m = Message(
                    index=len(self.outcome.messages),
                    room=room.name,
                    origin=sid,
                    step=step.index,
                    txn_id=f"meshsim-{self.scn.seed}-{step.index}-{sid}-{k}",
                    expected=sorted(room.members - {sid}),
                )
                self.outcome.messages.append(m)
                msgs.append(m)
        bar = self.progress.add_task(f"  sending {len(msgs)} message(s)", total=len(msgs))

        async def sender(sid: int) -> None:
            mine = [m for m in msgs if m.origin == sid]
            user = await self.user(sid)
            start = time.monotonic()
            for k, m in enumerate(mine):
                delay = start + k / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                body = f"{self.scn.name} #{m.index} from server {sid} (seed {self.scn.seed})"
                sent = await user.send(room.room_id, body, m.txn_id)
                m.event_id, m.t_request, m.t_response, m.error = (
                    sent.event_id,
                    sent.t_request,
                    sent.t_response,
                    sent.error,
                )
                self.progress.advance(bar)

        async def all_senders() -> dict[str, Any]:
            try:
                await asyncio.gather(*(sender(i) for i in origins))
            finally:
                self.progress.remove_task(bar)
            return {"messages": len(msgs), "errors": sum(m.error is not None for m in msgs)}

        if a.get("background"):
            self._later(step, all_senders())
            return {"messages": len(msgs), "background": True}
        return await all_senders()

    # -- links ----------------------------------------------------------------------------
    async def do_pin(self, step: Step, a: dict[str, Any]) -> dict[str, Any]:
        x, y = a["link"]
        body = {k: v for k, v in a.items() if k != "link"}
        return {"link": await self.api("PUT", f"/api/links/{x}/{y}", body)}

    async def do_unpin(self, step: Step, a: dict[str, Any]) -> dict[str, Any]:
        x, y = a["link"]
        out = None
        for f in a.get("fields", ["bandwidth", "latency", "jitter", "loss"]):
            out = await self.api("DELETE", f"/api/links/{x}/{y}/{f}")
        return {"link": out}

    async def do_cut(self, step: Step, a: dict[str, Any]) -> dict[str, Any]:
        x, y = a["link"]
        return {"link": await self.api("POST", f"/api/links/{x}/{y}/cut")}

    async def do_heal(self, step: Step, a: dict[str, Any]) -> dict[str, Any]:
        x, y = a["link"]
        return {"link": await self.api("POST", f"/api/links/{x}/{y}/heal")}

    async def do_partition(self, step: Step, a: dict[str, Any]) -> dict[str, Any]:
        before = {(lk["a"], lk["b"]) for lk in (await self.api("GET", "/api/links")) if lk["cut"]}
        topo = await self.api("POST", "/api/partition", {"servers": a["servers"]})
        now = {(lk["a"], lk["b"]) for lk in topo["links"] if lk["cut"]}
        new = sorted(now - before)
        self.partition_cuts.extend(new)
        return {"cut": [list(p) for p in new]}

    async def do_heal_partition(self, step: Step, a: dict[str, Any]) -> dict[str, Any]:
        cut_now = {(lk["a"], lk["b"]) for lk in (await self.api("GET", "/api/links")) if lk["cut"]}
        if cut_now and cut_now <= set(self.partition_cuts):  # nothing else is cut: one change heals all
            await self.api("POST", "/api/heal")
            healed, self.partition_cuts = sorted(cut_now), []
            return {"healed": [list(p) for p in healed]}
        healed = []
        for x, y in self.partition_cuts:
            r = await self.http.post(f"/api/links/{x}/{y}/heal")
            if r.status_code < 400:
                healed.append([x, y])
        self.partition_cuts = []
        return {"healed": healed}

    async def do_heal_all(self, step: Step, a: dict[str, Any]) -> dict[str, Any]:
        await self.api("POST", "/api/heal")
        self.partition_cuts = []
        return {}

    # -- servers ----------------------------------------------------------------------------
    async def _power(self, verb: str, a: dict[str, Any]) -> dict[str, Any]:
        ids = expand(a["servers"], self.ids())
        for sid in ids:
            await self.api("POST", f"/api/servers/{sid}/{verb}")
        if verb in ("start", "restart") and a.get("wait", True):
            await self.wait_up(a.get("timeout", self.scn.boot_timeout), ids)
        return {"servers": ids}

    async def do_stop(self, step: Step, a: dict[str, Any]) -> dict[str, Any]:
        return await self._power("stop", a)

    async def do_kill(self, step: Step, a: dict[str, Any]) -> dict[str, Any]:
        return await self._power("kill", a)

    async def do_start(self, step: Step, a: dict[str, Any]) -> dict[str, Any]:
        return await self._power("start", a)

    async def do_restart(self, step: Step, a: dict[str, Any]) -> dict[str, Any]:
        return await self._power("restart", a)

    async def do_add_server(self, step: Step, a: dict[str, Any]) -> dict[str, Any]:
        s = await self.api(
            "POST", "/api/servers", {"x": a["x"], "y": a["y"], "kind": a.get("kind", self.scn.kind)}
        )
        await self.wait_up(self.scn.boot_timeout, [s["id"]])
        return {"server": s["id"]}

    # -- time and conditions ------------------------------------------------------------------
    async def do_sleep(self, step: Step, a: dict[str, Any]) -> None:
        await asyncio.sleep(a["seconds"])

    async def do_wait(self, step: Step, a: dict[str, Any]) -> dict[str, Any]:
        timeout = a.get("timeout", 60.0)
        cond = a["for"]
        start = time.monotonic()
        try:
            if cond == "up":
                sel = a.get("servers")
                await self.wait_up(timeout, None if sel is None else expand(sel, self.ids()))
            else:
                check = self._joined if cond == "joined" else self._delivered
                if cond == "delivered":
                    await asyncio.wait_for(self.finish_background(), timeout)
                await self._until(check, a, start + timeout)
        except (StepFailed, TimeoutError) as exc:
            why = str(exc) or f"not {cond} after {timeout:g}s"
            if a.get("on_timeout", "fail") == "fail":
                raise StepFailed(why) from None
            return {"waited": round(time.monotonic() - start, 3), "timed_out": True, "why": why}
        return {"waited": round(time.monotonic() - start, 3)}

    async def _until(self, check: Any, a: dict[str, Any], deadline: float) -> None:
        while True:
            missing = await check(a)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise StepFailed(f"not {a['for']} after {a.get('timeout', 60.0):g}s: {missing}")
            if a["for"] == "delivered" and time.monotonic() - self._backfilled_at > BACKFILL_EVERY:
                await self.backfill()
            self.record.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.record.changed.wait(), POLL * 2)

    def _rooms(self, a: dict[str, Any]) -> list[Room]:
        rooms = self.outcome.rooms
        return [rooms[a["room"]]] if "room" in a else list(rooms.values())

    def _only(self, a: dict[str, Any]) -> set[int] | None:
        return None if "servers" not in a else set(expand(a["servers"], self.scn.matrix_servers()))

    async def _joined(self, a: dict[str, Any]) -> str:
        """'' when every member server sees every member of the room(s), else what is missing."""
        only = self._only(a)
        for room in self._rooms(a):
            want = {self.users[i].user_id for i in room.members}
            for sid in sorted(room.members):
                if only is not None and sid not in only:
                    continue
                seen = await self.users[sid].members(room.room_id)
                if not want <= seen:
                    return f"server {sid} sees {len(seen & want)}/{len(want)} members of {room.name}"
        return ""

    async def _delivered(self, a: dict[str, Any]) -> str:
        """'' when every sent message reached every expected server (of the room / servers given)."""
        only = self._only(a)
        names = {r.name for r in self._rooms(a)}
        missing = 0
        example = ""
        for m in self.outcome.messages:
            if m.room not in names or m.event_id is None:
                continue
            got = self.record.received.get(m.event_id, {})
            for sid in m.expected:
                if (only is None or sid in only) and sid not in got:
                    missing += 1
                    example = example or f"message #{m.index} at server {sid}"
        return f"{missing} deliveries missing (e.g. {example})" if missing else ""

    # -- traffic (any node kind) -----------------------------------------------------------
    async def do_traffic(self, step: Step, a: dict[str, Any]) -> dict[str, Any]:
        src, dst, seconds = a["from"], a["to"], float(a.get("seconds", 3.0))
        servers = await self.servers()
        port = 7300 + step.index
        probe = [sys.executable, "-m", "meshsim.linkemu.probe"]

        async def go() -> dict[str, Any]:
            sink = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", servers[dst]["netns"], *probe, "sink", "--port", str(port),
                "--seconds", str(seconds + 2), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            try:
                await asyncio.sleep(0.3)
                sender = await asyncio.create_subprocess_exec(
                    "ip", "netns", "exec", servers[src]["netns"], *probe, "send", "--dst",
                    servers[dst]["address"], "--port", str(port), "--seconds", str(seconds),
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                await sender.wait()
                out, _ = await asyncio.wait_for(sink.communicate(), seconds + 30)
                return _goodput(json.loads(out or b"{}"))
            finally:
                if sink.returncode is None:
                    sink.kill()
                    await sink.wait()

        if a.get("background"):
            self._later(step, go())
            return {"background": True}
        return await go()

    # -- end ------------------------------------------------------------------------------------
    def _later(self, step: Step, coro: Any) -> None:
        self.background.append((step.index, asyncio.get_running_loop().create_task(coro)))

    def _entry(self, index: int) -> dict[str, Any]:
        return next((e for e in self.outcome.steps if e["index"] == index), {})

    async def finish_background(self) -> None:
        """Wait for background steps; their results go into their step entries."""
        tasks, self.background = self.background, []
        for index, t in tasks:
            entry = self._entry(index)
            try:
                entry["result"] = await t
                entry["t_done"] = round(time.time() - self.t0, 3)
            except Exception as exc:
                entry["ok"], entry["error"] = False, str(exc)
                raise StepFailed(f"background step {index}: {exc}") from None

    async def cancel_background(self) -> None:
        for _, t in self.background:
            t.cancel()
        await asyncio.gather(*(t for _, t in self.background), return_exceptions=True)
        self.background = []

    async def backfill(self) -> None:
        """Add telemetry the websocket skipped, from the controller's event log."""
        self._backfilled_at = time.monotonic()
        since = int(self.t0 * 1000) - 600_000
        r = await self.http.get("/api/events", params={"since": since, "limit": 100_000})
        if r.status_code == 200:
            for msg in r.json():
                self.record.add(msg, source="backfill")

    async def final_topology(self) -> None:
        self.outcome.final = await self.api("GET", "/api/topology")

    async def close(self) -> None:
        await asyncio.gather(*(u.close() for u in self.users.values()), return_exceptions=True)
        await self.http.aclose()


def _goodput(sink: dict[str, Any]) -> dict[str, Any]:
    """Bytes received, and bit/s between the first and the last byte that arrived."""
    total = sink.get("bytes", 0)
    samples = sink.get("samples", [])
    first = next((t for t, b in samples if b > 0), None)
    last = next((t for t, b in reversed(samples) if b < total), None)
    span = (last - first) if first is not None and last is not None and last > first else 0.0
    return {"bytes": total, "bits_per_s": round(total * 8 / span) if span else None}
