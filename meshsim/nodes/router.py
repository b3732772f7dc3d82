"""`router`: a bare namespace that forwards packets. Nothing runs inside it."""

from __future__ import annotations

from typing import Any

from .base import NodeContext


class RouterNode:
    kind = "router"

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.state = "starting"
        self.reason: str | None = None

    def start(self) -> None:
        self.state = "up"

    def stop(self) -> None:
        self.state = "stopped"

    def kill(self) -> None:
        self.state = "stopped"

    def info(self) -> dict[str, Any]:
        return {}

    def logs(self, lines: int = 200) -> list[str]:
        return []

    def destroy(self) -> None:
        self.state = "stopped"
