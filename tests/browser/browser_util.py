"""Helpers for the browser tests: start/stop `meshsim up`, poll, open the page, screenshots."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshsim.harness import CHROMIUM, CHROMIUM_ARGS, Sim  # noqa: F401  (re-exported for conftest)

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}


def wait_until(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1, what: str = "") -> Any:
    """Polls check() until it returns something truthy; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, AssertionError, KeyError, IndexError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what or check}: last {last!r}")


class Controller(Sim):
    """A real `meshsim up` (router servers by default) with the helpers the browser tests use."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def post(self, path: str, body: Any = None) -> Any:
        r = self.http.post(path, json=body)
        r.raise_for_status()
        return r.json() if r.content else None

    def put(self, path: str, body: Any) -> Any:
        r = self.http.put(path, json=body)
        r.raise_for_status()
        return r.json()

    def add(self, x: float, y: float, kind: str | None = "router") -> dict[str, Any]:
        return super().add(x, y, kind)

    def topology(self) -> dict[str, Any]:
        return self.get("/api/topology")

    def wait_up(self, ids: list[int], timeout: float = 30.0) -> None:
        def all_up() -> bool:
            states = {s["id"]: s["state"] for s in self.topology()["servers"]}
            failed = [i for i in ids if states.get(i) == "failed"]
            assert not failed, f"servers failed: {failed}"
            return all(states.get(i) == "up" for i in ids)

        wait_until(all_up, timeout, 0.2, f"servers {ids} up")


def start_controller(tmp: Path, kind: str = "router", extra: list[str] | None = None) -> Controller:
    return Controller(tmp / "home", *(extra or []), kind=kind)


def stop_controller(ctl: Controller) -> None:
    """Ctrl-C (the controller cleans up its run), then force and `meshsim clean` what is left."""
    ctl.stop()


def open_page(browser: Any, ctl: Controller) -> Any:
    """Opens the UI, fails on page errors, waits for the websocket snapshot."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.meshsim_errors = errors  # type: ignore[attr-defined]
    page.goto(ctl.url + "/")
    page.wait_for_selector("#conn[data-status='live']", timeout=15_000)
    return page


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def canvas_origin(page: Any) -> tuple[float, float]:
    """Page coordinates of the canvas's model origin (the view starts unzoomed)."""
    box = page.locator("#canvas").bounding_box()
    assert box is not None
    return box["x"], box["y"]
