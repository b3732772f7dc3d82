"""Request bodies of the REST API. Strict: wrong types and unknown fields are 422, nothing changes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class NewServer(Strict):
    x: float = Field(ge=-100_000, le=100_000)
    y: float = Field(ge=-100_000, le=100_000)
    kind: Literal["synapse", "router"] | None = None


class Position(Strict):
    x: float = Field(ge=-100_000, le=100_000)
    y: float = Field(ge=-100_000, le=100_000)


class LinkPins(Strict):
    bandwidth: int | None = Field(default=None, ge=1, le=100_000_000_000, description="bit/s")
    latency: float | None = Field(default=None, ge=0, le=60_000, description="ms, one way")
    jitter: float | None = Field(default=None, ge=0, le=60_000, description="ms")
    loss: float | None = Field(default=None, ge=0, le=100, description="percent")


class DefaultsPatch(Strict):
    bandwidth: int | None = Field(default=None, ge=1, le=100_000_000_000)
    decay: bool | None = None
    max_latency: float | None = Field(default=None, gt=0, le=60_000)
    min_bandwidth: int | None = Field(default=None, ge=0, le=100_000_000_000)
    jitter: float | None = Field(default=None, ge=0, le=60_000)
    loss: float | None = Field(default=None, ge=0, le=100)
    cost: Literal["latency", "bandwidth"] | None = None
    latency_scale: float | None = Field(default=None, gt=0, le=100_000)
    client_bandwidth: int | None = Field(default=None, ge=0, le=100_000_000_000)
    client_latency: float | None = Field(default=None, ge=0, le=60_000)
    client_jitter: float | None = Field(default=None, ge=0, le=60_000)
    client_loss: float | None = Field(default=None, ge=0, le=100)


class Chat(Strict):
    server: int = Field(ge=0, lt=65000)
    body: str = Field(min_length=1, max_length=4000)


class Partition(Strict):
    servers: list[int] = Field(min_length=1, max_length=65000)


FIELD = Literal["bandwidth", "latency", "jitter", "loss"]
