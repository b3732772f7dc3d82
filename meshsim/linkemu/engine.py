"""Per-direction link scheduling: loss, rate, bounded queue, delay and jitter.

Pure logic with no I/O: `Direction.admit(length, now)` returns the time a frame is due at the far end,
or None if it is dropped. Times are seconds on any monotonic clock.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

MTU_FRAME = 1514
MIN_QUEUE_FRAMES = 8
DEFAULT_QUEUE_S = 0.2


@dataclass(frozen=True)
class DirParams:
    """Shaping of one link direction. Units: bit/s (0 = unlimited), ms, percent, bytes (None = default)."""

    rate_bps: int = 0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    queue_bytes: int | None = None
    up: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def default_queue_bytes(rate_bps: int) -> int:
    """Queue limit used when none is given: 200 ms of backlog at the rate, but at least 8 full frames."""
    return max(MIN_QUEUE_FRAMES * MTU_FRAME, int(rate_bps * DEFAULT_QUEUE_S / 8))


@dataclass
class Counters:
    """Frames delivered (bytes, packets) and dropped (drops = all drops, with two named causes)."""

    bytes: int = 0
    packets: int = 0
    drops: int = 0
    loss_drops: int = 0
    queue_drops: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class Direction:
    """Scheduler for one direction of a link; keeps frames in FIFO order."""

    __slots__ = (
        "params",
        "counters",
        "_rng",
        "_sec_per_byte",
        "_queue_s",
        "_delay_s",
        "_jitter_s",
        "_loss_p",
        "_up",
        "_free_at",
        "_last_due",
    )

    def __init__(self, params: DirParams | None = None, rng: random.Random | None = None) -> None:
        self.counters = Counters()
        self._rng = rng or random.Random()
        self._free_at = 0.0
        self._last_due = 0.0
        self.set_params(params or DirParams())

    def set_params(self, params: DirParams) -> None:
        """Apply new parameters to frames admitted from now on; frames already scheduled keep their time."""
        self.params = params
        rate = params.rate_bps
        self._sec_per_byte = 8.0 / rate if rate > 0 else 0.0
        queue = params.queue_bytes if params.queue_bytes is not None else default_queue_bytes(rate)
        self._queue_s = queue * self._sec_per_byte
        self._delay_s = params.delay_ms / 1000.0
        self._jitter_s = params.jitter_ms / 1000.0
        self._loss_p = params.loss_pct / 100.0
        self._up = params.up

    def admit(self, length: int, now: float) -> float | None:
        """Schedule a frame of `length` bytes arriving at `now`; return its due time, or None if dropped."""
        c = self.counters
        if not self._up:
            c.drops += 1
            return None
        if self._loss_p > 0.0 and self._rng.random() < self._loss_p:
            c.drops += 1
            c.loss_drops += 1
            return None
        start = now
        if self._sec_per_byte:
            start = self._free_at if self._free_at > now else now
            if start - now > self._queue_s:
                c.drops += 1
                c.queue_drops += 1
                return None
            start += length * self._sec_per_byte
            self._free_at = start
        due = start + self._delay_s
        if self._jitter_s:
            due += self._rng.gauss(0.0, self._jitter_s)
            if due < start:
                due = start
        if due < self._last_due:
            due = self._last_due
        self._last_due = due
        return due

    def delivered(self, length: int) -> None:
        """Count a frame written to the far end."""
        self.counters.bytes += length
        self.counters.packets += 1

    def failed(self) -> None:
        """Count a frame that was due but could not be written."""
        self.counters.drops += 1
