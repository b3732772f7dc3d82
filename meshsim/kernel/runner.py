"""The one place meshsim starts subprocesses for kernel work. Pass a Runner in; tests record."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Result:
    rc: int
    out: str
    err: str


class CommandError(RuntimeError):
    def __init__(self, argv: Sequence[str], result: Result) -> None:
        self.argv = list(argv)
        self.result = result
        detail = (result.err or result.out).strip().splitlines()
        super().__init__(f"{' '.join(self.argv[:6])} exited {result.rc}: {' | '.join(detail[-3:])}")


class Runner(Protocol):
    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 30.0) -> Result: ...

    def batch(self, lines: Sequence[str], *, netns: str | None = None, timeout: float = 60.0) -> Result: ...


class SubprocessRunner:
    """Runs argv lists (never a shell); `ip -batch` for many commands in one process."""

    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 30.0) -> Result:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
        res = Result(proc.returncode, proc.stdout, proc.stderr)
        if check and res.rc != 0:
            raise CommandError(argv, res)
        return res

    def batch(self, lines: Sequence[str], *, netns: str | None = None, timeout: float = 60.0) -> Result:
        if not lines:
            return Result(0, "", "")
        argv = ["ip", *(["-n", netns] if netns else []), "-batch", "-"]
        proc = subprocess.run(
            argv, input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=timeout
        )
        res = Result(proc.returncode, proc.stdout, proc.stderr)
        if res.rc != 0:
            raise CommandError(argv, res)
        return res


@dataclass
class RecordingRunner:
    """Records commands instead of running them (dry runs and unit tests)."""

    calls: list[tuple[str | None, list[str]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 30.0) -> Result:
        with self._lock:
            self.calls.append((None, list(argv)))
        return Result(0, "", "")

    def batch(self, lines: Sequence[str], *, netns: str | None = None, timeout: float = 60.0) -> Result:
        with self._lock:
            self.calls.append((netns, list(lines)))
        return Result(0, "", "")
