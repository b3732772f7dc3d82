"""JSON-lines control protocol of the link emulator (see docs/design.md), shared by server and client.

One request per line, one response per request with the request's `id` echoed. The `add` request
carries two TAP fds as SCM_RIGHTS: [fd at a, fd at b]. Direction `ab` carries frames read from a's TAP
and written to b's TAP.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields, replace
from typing import Any

from meshsim.linkemu.engine import DirParams

OPS = ("add", "set", "remove", "stats", "ping")
MAX_LINE = 1 << 20
MAX_LINK_ID = 64
MAX_DELAY_MS = 600_000.0
PARAM_KEYS = tuple(f.name for f in fields(DirParams))


class ProtocolError(ValueError):
    """A request or response that does not follow the protocol."""


@dataclass(frozen=True)
class Request:
    """A validated request. `ab`/`ba` hold only the fields that were given (validated)."""

    id: Any
    op: str
    link: str | None = None
    ab: dict | None = None
    ba: dict | None = None


def encode(msg: dict) -> bytes:
    """Serialise one message as a JSON line."""
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


def _number(key: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProtocolError(f"{key} must be a finite number")
    if not lo <= value <= hi:
        raise ProtocolError(f"{key} must be within [{lo}, {hi}]")
    return float(value)


def _integer(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(f"{key} must be a non-negative integer")
    return value


def validate_params(raw: Any) -> dict:
    """Check a (possibly partial) P object; return the given fields with normalised types."""
    if not isinstance(raw, dict):
        raise ProtocolError("link parameters must be an object")
    unknown = set(raw) - set(PARAM_KEYS)
    if unknown:
        raise ProtocolError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    out: dict = {}
    for key, value in raw.items():
        if key == "rate_bps":
            out[key] = _integer(key, value)
        elif key in ("delay_ms", "jitter_ms"):
            out[key] = _number(key, value, 0.0, MAX_DELAY_MS)
        elif key == "loss_pct":
            out[key] = _number(key, value, 0.0, 100.0)
        elif key == "queue_bytes":
            out[key] = None if value is None else _integer(key, value)
        elif key == "up":
            if not isinstance(value, bool):
                raise ProtocolError("up must be a boolean")
            out[key] = value
    return out


def merge_params(base: DirParams, given: dict | None) -> DirParams:
    """Return `base` with the validated fields of `given` applied."""
    return replace(base, **given) if given else base


def _link_id(raw: Any) -> str:
    if not isinstance(raw, str) or not raw or len(raw) > MAX_LINK_ID:
        raise ProtocolError(f"link must be a non-empty string of at most {MAX_LINK_ID} chars")
    return raw


def parse_request(line: bytes | str) -> Request:
    """Parse and validate one request line; raise ProtocolError with a readable message."""
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"invalid JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("request must be a JSON object")
    req_id = msg.get("id")
    op = msg.get("op")
    if op not in OPS:
        raise ProtocolError(f"unknown op {op!r}; expected one of {', '.join(OPS)}")
    allowed = {"id", "op"} | ({"link"} if op in ("add", "set", "remove") else set())
    allowed |= {"ab", "ba"} if op in ("add", "set") else set()
    extra = set(msg) - allowed
    if extra:
        raise ProtocolError(f"unexpected field(s) for {op}: {', '.join(sorted(extra))}")
    if op in ("stats", "ping"):
        return Request(req_id, op)
    link = _link_id(msg.get("link"))
    if op == "remove":
        return Request(req_id, op, link)
    ab = validate_params(msg["ab"]) if "ab" in msg else None
    ba = validate_params(msg["ba"]) if "ba" in msg else None
    if op == "set" and ab is None and ba is None:
        raise ProtocolError("set needs ab and/or ba")
    return Request(req_id, op, link, ab, ba)


def _field(line: bytes | str, key: str) -> Any:
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return msg.get(key) if isinstance(msg, dict) else None


def request_id(line: bytes | str) -> Any:
    """Best-effort `id` of a line that failed validation (None if unreadable)."""
    return _field(line, "id")


def request_op(line: bytes | str) -> Any:
    """Best-effort `op` of a line that failed validation (None if unreadable)."""
    return _field(line, "op")


# Builders used by the client.


def add_msg(req_id: int, link: str, ab: dict, ba: dict) -> dict:
    return {
        "id": req_id,
        "op": "add",
        "link": _link_id(link),
        "ab": validate_params(ab),
        "ba": validate_params(ba),
    }


def set_msg(req_id: int, link: str, ab: dict | None = None, ba: dict | None = None) -> dict:
    msg: dict = {"id": req_id, "op": "set", "link": _link_id(link)}
    if ab is not None:
        msg["ab"] = validate_params(ab)
    if ba is not None:
        msg["ba"] = validate_params(ba)
    if ab is None and ba is None:
        raise ProtocolError("set needs ab and/or ba")
    return msg


def remove_msg(req_id: int, link: str) -> dict:
    return {"id": req_id, "op": "remove", "link": _link_id(link)}


def simple_msg(req_id: int, op: str) -> dict:
    if op not in ("stats", "ping"):
        raise ProtocolError(f"{op!r} needs arguments")
    return {"id": req_id, "op": op}


# Responses.


def ok(req_id: Any, **extra: Any) -> dict:
    return {"id": req_id, "ok": True, **extra}


def error(req_id: Any, message: str) -> dict:
    return {"id": req_id, "ok": False, "error": message}


def parse_response(line: bytes | str) -> dict:
    """Parse one response line; raise ProtocolError if it is not a response object."""
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"invalid JSON in response: {exc}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("ok"), bool):
        raise ProtocolError("response must be an object with a boolean 'ok'")
    return msg
