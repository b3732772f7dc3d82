"""Runs the page's own unit tests (web/test/, node's test runner): store, deltas, formats."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from browser_util import REPO


def test_web_unit_tests_pass() -> None:
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed")
    proc = subprocess.run(
        [node, "--test", "test/"], cwd=REPO / "web", capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout
