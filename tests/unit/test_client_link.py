"""The client link's delay model: latency, jitter, pacing at the bandwidth, loss as stalls."""

from __future__ import annotations

import random

from meshsim.homeserver.client_link import MIN_RTO_S, ClientLink, one_way_delay_s, transfer_time_s


def test_unshaped_link_adds_nothing():
    link = ClientLink()
    assert not link.shaped
    assert one_way_delay_s(link, random.Random(1)) == 0
    assert transfer_time_s(link, 10_000, random.Random(1)) == 0


def test_latency_and_pacing():
    link = ClientLink(bandwidth=1_000_000, latency=50)
    assert link.shaped
    assert one_way_delay_s(link, random.Random(1)) == 0.05
    assert transfer_time_s(link, 125_000, random.Random(1)) == 1.0  # 1 Mbit at 1 Mbit/s


def test_jitter_is_never_negative_and_spreads():
    link = ClientLink(latency=5, jitter=20)
    rng = random.Random(7)
    samples = [one_way_delay_s(link, rng) for _ in range(2000)]
    assert min(samples) >= 0
    assert max(samples) > 0.03


def test_loss_costs_retransmission_stalls():
    link = ClientLink(loss=50)
    rng = random.Random(3)
    stalls = [transfer_time_s(link, 1448 * 10, rng) / MIN_RTO_S for _ in range(500)]
    mean = sum(stalls) / len(stalls)
    assert 4 <= mean <= 6  # about half of 10 segments lost
    assert transfer_time_s(ClientLink(loss=100), 1448 * 3, rng) == 3 * MIN_RTO_S
