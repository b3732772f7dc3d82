"""`meshsim run` end to end with routers: the report matches what the steps did to the network."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from meshsim.harness import MESHSIM
from meshsim.scenario import model, runner

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[2]

LINE = """
name: line-faults
kind: router
seed: 4
linger: 2
topology:
  generate: {type: line, n: 4, spacing: 250}
steps:
  - pin: {link: [0, 1], latency: 5, bandwidth: 4000000}
  - pin: {link: [1, 2], latency: 5, bandwidth: 4000000}
  - pin: {link: [2, 3], latency: 5, bandwidth: 4000000}
  - traffic: {from: 0, to: 3, seconds: 10, background: true}
  - sleep: 2
  - label: cut the far end off
    cut: {link: [2, 3]}
  - sleep: 2.5
  - heal: {link: [2, 3]}
  - sleep: 5
  - kill: {servers: [1]}
  - sleep: 1
  - restart: {servers: [1]}
  - wait: {for: up, timeout: 20}
"""


def scenario(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip())
    return p


def step(rep: dict[str, Any], action: str, nth: int = 0) -> dict[str, Any]:
    return [s for s in rep["steps"] if s["action"] == action][nth]


def rates(rep: dict[str, Any], link: str, d: str, t0: float, t1: float) -> list[float]:
    return [r[4] for r in rep["link_stats"][link][d] if t0 <= r[0] <= t1]


@pytest.fixture(scope="module")
def line_runs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The same scenario run twice."""
    tmp = tmp_path_factory.mktemp("line")
    path = scenario(tmp, LINE)
    reps = []
    for i in range(2):
        out = tmp / f"out{i}"
        outcome = runner.run(model.load(path), out)
        assert outcome.result == "ok", outcome.error
        reps.append(json.loads((out / "report.json").read_text()))
    return reps


