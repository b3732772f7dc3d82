"""Link parameters, global defaults and the validators shared by the model and its loaders."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from .errors import TopoError

FIELDS = ("bandwidth", "latency", "jitter", "loss")
COSTS = ("latency", "bandwidth")

MAX_BANDWIDTH = 100_000_000_000  # bit/s
MAX_DELAY = 60_000.0  # ms, for latency and jitter
MAX_LATENCY_SCALE = 100_000.0  # percent


def check_bool(name: str, value: Any) -> bool:
    """Return `value` if it is a real bool, else raise TopoError."""
    if not isinstance(value, bool):
        raise TopoError(f"{name}: must be true or false, got {value!r}")
    return value


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """Return `value` if it is an int (not a bool) in lo..hi, else raise TopoError."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise TopoError(f"{name}: must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise TopoError(f"{name}: must be between {lo} and {hi}, got {value}")
    return value


def check_float(
    name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False, unit: str = ""
) -> float:
    """Return `value` as a float if it is a finite number in [lo, hi] (or (lo, hi]), else raise TopoError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TopoError(f"{name}: must be a number, got {value!r}")
    value = float(value)
    suffix = f" {unit}" if unit else ""
    if not math.isfinite(value):
        raise TopoError(f"{name}: must be a finite number, got {value}")
    if value < lo or value > hi or (lo_open and value == lo):
        low = f"above {lo:g}" if lo_open else f"at least {lo:g}"
        raise TopoError(f"{name}: must be {low} and at most {hi:g}{suffix}, got {value:g}")
    return value


def check_field(name: str, value: Any, label: str | None = None) -> int | float:
    """Validate one link parameter (`name` in FIELDS); `label` names it in the error message."""
    label = label or name
    if name == "bandwidth":
        return check_int(f"{label} (bit/s)", value, 1, MAX_BANDWIDTH)
    if name in ("latency", "jitter"):
        return check_float(label, value, 0.0, MAX_DELAY, unit="ms")
    if name == "loss":
        return check_float(label, value, 0.0, 100.0, unit="%")
    raise TopoError(f"{label}: unknown link parameter (expected one of {', '.join(FIELDS)})")


@dataclass(frozen=True)
class LinkParams:
    """Shaping of one link, the same in both directions."""

    bandwidth: int  # bit/s, always >= 1
    latency: float  # ms, one way
    jitter: float  # ms
    loss: float  # percent 0..100

    def __post_init__(self) -> None:
        for name in FIELDS:
            object.__setattr__(self, name, check_field(name, getattr(self, name)))

    def to_dict(self) -> dict[str, int | float]:
        return {name: getattr(self, name) for name in FIELDS}


@dataclass(frozen=True)
class Defaults:
    """Global settings: how links are derived and selected, and how the client link is shaped."""

    bandwidth: int = 512_000
    decay: bool = True
    max_latency: float = 300.0
    min_bandwidth: int = 0
    jitter: float = 0.0
    loss: float = 0.0
    cost: Literal["latency", "bandwidth"] = "latency"
    latency_scale: float = 100.0  # percent: latency = distance_px * latency_scale / 100
    client_bandwidth: int = 0  # 0 = unshaped
    client_latency: float = 0.0
    client_jitter: float = 0.0
    client_loss: float = 0.0

    def __post_init__(self) -> None:
        checked = {
            "bandwidth": check_int("bandwidth (bit/s)", self.bandwidth, 1, MAX_BANDWIDTH),
            "decay": check_bool("decay", self.decay),
            "max_latency": check_float(
                "max_latency", self.max_latency, 0.0, MAX_DELAY, lo_open=True, unit="ms"
            ),
            "min_bandwidth": check_int("min_bandwidth (bit/s)", self.min_bandwidth, 0, MAX_BANDWIDTH),
            "jitter": check_float("jitter", self.jitter, 0.0, MAX_DELAY, unit="ms"),
            "loss": check_float("loss", self.loss, 0.0, 100.0, unit="%"),
            "cost": _check_cost(self.cost),
            "latency_scale": check_float(
                "latency_scale", self.latency_scale, 0.0, MAX_LATENCY_SCALE, lo_open=True, unit="%"
            ),
            "client_bandwidth": check_int(
                "client_bandwidth (bit/s)", self.client_bandwidth, 0, MAX_BANDWIDTH
            ),
            "client_latency": check_float("client_latency", self.client_latency, 0.0, MAX_DELAY, unit="ms"),
            "client_jitter": check_float("client_jitter", self.client_jitter, 0.0, MAX_DELAY, unit="ms"),
            "client_loss": check_float("client_loss", self.client_loss, 0.0, 100.0, unit="%"),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, d: Any, where: str = "defaults") -> Defaults:
        """Build from a mapping of any subset of the settings; unknown names are rejected."""
        if not isinstance(d, dict):
            raise TopoError(f"{where}: must be an object, got {type(d).__name__}")
        return cls().replace(**d)

    def replace(self, **changes: Any) -> Defaults:
        """Return a copy with `changes` applied; raises TopoError on unknown names or bad values."""
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise TopoError(
                f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
                f" (known: {', '.join(self.names())})"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_cost(value: Any) -> str:
    if value not in COSTS or not isinstance(value, str):
        raise TopoError(f"cost: must be 'latency' or 'bandwidth', got {value!r}")
    return value
