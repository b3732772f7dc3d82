"""The report's arithmetic on a real Record: delivery, state transitions, link rates, files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from meshsim.scenario import report
from meshsim.scenario.model import Scenario
from meshsim.scenario.recorder import Record
from meshsim.scenario.state import Message, Outcome, Room
from meshsim.topo import generators

T0 = 1_000.0  # s


def ms(t: float) -> int:
    return int((T0 + t) * 1000)


def outcome(tmp_path: Path) -> Outcome:
    topo = generators.line(3)
    scn = Scenario("unit", tmp_path / "s.yaml", "synapse", 0, topo, [])
    rec = Record(tmp_path / "events.jsonl")
    servers = [{"id": i, "x": 100.0 * i, "y": 0.0, "kind": "synapse", "state": "up"} for i in range(3)]
    rec.add({"type": "snapshot", "topology": {"servers": servers}, "rt": ms(-1)})
    o = Outcome(scn, tmp_path, t0=T0, t_end=T0 + 10, record=rec)
    o.rooms["r"] = Room("r", "!r:synapse0", "#r:synapse0", 0, {0, 1, 2})
    for i in range(3):
        o.messages.append(Message(i, "r", 0, 2, f"txn{i}", [1, 2], event_id=f"$e{i}", t_response=T0 + i))
        rec.add({"type": "event_sent", "event_id": f"$e{i}", "server": 0, "ts": ms(i)})
        rec.add({"type": "event_received", "event_id": f"$e{i}", "server": 1, "ts": ms(i + 0.2)})
    rec.add({"type": "event_received", "event_id": "$e0", "server": 2, "ts": ms(5)})
    rec.add({"type": "event_received", "event_id": "$e0", "server": 2, "ts": ms(6)}, source="backfill")  # dup
    rec.add({"type": "event_received", "event_id": "$other", "server": 2, "ts": ms(1)})  # not ours
    o.messages.append(Message(3, "r", 1, 3, "txn3", [0, 2], error="502: down"))
    down = {**servers[2], "state": "stopped", "up": False}
    rec.add({"type": "server_updated", "server": down, "rt": ms(3)})
    rec.add({"type": "server_updated", "server": down, "rt": ms(3.1)})  # same state: collapsed
    rec.add({"type": "server_updated", "server": {**servers[2], "state": "up"}, "rt": ms(4)})
    for t, b in ((1, 0), (2, 1000), (3, 3000), (4, 500)):  # the link restarted before t=4
        stats = {
            "ab": {"bytes": b, "packets": b // 100, "drops": 0},
            "ba": {"bytes": 0, "packets": 0, "drops": 0},
        }
        rec.add({"type": "link_stats", "links": [{"a": 0, "b": 1, "stats": stats}], "ts": ms(t)})
    return o


def test_delivery_counts_only_expected_servers_and_first_arrival(tmp_path: Path) -> None:
    rep = report.build(outcome(tmp_path))
    c = rep["counts"]
    assert (c["messages_attempted"], c["messages_sent"], c["send_errors"]) == (4, 3, 1)
    assert c["telemetry"] == {"event_sent": 3, "event_received": 4, "event_delivered": 0}
    d = rep["delivery"]
    assert (d["expected"], d["delivered"], d["ratio"]) == (6, 4, round(4 / 6, 4))
    assert d["servers"]["1"]["ratio"] == 1.0 and d["servers"]["2"]["delivered"] == 1
    m0 = rep["messages"][0]
    assert m0["received_t"] == {"1": 0.2, "2": 5.0} and m0["delay_ms"] == {"1": 200, "2": 5000}
    assert rep["messages"][3]["event_id"] is None and rep["messages"][3]["received_t"] == {}


def test_state_changes_collapse_repeats(tmp_path: Path) -> None:
    rep = report.build(outcome(tmp_path))
    mine = [(c["t"], c["state"]) for c in rep["state_changes"] if c["server"] == 2]
    assert mine == [(-1.0, "up"), (3.0, "stopped"), (4.0, "up")]
    assert rep["counts"]["state_changes"] == 2


def test_link_rates_and_counter_restart(tmp_path: Path) -> None:
    rows = report.build(outcome(tmp_path))["link_stats"]["0-1"]["ab"]
    assert [r[0] for r in rows] == [1.0, 2.0, 3.0, 4.0]
    assert [r[4] for r in rows] == [0, 8000, 16000, 4000]  # restart: the new counter is the delta


def test_write_produces_json_csv_and_png(tmp_path: Path) -> None:
    o = outcome(tmp_path)
    report.write(o)
    rep = json.loads((tmp_path / "report.json").read_text())
    for name in rep["files"].values():
        assert (tmp_path / name).exists(), name
    with open(tmp_path / "messages.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8  # one per message and expected server
    assert rows[1]["server"] == "2" and rows[1]["delay_ms"] == "5000"
    assert (rows[3]["index"], rows[3]["server"], rows[3]["received_t"]) == ("1", "2", "")  # never arrived
    for png in ("delivery_cdf.png", "link_throughput.png", "topology.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    assert "delivery 66.7% (4/6)" in report.summary_line(o)
