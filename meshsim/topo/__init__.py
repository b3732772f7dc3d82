"""Pure topology model: servers, defaults, derived links, pins, cuts, neighbour selection, routes, diffs."""

from .diff import TopoDiff, apply_route_changes, diff, pair_key, route_changes
from .errors import Conflict, NotFound, TopoError
from .model import MAX_ID, Link, Server, Topology
from .params import FIELDS, Defaults, LinkParams
from .selection import DEGREE_CAP

__all__ = [
    "DEGREE_CAP",
    "FIELDS",
    "MAX_ID",
    "Conflict",
    "Defaults",
    "Link",
    "LinkParams",
    "NotFound",
    "Server",
    "TopoDiff",
    "TopoError",
    "Topology",
    "apply_route_changes",
    "diff",
    "pair_key",
    "route_changes",
]
