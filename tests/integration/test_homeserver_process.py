"""SynapseServer lifecycle in a real namespace: failures are isolated, stop/kill/restart work."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from meshsim.homeserver.fleet import HomeserverFleet
from meshsim.homeserver.netns_files import remove_netns_etc, write_hosts
from meshsim.homeserver.process import BootLimiter, ServerFailed
from meshsim.kernel import names

pytestmark = [
    pytest.mark.root,
    pytest.mark.synapse,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]


@pytest.fixture
def netns():
    run = secrets.token_hex(2)
    made: list[str] = []

    def make(node: int) -> str:
        ns = names.netns(run, node)
        subprocess.run(["ip", "netns", "add", ns], check=True)
        made.append(ns)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", f"{names.address(node)}/32", "dev", "lo"], check=True)
        return ns

    yield make
    for ns in made:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        remove_netns_etc(ns)


@pytest.fixture
def run_dir():
    d = Path(tempfile.mkdtemp(prefix="mshs-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def getent(ns: str, name: str) -> str:
    r = subprocess.run(["ip", "netns", "exec", ns, "getent", "hosts", name], capture_output=True, text=True)
    return r.stdout.split()[0] if r.returncode == 0 else ""


def test_hosts_file_rewritten_in_place_is_seen_in_namespace(netns):
    ns = netns(0)
    path = write_hosts(ns, 1)
    inode = path.stat().st_ino
    assert getent(ns, "synapse1") == "10.99.0.2"
    assert getent(ns, "synapse7") == ""
    write_hosts(ns, 9)
    assert path.stat().st_ino == inode
    assert getent(ns, "synapse7") == "10.99.0.8"


async def test_failed_boot_is_isolated_and_lifecycle(netns, run_dir):
    fleet = HomeserverFleet(run_dir, database="sqlite")
    fleet.start()
    states: list[tuple[int, str, str | None]] = []
    good = fleet.server(0, netns(0), on_state=lambda s, st, r: states.append((s.spec.server_id, st, r)))
    bad = fleet.server(1, netns(1))
    bad.spec.extra_config = {"tls_certificate_path": "/nonexistent/tls.crt"}
    limiter = BootLimiter(1)  # the bad server goes first and must not hold the good one up
    try:
        ok_bad, ok_good = await asyncio.gather(limiter.boot(bad, 60), limiter.boot(good, 120))
        assert (ok_bad, ok_good) == (False, True)
        assert bad.state == "failed" and "exited with code" in (bad.reason or "")
        assert any("tls" in line.lower() for line in bad.log_tail(30, console=True) + bad.log_tail(30))
        assert good.state == "up" and good.boot_seconds is not None
        assert [s for _, s, _ in states] == ["prepared", "starting", "up"]
        assert good.rss_bytes() > 30_000_000
        pid = good.pid
        assert pid is not None and Path(f"/proc/{pid}").exists()

        await good.stop()
        assert good.state == "stopped" and not good.running() and good.rss_bytes() is None
        # restart on the same data dir and database
        good.start()
        await good.wait_ready(120)
        assert await good.register_user("matthew", "secret") == "@matthew:synapse0"
        good.kill()
        assert good.state == "stopped" and good.reason == "killed"
        good.start()
        await good.wait_ready(120)
        assert await good.register_user("matthew", "secret") == "@matthew:synapse0"
        with pytest.raises(ServerFailed):
            bad.start()
            await bad.wait_ready(60)
    finally:
        good.kill()
        bad.kill()
