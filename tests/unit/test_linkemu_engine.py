"""Scheduling logic of one link direction: rate, queue, loss, delay, jitter, order, runtime changes."""

from __future__ import annotations

import random

import pytest

from meshsim.linkemu.engine import MTU_FRAME, Direction, DirParams, default_queue_bytes


def make(seed: int = 1, **params) -> Direction:
    return Direction(DirParams(**params), random.Random(seed))


def test_unlimited_rate_is_pure_delay() -> None:
    d = make(delay_ms=50)
    assert d.admit(1500, 10.0) == pytest.approx(10.05)
    assert d.admit(1500, 10.0) == pytest.approx(10.05)  # no serialisation time at rate 0


def test_rate_serialises_back_to_back_frames() -> None:
    d = make(rate_bps=1_000_000, delay_ms=10, queue_bytes=100_000)
    tx = 1500 * 8 / 1e6  # 12 ms
    dues = [d.admit(1500, 0.0) for _ in range(3)]
    assert dues == pytest.approx([tx + 0.01, 2 * tx + 0.01, 3 * tx + 0.01])


def test_idle_link_starts_at_arrival() -> None:
    d = make(rate_bps=8_000_000)
    assert d.admit(1000, 0.0) == pytest.approx(0.001)
    assert d.admit(1000, 5.0) == pytest.approx(5.001)


def test_queue_tail_drops_beyond_backlog_limit() -> None:
    # 1 Mbit/s, queue 3000 bytes = 24 ms of backlog; 1500-byte frames take 12 ms each.
    d = make(rate_bps=1_000_000, queue_bytes=3000)
    results = [d.admit(1500, 0.0) for _ in range(6)]
    accepted = [r for r in results if r is not None]
    # start offsets 0, 12, 24 ms are within 24 ms; the 4th would start at 36 ms.
    assert len(accepted) == 3
    assert d.counters.queue_drops == 3 and d.counters.drops == 3 and d.counters.loss_drops == 0
    # once the backlog drains, frames are accepted again
    assert d.admit(1500, 0.03) is not None


def test_default_queue_scales_with_rate() -> None:
    assert default_queue_bytes(0) == 8 * MTU_FRAME
    assert default_queue_bytes(56_000) == 8 * MTU_FRAME
    assert default_queue_bytes(100_000_000) == 2_500_000
    d = make(rate_bps=100_000_000)
    accepted = sum(d.admit(1500, 0.0) is not None for _ in range(3000))
    assert accepted == pytest.approx(2_500_000 / 1500, abs=2)


def test_loss_rate_matches_with_seeded_rng() -> None:
    d = make(seed=42, loss_pct=20)
    n = 20_000
    kept = sum(d.admit(100, 0.0) is not None for _ in range(n))
    assert d.counters.loss_drops == n - kept
    assert (n - kept) / n == pytest.approx(0.20, abs=0.01)


def test_loss_is_reproducible_with_same_seed() -> None:
    a, b = make(seed=7, loss_pct=30), make(seed=7, loss_pct=30)
    assert [a.admit(100, 0.0) for _ in range(200)] == [b.admit(100, 0.0) for _ in range(200)]


def test_zero_and_full_loss() -> None:
    assert all(make(loss_pct=0).admit(100, 0.0) is not None for _ in range(1000))
    d = make(loss_pct=100)
    assert all(d.admit(100, 0.0) is None for _ in range(1000))
    assert d.counters.loss_drops == 1000


def test_jitter_spread_and_fifo_order() -> None:
    d = make(seed=3, delay_ms=100, jitter_ms=10)
    # sparse frames: delays follow the distribution
    delays = [d.admit(100, t) - t for t in range(2000)]
    mean = sum(delays) / len(delays)
    sd = (sum((x - mean) ** 2 for x in delays) / len(delays)) ** 0.5
    assert mean == pytest.approx(0.1, abs=0.002)
    assert sd == pytest.approx(0.01, rel=0.1)
    # dense frames: due times never go backwards
    dense = [d.admit(100, 5000 + i * 1e-4) for i in range(2000)]
    assert dense == sorted(dense)


def test_jitter_never_delivers_before_serialisation() -> None:
    d = make(seed=5, delay_ms=1, jitter_ms=50)
    assert all(d.admit(100, float(t)) >= t for t in range(1000))


def test_down_drops_everything() -> None:
    d = make(up=False)
    assert d.admit(100, 0.0) is None
    assert d.counters.drops == 1 and d.counters.loss_drops == 0 and d.counters.queue_drops == 0


def test_runtime_change_applies_to_later_frames_only() -> None:
    d = make(delay_ms=100)
    first = d.admit(100, 0.0)
    d.set_params(DirParams(delay_ms=10))
    second = d.admit(100, 0.001)
    # the faster frame may not overtake the one already in flight
    assert first == pytest.approx(0.1)
    assert second == pytest.approx(0.1)
    assert d.admit(100, 0.2) == pytest.approx(0.21)
    d.set_params(DirParams(up=False))
    assert d.admit(100, 0.3) is None
    d.set_params(DirParams())
    assert d.admit(100, 0.4) == pytest.approx(0.4)


def test_rate_change_keeps_backlog() -> None:
    d = make(rate_bps=1_000_000, queue_bytes=1_000_000)
    d.admit(12_500, 0.0)  # busy until 0.1 s
    d.set_params(DirParams(rate_bps=10_000_000, queue_bytes=1_000_000))
    assert d.admit(1250, 0.0) == pytest.approx(0.101)


def test_counters_delivered_and_failed() -> None:
    d = make()
    d.delivered(100)
    d.delivered(50)
    d.failed()
    assert d.counters.to_dict() == {"bytes": 150, "packets": 2, "drops": 1, "loss_drops": 0, "queue_drops": 0}