def test_report_files_are_written(line_runs: list[dict[str, Any]], tmp_path_factory: Any) -> None:
    rep = line_runs[0]
    assert rep["result"] == "ok" and rep["counts"]["steps_ok"] == rep["counts"]["steps_run"] == 13
    assert set(rep["files"]) >= {"messages", "link_stats", "state_changes", "delivery_cdf", "topology"}
    out = Path(rep["scenario"]["file"]).parent / "out0"
    for name in rep["files"].values():
        assert (out / name).stat().st_size > 0, name
    assert (out / "delivery_cdf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header = (out / "link_stats.csv").read_text().splitlines()[0]
    assert header == "t,a,b,dir,bytes,packets,drops,bits_per_s,packets_per_s"


def test_link_stats_follow_cut_and_heal(line_runs: list[dict[str, Any]]) -> None:
    rep = line_runs[0]
    cut, heal = step(rep, "cut")["t_end"], step(rep, "heal")["t_end"]
    assert step(rep, "traffic")["result"]["bytes"] > 200_000
    before = rates(rep, "2-3", "ab", 0.5, cut)
    during = rates(rep, "2-3", "ab", cut + 1.1, heal)
    after = rates(rep, "2-3", "ab", heal + 1.1, step(rep, "kill")["t_start"])
    assert max(before) > 500_000, before
    assert during and max(during) == 0, during  # a cut link carries nothing
    assert after and max(after) > 100_000, after  # TCP comes back over the healed link


def test_killed_server_shows_the_gap(line_runs: list[dict[str, Any]]) -> None:
    rep = line_runs[0]
    kill, restart = step(rep, "kill"), step(rep, "restart")
    changes = [c for c in rep["state_changes"] if c["server"] == 1 and c["t"] >= 0]
    assert [c["state"] for c in changes] == ["stopped", "up"]
    assert kill["t_start"] <= changes[0]["t"] <= kill["t_end"] + 0.5
    assert restart["t_start"] <= changes[1]["t"] <= restart["t_end"] + 0.5
    # while 1 is down its links are gone: no stats rows for 0-1 inside the gap
    gap = [r for r in rep["link_stats"]["0-1"]["ab"] if changes[0]["t"] + 0.5 < r[0] < changes[1]["t"]]
    assert all(r[4] == 0 for r in gap), gap


def test_same_seed_same_structure_and_counts(line_runs: list[dict[str, Any]]) -> None:
    a, b = line_runs

    def shape(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: shape(v) for k, v in x.items() if k not in ("link_stats",)}
        if isinstance(x, list):
            return [shape(v) for v in x[:1]]
        return type(x).__name__

    assert shape(a) == shape(b)
    assert a["counts"] == b["counts"]
    assert [(c["server"], c["state"]) for c in a["state_changes"]] == [
        (c["server"], c["state"]) for c in b["state_changes"]
    ]
    assert sorted(a["link_stats"]) == sorted(b["link_stats"])
    assert a["links"] == b["links"]


def test_partition_cuts_only_the_crossing_links_and_heals_them(tmp_path: Path) -> None:
    path = scenario(
        tmp_path,
        """
        kind: router
        linger: 0
        topology:
          generate: {type: grid, rows: 2, cols: 3, spacing: 200}
        steps:
          - cut: {link: [0, 1]}
          - partition: {servers: [2, 5]}
          - heal_partition: {}
        """,
    )
    outcome = runner.run(model.load(path), tmp_path / "out")
    assert outcome.result == "ok", outcome.error
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    cut = step(rep, "partition")["cut"]
    assert cut == [[1, 2], [4, 5]] or sorted(map(tuple, cut)) == sorted(
        (lk["a"], lk["b"]) for lk in rep["links"]["initial"] if (lk["a"] in (2, 5)) != (lk["b"] in (2, 5))
    )
    assert step(rep, "heal_partition")["healed"] == cut
    final_cut = [(lk["a"], lk["b"]) for lk in rep["links"]["final"] if lk["cut"]]
    assert final_cut == [(0, 1)]  # the explicit cut stays


def test_failed_wait_fails_the_run_but_writes_the_report(tmp_path: Path) -> None:
    path = scenario(
        tmp_path,
        """
        kind: router
        linger: 0
        topology:
          generate: {type: line, n: 2}
        steps:
          - stop: {servers: [1]}
          - wait: {for: up, servers: [1], timeout: 1, on_timeout: continue}
          - sleep: 0
        """,
    )
    outcome = runner.run(model.load(path), tmp_path / "out")
    assert outcome.result == "ok", outcome.error  # a stopped server is not expected up
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [c["state"] for c in rep["state_changes"] if c["server"] == 1][-1] == "stopped"
    bad = scenario(
        tmp_path,
        """
        kind: router
        linger: 0
        topology:
          generate: {type: line, n: 2}
        steps:
          - pin: {link: [0, 1], latency: 1}
          - stop: {servers: [1]}
          - pin: {link: [0, 1], latency: 2}
          - sleep: 0
        """,
        "bad.yaml",
    )
    proc = subprocess.run(
        [MESHSIM, "run", str(bad), "--out", str(tmp_path / "bad")], capture_output=True, text=True
    )
    assert proc.returncode == 1, proc.stderr
    assert "step 2" in proc.stderr and "409" in proc.stderr
    rep = json.loads((tmp_path / "bad" / "report.json").read_text())
    assert rep["result"] == "failed" and [s["ok"] for s in rep["steps"]] == [True, True, False]


def test_bad_scenario_is_refused_before_anything_starts(tmp_path: Path) -> None:
    bad = scenario(
        tmp_path, "kind: router\ntopology:\n  generate: {type: line, n: 2}\nsteps:\n  - sleep: -1\n"
    )
    proc = subprocess.run(
        [MESHSIM, "run", str(bad), "--out", str(tmp_path / "out")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert f"{bad}:5: steps[0].sleep: must be >= 0" in proc.stderr
    assert not (tmp_path / "out").exists()


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += (task / "children").read_text().split()
        except OSError:
            continue
    for k in map(int, kids):
        out += [k, *_descendants(k)]
    return out


def _home_of(pid: int) -> Path | None:
    for p in _descendants(pid):
        try:
            env = Path(f"/proc/{p}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for kv in env:
            if kv.startswith(b"MESHSIM_HOME="):
                return Path(kv.split(b"=", 1)[1].decode())
    return None


def test_ctrl_c_stops_and_cleans_up(tmp_path: Path) -> None:
    path = scenario(
        tmp_path,
        "kind: router\ntopology:\n  generate: {type: line, n: 3}\nsteps:\n  - sleep: 600\n",
    )
    proc = subprocess.Popen(
        [MESHSIM, "run", str(path), "--out", str(tmp_path / "out")], stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        run = home = None
        while time.monotonic() < deadline and run is None:
            home = home or _home_of(proc.pid)
            runs = list((home / "runs").glob("*")) if home else []
            if runs and (tmp_path / "out" / "events.jsonl").stat().st_size > 0:
                run = runs[0].name
            time.sleep(0.2)
        assert run and home, "the controller did not start"
        time.sleep(1.0)  # in the sleep step by now
        assert any(ns.startswith(f"ms{run}-") for ns in _netns())
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert not [ns for ns in _netns() if ns.startswith(f"ms{run}-")]
    assert not home.exists()
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["result"] == "interrupted"
    assert not [p for p in _pids_with_env(f"MESHSIM_HOME={home}")]


def _netns() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pids_with_env(needle: str) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if needle.encode() in (d / "environ").read_bytes().split(b"\0"):
                    found.append(int(d.name))
            except OSError:
                continue
    return found


def test_random_mesh_routers_example(tmp_path: Path) -> None:
    out = tmp_path / "out"
    outcome = runner.run(model.load(REPO / "examples/ci/random-mesh-routers.yaml"), out)
    assert outcome.result == "ok", outcome.error
    rep = json.loads((out / "report.json").read_text())
    assert rep["counts"]["servers"] == 30 and rep["counts"]["links"] == len(rep["links"]["initial"]) > 29
    # from the kill on (a router may report `up` just after the first step started)
    killed_at = step(rep, "kill")["t_start"]
    assert [c["state"] for c in rep["state_changes"] if c["server"] == 12 and c["t"] >= killed_at] == [
        "stopped",
        "up",
    ]
    side = {20, 21, 22}
    crossing = sorted(
        [lk["a"], lk["b"]] for lk in rep["links"]["initial"] if (lk["a"] in side) != (lk["b"] in side)
    )
    assert step(rep, "partition")["cut"] == crossing
    assert not [lk for lk in rep["links"]["final"] if lk["cut"]]
    assert all(s["result"]["bytes"] > 10_000 for s in rep["steps"] if s["action"] == "traffic")
