"""`meshsim run` with real Synapse homeservers: the report matches what happened to the messages."""

from __future__ import annotations

import json
import statistics
import textwrap
from pathlib import Path
from typing import Any

import pytest

from meshsim.scenario import model, runner

pytestmark = [pytest.mark.root, pytest.mark.synapse]
REPO = Path(__file__).resolve().parents[2]
DB = "sqlite"  # boots fastest; the postgres path is the same runner with --db postgres


def run(path: Path, out: Path) -> dict[str, Any]:
    outcome = runner.run(model.load(path), out, db=DB)
    rep = json.loads((out / "report.json").read_text())
    assert outcome.result == "ok", (outcome.error, (out / "controller.log").read_text()[-3000:])
    return rep


def step(rep: dict[str, Any], action: str, nth: int = 0) -> dict[str, Any]:
    return [s for s in rep["steps"] if s["action"] == action][nth]


def check_counts(rep: dict[str, Any]) -> None:
    """Messages sent equals messages counted, by the runner and by telemetry."""
    c = rep["counts"]
    assert c["messages_attempted"] == c["messages_sent"] == c["messages_counted"] == len(rep["messages"])
    assert c["send_errors"] == 0
    assert c["telemetry"]["event_sent"] == c["messages_sent"]
    assert c["telemetry"]["event_received"] == c["deliveries"] == c["deliveries_expected"]
    assert rep["delivery"]["ratio"] == 1.0
    for m in rep["messages"]:
        assert m["event_id"].startswith("$") and m["sent_telemetry"]
        assert sorted(map(int, m["received_t"])) == m["expected"]
        assert all(d >= 0 for d in m["delay_ms"].values())


def test_flaky_bridge_example(tmp_path: Path) -> None:
    rep = run(REPO / "examples/ci/flaky-bridge.yaml", tmp_path / "out")
    check_counts(rep)
    assert rep["counts"]["messages_sent"] == 10 and rep["counts"]["deliveries"] == 30
    lines = (tmp_path / "out" / "messages.csv").read_text().splitlines()
    assert len(lines) == 1 + 30
    # from server 0, the far cluster (2, 3) is behind the 64 kbit/s lossy bridge 1-2
    from0 = [m for m in rep["messages"] if m["origin"] == 0]
    near = statistics.median(m["delay_ms"]["1"] for m in from0)
    far = statistics.median(m["delay_ms"]["3"] for m in from0)
    assert far > near, (near, far)
    bridge = [r for d in ("ab", "ba") for r in rep["link_stats"]["1-2"][d]]
    assert max(r[1] for r in bridge) > 0
    assert max(r[4] for r in bridge) <= 64_000 * 1.15  # the pinned rate holds


def test_partitioned_server_receives_nothing_until_the_heal(tmp_path: Path) -> None:
    rep = run(REPO / "examples/ci/partition-heal.yaml", tmp_path / "out")
    check_counts(rep)
    healed = step(rep, "heal_partition")["t_start"]
    assert step(rep, "partition")["cut"]
    for m in rep["messages"]:
        assert m["expected"] == [1, 2]
        assert m["received_t"]["1"] < healed  # the majority side gets it at once
        assert m["received_t"]["2"] > healed  # the cut-off server only after the heal
    assert rep["delivery"]["servers"]["2"]["ratio"] == 1.0  # and then it catches up


def test_killed_server_shows_the_gap(tmp_path: Path) -> None:
    path = tmp_path / "kill.yaml"
    path.write_text(
        textwrap.dedent(
            """
            name: kill-gap
            linger: 1
            topology:
              generate: {type: line, n: 3}
            steps:
              - create_room: {room: gap, server: 0, join: all}
              - wait: {for: joined, timeout: 90}
              - kill: {servers: [2]}
              - send: {room: gap, from: 0, count: 3, rate: 5}
              - wait: {for: delivered, servers: [1], timeout: 60}
              - sleep: 2
              - restart: {servers: [2]}
              - label: the restarted server speaks, which wakes the others' queues to it
                send: {room: gap, from: 2, count: 1}
              - wait: {for: delivered, timeout: 120}
            """
        )
    )
    rep = run(path, tmp_path / "out")
    check_counts(rep)
    states = [(c["state"], c["t"]) for c in rep["state_changes"] if c["server"] == 2 and c["t"] >= 0]
    assert [s for s, _ in states][0] == "stopped" and states[-1][0] == "up"
    down, up = states[0][1], states[-1][1]
    kill = step(rep, "kill")
    assert kill["t_start"] <= down <= kill["t_end"] + 0.5
    gap = [m for m in rep["messages"] if m["origin"] == 0]
    assert len(gap) == 3
    for m in gap:
        assert m["sent_t"] > down
        assert m["received_t"]["1"] < up
        assert m["received_t"]["2"] > up  # nothing reached the dead server; it caught up after
