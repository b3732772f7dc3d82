"""Defaults and LinkParams validation."""

import math

import pytest

from meshsim.topo import Defaults, LinkParams, TopoError


def test_defaults_match_spec():
    d = Defaults()
    assert d.bandwidth == 512_000 and d.decay is True and d.max_latency == 300.0
    assert d.min_bandwidth == 0 and d.jitter == 0.0 and d.loss == 0.0 and d.cost == "latency"
    assert d.latency_scale == 100.0 and d.client_bandwidth == 0


def test_replace_returns_new_validated_copy():
    d = Defaults()
    e = d.replace(bandwidth=1_000_000, cost="bandwidth", jitter=5)
    assert (e.bandwidth, e.cost, e.jitter) == (1_000_000, "bandwidth", 5.0)
    assert isinstance(e.jitter, float)
    assert d.bandwidth == 512_000


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"bandwidth": 0}, "bandwidth"),
        ({"bandwidth": 100_000_000_001}, "bandwidth"),
        ({"bandwidth": "512000"}, "whole number"),
        ({"bandwidth": True}, "whole number"),
        ({"bandwidth": 1.5}, "whole number"),
        ({"decay": "yes"}, "true or false"),
        ({"decay": 1}, "true or false"),
        ({"max_latency": 0}, "max_latency"),
        ({"max_latency": -1}, "max_latency"),
        ({"max_latency": math.inf}, "finite"),
        ({"max_latency": math.nan}, "finite"),
        ({"min_bandwidth": -1}, "min_bandwidth"),
        ({"jitter": 60_001}, "jitter"),
        ({"loss": 101}, "loss"),
        ({"loss": -0.1}, "loss"),
        ({"cost": "hops"}, "cost"),
        ({"cost": ["latency"]}, "cost"),
        ({"latency_scale": 0}, "latency_scale"),
        ({"latency_scale": 100_001}, "latency_scale"),
        ({"client_bandwidth": -5}, "client_bandwidth"),
        ({"client_loss": 200}, "client_loss"),
        ({"colour": "red"}, "unknown setting 'colour'"),
    ],
)
def test_bad_defaults_rejected_with_reason(changes, words):
    with pytest.raises(TopoError) as e:
        Defaults().replace(**changes)
    assert words in str(e.value)


def test_integral_float_accepted_for_int_fields():
    assert Defaults().replace(bandwidth=1000.0).bandwidth == 1000
    assert isinstance(Defaults().replace(bandwidth=1000.0).bandwidth, int)


def test_link_params_validate():
    assert LinkParams(1, 0, 0, 100).latency == 0.0
    for bad in (dict(bandwidth=0), dict(latency=-1), dict(jitter=math.nan), dict(loss=100.5)):
        kw = dict(bandwidth=1000, latency=1.0, jitter=0.0, loss=0.0) | bad
        with pytest.raises(TopoError):
            LinkParams(**kw)


def test_to_dict_round_trip():
    d = Defaults(bandwidth=7, cost="bandwidth")
    assert Defaults.from_dict(d.to_dict()) == d
    with pytest.raises(TopoError, match="must be an object"):
        Defaults.from_dict([1])
