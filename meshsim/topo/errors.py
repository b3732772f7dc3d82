"""Errors raised by the topology model; their messages are meant for the user."""


class TopoError(ValueError):
    """Bad input; the message is shown to the user (the API maps it to 4xx)."""


class NotFound(TopoError):
    """An unknown server id, or a pair that is not linked."""


class Conflict(TopoError):
    """A request that is valid in itself but not in the current state (e.g. pinning an unlinked pair)."""
