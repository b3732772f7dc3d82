"""The emulated network end to end: a real controller, namespaces, the link emulator and routes."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time

import pytest

from meshsim.kernel.names import address

pytestmark = pytest.mark.root


def line3(sim, spacing: float = 200) -> None:
    """Three routers in a line: 0 - 1 - 2, with 0 and 2 too far apart to link directly."""
    for i in range(3):
        sim.add(100 + i * spacing, 100, kind="router")
    for i in range(3):
        sim.wait_state(i, "up")
    links = {(lk["a"], lk["b"]) for lk in sim.get("/api/topology")["links"]}
    assert links == {(0, 1), (1, 2)}


def test_line_of_three_rtt_follows_pinned_latency(sim):
    line3(sim)
    fast = {"bandwidth": 100_000_000}
    assert sim.req("PUT", "/api/links/0/1", {"latency": 20, **fast}).status_code == 200
    assert sim.req("PUT", "/api/links/2/1", {"latency": 30, **fast}).status_code == 200
    r = sim.rtt_ms(0, 2, count=30)
    rtts = [x for x in r["rtt_ms"] if x is not None]
    assert len(rtts) == 30
    med = statistics.median(rtts)
    # one way 20 + 30 ms, so 100 ms round trip
    assert 100 <= med <= 103, med
    assert sim.get("/api/topology")["routes"]["0"]["2"] == 1


def test_pinned_bandwidth_gives_goodput(sim):
    for i in range(2):
        sim.add(100 + i * 50, 100, kind="router")
    sim.req("PUT", "/api/links/0/1", {"bandwidth": 2_000_000, "latency": 5}).raise_for_status()
    probe = [sys.executable, "-m", "meshsim.linkemu.probe"]
    sink = sim.popen(1, *probe, "sink", "--port", "7100", "--seconds", "6")
    time.sleep(0.3)
    sim.exec(0, *probe, "send", "--dst", address(1), "--port", "7100", "--seconds", "5", check=True)
    out, _ = sink.communicate(timeout=30)
    samples = json.loads(out)["samples"]
    (t0, b0), (t1, b1) = next(s for s in samples if s[0] >= 1.0), samples[-1]
    goodput = (b1 - b0) * 8 / (t1 - t0)
    assert 0.85 * 2_000_000 <= goodput <= 1.0 * 2_000_000, goodput
    stats = sim.get("/api/links/0/1")["stats"]
    assert stats["ab"]["bytes"] > 1_000_000


def test_pinned_loss_gives_loss(sim):
    for i in range(2):
        sim.add(100 + i * 50, 100, kind="router")
    sim.req("PUT", "/api/links/0/1", {"loss": 20, "bandwidth": 10_000_000}).raise_for_status()
    r = sim.rtt_ms(0, 1, count=400, interval=0.005)
    lost = 1 - r["received"] / r["sent"]
    # 20 % each way: 1 - 0.8 * 0.8 = 36 % of round trips lost
    assert 0.28 <= lost <= 0.44, lost


def test_move_changes_path_and_delete_middle_makes_far_end_unreachable(sim):
    line3(sim)
    assert sim.exec(0, "ping", "-c", "1", "-W", "2", address(2)).returncode == 0
    # move 2 next to 0: direct link, direct route
    sim.req("PUT", "/api/servers/2", {"x": 150, "y": 150}).raise_for_status()
    topo = sim.get("/api/topology")
    assert topo["routes"]["0"]["2"] == 2
    assert f"{address(2)} via {address(2)} dev eth2" in sim.exec(0, "ip", "route").stdout
    # back into the line, then delete the middle
    sim.req("PUT", "/api/servers/2", {"x": 500, "y": 100}).raise_for_status()
    assert sim.get("/api/topology")["routes"]["0"]["2"] == 1
    assert sim.req("DELETE", "/api/servers/1").status_code == 204
    topo = sim.get("/api/topology")
    assert "2" not in topo["routes"].get("0", {})
    t0 = time.monotonic()
    r = sim.exec(0, "ping", "-c", "1", "-W", "2", address(2))
    assert r.returncode != 0
    assert time.monotonic() - t0 < 1.5, "unreachable must fail fast (no route), not time out"
    assert "unreachable" in (r.stdout + r.stderr).lower()


def test_kernel_routes_match_model(sim):
    for x, y in [(100, 100), (250, 100), (400, 100), (250, 250), (400, 250)]:
        sim.add(x, y, kind="router")
    topo = sim.get("/api/topology")
    for src, table in topo["routes"].items():
        out = sim.exec(int(src), "ip", "-j", "route").stdout
        kernel = {r["dst"]: r["gateway"] for r in json.loads(out) if "gateway" in r}
        assert kernel == {address(int(d)): address(h) for d, h in table.items()}
    check = sim.get("/api/check")
    assert check["ok"] and check["routes"] == sum(len(t) for t in topo["routes"].values()), check
    assert sim.cli("check").returncode == 0
    # break one route behind the controller's back: the check must see it
    sim.exec(0, "ip", "route", "del", address(1) + "/32", check=True)
    assert not sim.get("/api/check")["ok"]
    assert sim.cli("check").returncode == 1


def test_bad_input_is_rejected_and_changes_nothing(sim):
    line3(sim)
    before = sim.get("/api/topology")
    bad = [
        ("GET", "/api/servers/99", None, 404),
        ("PUT", "/api/servers/99", {"x": 1, "y": 1}, 404),
        ("PUT", "/api/servers/0", {"x": "a", "y": 1}, 422),
        ("PUT", "/api/servers/0", {"x": 1}, 422),
        ("POST", "/api/servers", {"x": 1, "y": 1, "kind": "docker"}, 422),
        ("POST", "/api/servers", {"x": 1e9, "y": 1}, 422),
        ("PUT", "/api/links/0/1", {"loss": 101}, 422),
        ("PUT", "/api/links/0/1", {"latency": -1}, 422),
        ("PUT", "/api/links/0/1", {"bandwidth": 0}, 422),
        ("PUT", "/api/links/0/1", {"colour": "red"}, 422),
        ("PUT", "/api/links/0/0", {"latency": 5}, 400),
        ("PUT", "/api/links/0/2", {"latency": 5}, 409),
        ("PUT", "/api/links/0/7", {"latency": 5}, 404),
        ("DELETE", "/api/links/0/1/colour", None, 422),
        ("PUT", "/api/defaults", {"nonsense": 1}, 422),
        ("PUT", "/api/defaults", {"cost": "hops"}, 422),
        ("PUT", "/api/defaults", {"max_latency": 0}, 422),
        ("DELETE", "/api/servers/-1", None, 422),
    ]
    for method, path, body, status in bad:
        r = sim.req(method, path, body)
        assert r.status_code == status, (method, path, body, r.status_code, r.text)
        assert r.json().get("detail"), r.text
    r = sim.http.put("/api/links/0/1", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    after = sim.get("/api/topology")
    assert after["servers"] == before["servers"] and after["links"] == [
        {**lk, "stats": after["links"][i]["stats"]} for i, lk in enumerate(before["links"])
    ]


def test_topology_file_round_trip(sim, tmp_path):
    line3(sim)
    sim.req("PUT", "/api/links/0/1", {"latency": 42}).raise_for_status()
    f = tmp_path / "t.json"
    assert sim.cli("save", str(f)).returncode == 0
    sim.req("POST", "/api/reset").raise_for_status()
    assert sim.get("/api/topology")["servers"] == []
    r = sim.cli("load", str(f))
    assert r.returncode == 0, r.stderr
    topo = sim.get("/api/topology")
    assert len(topo["servers"]) == 3
    assert next(lk for lk in topo["links"] if (lk["a"], lk["b"]) == (0, 1))["latency"] == 42


def test_exec_returns_exit_code(sim):
    sim.add(100, 100, kind="router")
    assert sim.cli("exec", "0", "--", "true").returncode == 0
    assert sim.cli("exec", "0", "--", "sh", "-c", "exit 7").returncode == 7
    assert sim.cli("exec", "5", "--", "true").returncode != 0


def test_sigkill_controller_then_clean_leaves_nothing(sim_factory, tmp_path):
    sim = sim_factory()
    line3(sim)
    run = sim.run
    assert any(n.startswith(f"ms{run}-") for n in os.listdir("/run/netns"))
    emu_pid = int((sim.home / "runs" / run / "pids" / "linkemu").read_text())
    sim.proc.send_signal(signal.SIGKILL)
    sim.proc.wait()
    r = sim.cli("clean")
    assert r.returncode == 0, r.stderr
    assert not [n for n in os.listdir("/run/netns") if n.startswith(f"ms{run}")]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"ms{run}" not in links
    from meshsim.clean import cmdline

    assert "linkemu" not in cmdline(emu_pid)
    assert not (sim.home / "runs" / run).exists()
    assert sim.cli("clean").returncode == 0  # twice is fine
