"""What a scenario run keeps track of: rooms, messages, step results; the report reads it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import Scenario
from .recorder import Record


class StepFailed(RuntimeError):
    pass


@dataclass
class Message:
    """One message the scenario sent (or tried to)."""

    index: int
    room: str
    origin: int
    step: int
    txn_id: str
    expected: list[int]
    event_id: str | None = None
    t_request: float = 0.0
    t_response: float = 0.0
    error: str | None = None


@dataclass
class Room:
    name: str
    room_id: str
    alias: str
    creator: int
    members: set[int] = field(default_factory=set)


@dataclass
class Outcome:
    """What a run produced, for the report."""

    scenario: Scenario
    out: Path
    result: str = "ok"  # ok, failed, interrupted
    error: str | None = None
    t0: float = 0.0  # wall clock (s) when the first step started
    t_end: float = 0.0
    steps: list[dict[str, Any]] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    rooms: dict[str, Room] = field(default_factory=dict)
    initial: dict[str, Any] = field(default_factory=dict)
    final: dict[str, Any] = field(default_factory=dict)
    record: Record | None = None
