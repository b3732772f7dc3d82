"""Node kinds by name."""

from __future__ import annotations

from collections.abc import Callable

from .base import Node, NodeContext
from .router import RouterNode

Factory = Callable[[NodeContext], Node]
_KINDS: dict[str, Factory] = {"router": RouterNode}


def register(name: str, factory: Factory) -> None:
    if name in _KINDS:
        raise ValueError(f"node kind {name!r} is already registered")
    _KINDS[name] = factory


def kinds() -> list[str]:
    _load_optional()
    return sorted(_KINDS)


def create(kind: str, ctx: NodeContext) -> Node:
    _load_optional()
    try:
        factory = _KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown node kind {kind!r}; supported: {', '.join(sorted(_KINDS))}") from None
    return factory(ctx)


def _load_optional() -> None:
    if "synapse" not in _KINDS:
        try:
            from .synapse import SynapseNode
        except ImportError:
            return
        _KINDS["synapse"] = SynapseNode
