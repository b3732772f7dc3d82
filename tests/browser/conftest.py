"""Fixtures for the browser tests: a real `meshsim up` subprocess and Debian chromium via Playwright."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_util import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, Controller, start_controller, stop_controller


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Controller]:
    """`meshsim up` with router servers by default, in its own MESHSIM_HOME."""
    ctl = start_controller(tmp_path)
    yield ctl
    stop_controller(ctl)


@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Any]:
    """Playwright's sync API keeps an event loop running in the main thread while it is open, which
    breaks asyncio.run() in every later test: so it lives for one module, not the session."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    with sync_api.sync_playwright() as pw:
        yield pw


@pytest.fixture
def browser(playwright_instance: Any) -> Iterator[Any]:
    """A chromium context with a fresh user data dir; new_page() opens tabs in it."""
    data_dir = tempfile.mkdtemp(prefix="ms-chromium-")
    ctx = playwright_instance.chromium.launch_persistent_context(
        data_dir,
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        viewport=VIEWPORT,
    )
    try:
        yield ctx
    finally:
        ctx.close()
        shutil.rmtree(data_dir, ignore_errors=True)
