"""What every node kind provides. A node is a network namespace plus whatever runs inside it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

STATES = ("starting", "up", "stopped", "failed")


@dataclass
class NodeContext:
    """Everything a node kind needs to know about its place in the run."""

    node: int
    netns: str
    address: str
    data_dir: Path
    run_dir: Path
    services: dict[str, Any] = field(default_factory=dict)


class Node(Protocol):
    """One node kind's runtime handle. Blocking methods run in a worker thread."""

    kind: str
    state: str
    reason: str | None

    def start(self) -> None:
        """Bring the node's software up; returns once it is `up` (or raises, leaving it `failed`)."""

    def stop(self) -> None:
        """Stop gracefully, keeping data."""

    def kill(self) -> None:
        """Stop at once (SIGKILL), keeping data."""

    def info(self) -> dict[str, Any]:
        """Live details for the API: pid, memory, client URL, ..."""

    def logs(self, lines: int = 200) -> list[str]:
        """The last lines of the node's log."""

    def destroy(self) -> None:
        """Stop and remove the node's data (the server was deleted)."""
