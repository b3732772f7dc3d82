"""The shaped "client link" between a Matrix client on the host and its homeserver.

Client traffic reaches a server through its client proxy, never across the mesh, so the proxy shapes it
at the application level: every request and every response waits one-way latency plus jitter, bodies
are paced at the bandwidth, and each lost ~MSS-sized segment costs a retransmission stall.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

MSS = 1448
MIN_RTO_S = 0.2


@dataclass(frozen=True)
class ClientLink:
    bandwidth: int = 0  # bit/s, 0 = unshaped
    latency: float = 0.0  # ms, one way
    jitter: float = 0.0  # ms
    loss: float = 0.0  # percent

    @property
    def shaped(self) -> bool:
        return bool(self.bandwidth or self.latency or self.jitter or self.loss)


LinkSource = Callable[[], ClientLink]


def one_way_delay_s(link: ClientLink, rng: random.Random) -> float:
    """Latency plus a normal jitter sample, never negative."""
    jitter = rng.gauss(0.0, link.jitter) if link.jitter else 0.0
    return max(0.0, link.latency + jitter) / 1000.0


def transfer_time_s(link: ClientLink, nbytes: int, rng: random.Random) -> float:
    """Serialisation at the bandwidth plus a retransmission stall per lost segment."""
    t = nbytes * 8 / link.bandwidth if link.bandwidth else 0.0
    if link.loss and nbytes:
        segments = max(1, -(-nbytes // MSS))
        rto = max(MIN_RTO_S, 2 * link.latency / 1000.0)
        t += sum(rto for _ in range(segments) if rng.random() * 100 < link.loss)
    return t


async def delay(link: ClientLink, rng: random.Random, nbytes: int = 0) -> None:
    t = one_way_delay_s(link, rng) + transfer_time_s(link, nbytes, rng)
    if t > 0:
        await asyncio.sleep(t)
