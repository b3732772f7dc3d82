"""Synapse under `ksm_exec`: two servers boot, their memory is open to KSM, ksmd merges it, settings restored."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from meshsim.homeserver import ksm
from meshsim.homeserver.fleet import HomeserverFleet
from meshsim.homeserver.netns_files import remove_netns_etc
from meshsim.kernel import names

pytestmark = [
    pytest.mark.root,
    pytest.mark.synapse,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not Path("/proc/self/ksm_stat").exists(), reason="kernel without KSM"),
]


@pytest.fixture
def two_netns():
    run = secrets.token_hex(2)
    made = [names.netns(run, i) for i in range(2)]
    for i, ns in enumerate(made):
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", f"{names.address(i)}/32", "dev", "lo"], check=True)
    yield made
    for ns in made:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        remove_netns_etc(ns)


@pytest.fixture
def run_dir():
    d = Path(tempfile.mkdtemp(prefix="mshk-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def ksm_stat(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/ksm_stat").read_text().splitlines()
    return dict(line.replace(":", "").split(None, 1) for line in lines)


async def test_same_layout_servers_boot_and_merge(two_netns, run_dir, monkeypatch):
    monkeypatch.setenv(ksm.ENV, "1")
    fleet = HomeserverFleet(run_dir, database="sqlite")
    fleet.start()
    servers = [fleet.server(i, ns) for i, ns in enumerate(two_netns)]
    before = {name: (ksm.KSM_SYSFS / name).read_text() for name in ksm.KsmScanner.SETTINGS}
    try:
        for s in servers:
            assert s.spec.ksm == "same-layout"
            await asyncio.to_thread(s.prepare)
            s.start()
        for s in servers:
            await s.wait_ready(120)
            assert await s.healthy()
            st = ksm_stat(s.pid)
            assert st["ksm_merge_any"] == "yes"
            assert int(Path(f"/proc/{s.pid}/personality").read_text(), 16) & 0x0040000
        with ksm.KsmScanner(pages_to_scan=5000, sleep_millisecs=10):
            deadline = time.monotonic() + 60
            while min(ksm.process_merging_bytes(s.pid) for s in servers) < 10_000_000:
                assert time.monotonic() < deadline, [ksm.process_merging_bytes(s.pid) for s in servers]
                await asyncio.sleep(1)
        assert all(await asyncio.gather(*(s.healthy() for s in servers)))
    finally:
        for s in servers:
            s.kill()
        fleet.stop()
    assert {name: (ksm.KSM_SYSFS / name).read_text() for name in ksm.KsmScanner.SETTINGS} == before
