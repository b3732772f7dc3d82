"""Shared fixtures: a real `meshsim up` controller in a private state root, cleaned afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshsim.harness import Sim, free_port  # noqa: F401  (re-exported for tests)

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def sim_factory() -> Iterator[Any]:
    """Controllers in fresh state roots under /tmp (PostgreSQL's user must be able to traverse them)."""
    sims: list[Sim] = []
    homes: list[str] = []

    def make(*args: str, kind: str = "router", home: Path | None = None) -> Sim:
        if home is None:
            home = Path(tempfile.mkdtemp(prefix="meshsim-test-", dir="/tmp"))
            os.chmod(home, 0o755)
            homes.append(str(home))
        s = Sim(home, *args, kind=kind)
        sims.append(s)
        return s

    yield make
    for s in sims:
        s.stop(keep_logs=bool(os.environ.get("MESHSIM_KEEP_TEST_HOME")))
    if not os.environ.get("MESHSIM_KEEP_TEST_HOME"):
        for h in homes:
            shutil.rmtree(h, ignore_errors=True)


@pytest.fixture
def sim(sim_factory: Any) -> Sim:
    return sim_factory()
