"""A Synapse module reporting the events a server sends, receives and delivers to the controller.

Loaded through homeserver.yaml `modules:` with config `{"socket": PATH, "server_id": N}`.
Each report is one JSON datagram on a non-blocking UNIX datagram socket: a full or absent
socket drops the report, so the module never blocks Synapse's reactor. The socket is a path
in the host filesystem, so reports never cross the emulated links.

    event_sent      {event_id, room_id, server, origin, sender, event_type, destinations, ts}
    event_received  {event_id, room_id, server, origin, sender, event_type, ts}
    event_delivered {event_id, room_id, server, origin, destination, method, ts}

`server` is the reporting server's id, `origin` the id of the server the event came from, ids
parsed from server names `synapseN` (events of other servers carry `origin: null`).
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from meshsim.homeserver.config import server_id_of

if TYPE_CHECKING:
    from synapse.events import EventBase
    from synapse.module_api import ModuleApi
    from synapse.module_api.callbacks.federation import FederationEventDeliveryEvent

MEMBER = "m.room.member"


def _domain(user_id: str) -> str:
    return user_id.split(":", 1)[1] if ":" in user_id else ""


def joined_servers(state: Mapping[tuple[str, str], Any]) -> set[str]:
    """Server names with at least one joined member in a room's current state map."""
    out: set[str] = set()
    for (etype, state_key), ev in state.items():
        content = getattr(ev, "content", None) or {}
        if etype == MEMBER and content.get("membership") == "join":
            out.add(_domain(state_key))
    return out


class DatagramReporter:
    """Fire-and-forget JSON datagrams to one path; counts what it had to drop."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sent = 0
        self.dropped = 0
        self._sock = socket.socket(
            socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
        )

    def send(self, msg: dict[str, Any]) -> bool:
        try:
            self._sock.sendto(json.dumps(msg, separators=(",", ":")).encode(), self.path)
        except OSError:  # EAGAIN (receiver full), ENOENT / ECONNREFUSED (no receiver), EMSGSIZE
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        self._sock.close()


class TelemetryModule:
    """The module Synapse instantiates: `TelemetryModule(config, api)`."""

    def __init__(self, config: dict[str, Any], api: ModuleApi) -> None:
        self._server_id: int = config["server_id"]
        self._methods: frozenset[str] = frozenset(config.get("delivery_methods", ["/send"]))
        self._server_name = api.server_name
        self._api = api
        self.reporter = DatagramReporter(config["socket"])
        api.register_third_party_rules_callbacks(on_new_event=self.on_new_event)
        api.register_federation_callbacks(on_event_delivered_over_federation=self.on_event_delivered)

    @staticmethod
    def parse_config(config: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(config.get("socket"), str) or not config["socket"]:
            raise ValueError("telemetry module: 'socket' must be a path")
        sid = config.get("server_id")
        if not isinstance(sid, int) or isinstance(sid, bool) or sid < 0:
            raise ValueError("telemetry module: 'server_id' must be a non-negative integer")
        methods = config.get("delivery_methods", ["/send"])
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise ValueError("telemetry module: 'delivery_methods' must be a list of strings")
        return config

    async def on_new_event(self, event: EventBase, state: Mapping[tuple[str, str], EventBase]) -> None:
        origin_name = _domain(event.sender)
        msg: dict[str, Any] = {
            "event_id": event.event_id,
            "room_id": event.room_id,
            "server": self._server_id,
            "origin": server_id_of(origin_name),
            "sender": event.sender,
            "event_type": event.type,
            "ts": int(time.time() * 1000),
        }
        if origin_name == self._server_name:
            msg["type"] = "event_sent"
            others = (await self._hosts_in_room(event.room_id, state)) - {self._server_name}
            msg["destinations"] = sorted(i for i in map(server_id_of, others) if i is not None)
        else:
            msg["type"] = "event_received"
        self.reporter.send(msg)

    async def _hosts_in_room(self, room_id: str, state: Mapping[tuple[str, str], EventBase]) -> set[str]:
        """Where the federation sender will send: during a faster (partial-state) join the state map
        lacks most members, so ask the same approximation the federation sender uses."""
        hosts = joined_servers(state)
        controllers = getattr(self._api, "_storage_controllers", None)
        lookup = getattr(
            getattr(controllers, "state", None),
            "get_current_hosts_in_room_or_partial_state_approximation",
            None,
        )
        if lookup is not None:
            with contextlib.suppress(Exception):  # never let telemetry break event handling
                hosts |= set(await lookup(room_id))
        return hosts

    async def on_event_delivered(self, delivery: FederationEventDeliveryEvent) -> None:
        method = str(getattr(delivery.method, "value", delivery.method))
        if method not in self._methods:
            return
        destination = server_id_of(delivery.server_name)
        ts = int(time.time() * 1000)
        for event in delivery.events:
            self.reporter.send(
                {
                    "type": "event_delivered",
                    "event_id": event.event_id,
                    "room_id": event.room_id,
                    "server": self._server_id,
                    "origin": self._server_id,
                    "destination": destination,
                    "method": method,
                    "ts": ts,
                }
            )
