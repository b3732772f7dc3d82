"""`meshsim run SCENARIO`: start a private controller, run the steps, record everything, write a report.

The controller is a real `meshsim up` subprocess (`meshsim.harness.Sim`) in a private MESHSIM_HOME;
it is stopped and cleaned (`meshsim clean`) whatever happens, Ctrl-C and errors included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from ..harness import MESHSIM, Sim
from . import report
from .model import Scenario, load
from .recorder import Record, Recorder
from .schema import ScenarioError
from .state import Outcome, StepFailed
from .steps import Steps


def run_cli(args: argparse.Namespace) -> int:
    """Entry point of `meshsim run`; returns the exit status."""
    try:
        scn = load(args.scenario)
    except ScenarioError as exc:
        print(f"meshsim run: bad scenario\n{exc}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("meshsim run: needs root (it creates network namespaces)", file=sys.stderr)
        return 1
    out = Path(args.out)
    outcome = run(scn, out, db=getattr(args, "db", "postgres"), console=Console(stderr=True))
    print(report.summary_line(outcome), file=sys.stderr)
    return {"ok": 0, "interrupted": 130}.get(outcome.result, 1)


def run(scn: Scenario, out: Path, *, db: str = "postgres", console: Console | None = None) -> Outcome:
    """Run a loaded scenario and write the report into `out`; never leaves anything running."""
    out.mkdir(parents=True, exist_ok=True)
    outcome = Outcome(scn, out)
    console = console or Console(stderr=True)
    try:
        asyncio.run(_main(scn, outcome, db, console))
    except KeyboardInterrupt:
        outcome.result, outcome.error = "interrupted", "interrupted (Ctrl-C)"
    report.write(outcome)
    return outcome


def _free_port_base(count: int) -> int:
    """A base port such that base..base+count-1 are free on loopback right now."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 60_000 - count)
        try:
            for p in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return base
    raise RuntimeError("no free block of client ports")


async def _main(scn: Scenario, outcome: Outcome, db: str, console: Console) -> None:
    home = Path(tempfile.mkdtemp(prefix="meshsim-run-", dir="/tmp"))
    os.chmod(home, 0o755)  # the postgres user must traverse it
    sim: Sim | None = None
    recorder: Recorder | None = None
    record = Record(outcome.out / "events.jsonl")
    outcome.record = record
    ctx: Steps | None = None
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    try:
        with progress:
            boot = progress.add_task("starting the controller", total=len(scn.topology.servers))
            base = _free_port_base(max(scn.topology.servers) + 64)
            # not in a thread: a Ctrl-C here must not leave a controller starting behind our back
            sim = Sim(home, "--db", db, "--client-port-base", str(base), kind=scn.kind)
            http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim.port}", timeout=120)
            recorder = Recorder(f"ws://127.0.0.1:{sim.port}/api/ws", record)
            await recorder.start()
            ctx = Steps(scn, outcome, http, record, progress, sim)
            progress.update(boot, description="loading the topology")
            r = await http.put("/api/topology/file", json=scn.topology.to_dict())
            if r.status_code >= 400:
                raise StepFailed(f"the controller refused the topology: {r.text}")
            progress.update(boot, description="waiting for servers to be up")
            await ctx.wait_up(scn.boot_timeout, task=boot)
            await ctx.login_all()
            outcome.initial = (await http.get("/api/topology")).json()
            progress.remove_task(boot)
            await _steps(scn, ctx, outcome, progress)
    except StepFailed as exc:
        outcome.result, outcome.error = "failed", str(exc)
    except (asyncio.CancelledError, KeyboardInterrupt):
        outcome.result, outcome.error = "interrupted", "interrupted (Ctrl-C)"
    except Exception as exc:
        outcome.result, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        outcome.t_end = outcome.t_end or time.time()
        await _shutdown(ctx, recorder, record, sim, outcome, home)


async def _steps(scn: Scenario, ctx: Steps, outcome: Outcome, progress: Progress) -> None:
    task = progress.add_task("steps", total=len(scn.steps))
    outcome.t0 = ctx.t0 = time.time()
    t0_mono = time.monotonic()
    for step in scn.steps:
        if step.at is not None:
            delay = step.at - (time.monotonic() - t0_mono)
            if delay > 0:
                progress.update(task, description=f"[{step.index}] waiting until t={step.at:g}s")
                await asyncio.sleep(delay)
        progress.update(task, description=f"[{step.index}] {step.title}")
        entry = {"index": step.index, "action": step.action, "title": step.title, "line": step.line}
        entry["t_start"] = round(time.time() - ctx.t0, 3)
        outcome.steps.append(entry)
        try:
            detail = await ctx.run(step)
            entry["ok"] = True
            entry.update(detail or {})
        except StepFailed as exc:
            entry["ok"], entry["error"] = False, str(exc)
            raise StepFailed(f"step {step.index} ({step.title}, line {step.line}): {exc}") from None
        finally:
            entry["t_end"] = round(time.time() - ctx.t0, 3)
        progress.advance(task)
    await ctx.finish_background()
    progress.update(task, description=f"recording for {scn.linger:g}s more")
    await asyncio.sleep(scn.linger)
    outcome.t_end = time.time()
    progress.update(task, description="done")


async def _shutdown(
    ctx: Steps | None,
    recorder: Recorder | None,
    record: Record,
    sim: Sim | None,
    outcome: Outcome,
    home: Path,
) -> None:
    """Stop everything this run started, even after an error or Ctrl-C."""
    if ctx is not None:
        for coro in (ctx.cancel_background(), ctx.backfill(), ctx.final_topology()):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(coro, 30)
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await ctx.close()
    if recorder is not None:
        await recorder.stop()
    record.close()
    if sim is not None:
        try:
            sim.stop()
        except Exception as exc:
            print(f"meshsim run: cleaning up: {exc}", file=sys.stderr)
    log = home / "controller.log"
    if log.exists():
        shutil.copy(log, outcome.out / "controller.log")
    _reap(home)
    shutil.rmtree(home, ignore_errors=True)


def _pids_of(home: Path) -> list[int]:
    """Processes started with MESHSIM_HOME=home (this run's private state root)."""
    needle = f"MESHSIM_HOME={home}".encode()
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if needle in (d / "environ").read_bytes().split(b"\0"):
                    found.append(int(d.name))
            except OSError:
                continue
    return found


def _reap(home: Path, grace: float = 10.0) -> None:
    """Stop any controller of this run that escaped (e.g. one that failed to answer in time), then clean."""
    pids = _pids_of(home)
    for sig in (signal.SIGINT, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = [p for p in pids if Path(f"/proc/{p}").exists()]
        if not pids:
            break
    if (home / "runs").exists():
        env = {**os.environ, "MESHSIM_HOME": str(home)}
        subprocess.run([MESHSIM, "clean"], env=env, capture_output=True, timeout=120, check=False)
