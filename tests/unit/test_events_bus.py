"""The event bus: snapshot first, ordered deltas, droppable telemetry, overflow ends a subscription."""

from __future__ import annotations

import asyncio

from meshsim.events import Bus


def run(coro):
    return asyncio.run(coro)


def test_snapshot_then_ordered_deltas():
    async def main():
        state = {"n": 0}
        bus = Bus(lambda: dict(state))
        bus.publish({"type": "server_added", "id": 0})  # before subscribing: only in the snapshot's world
        state["n"] = 1
        snap, sub = bus.subscribe()
        assert snap == {"type": "snapshot", "seq": 0, "topology": {"n": 1}}
        for i in range(5):
            bus.publish({"type": "server_updated", "id": i})
        got = [await sub.get() for _ in range(5)]
        assert [m["seq"] for m in got] == [1, 2, 3, 4, 5]
        assert [m["id"] for m in got] == [0, 1, 2, 3, 4]
        bus.unsubscribe(sub)
        assert bus.subscribers == 0

    run(main())


def test_slow_subscriber_skips_telemetry_but_keeps_state_deltas():
    async def main():
        bus = Bus(dict, max_queue=50, soft_limit=10)
        _, sub = bus.subscribe()
        for i in range(10):
            bus.publish({"type": "link_updated", "i": i})
        for i in range(100):
            bus.publish({"type": "event_sent", "i": i})
        bus.publish({"type": "server_removed", "id": 3})
        assert sub.dropped == 100 and not sub.overflowed
        got = [await sub.get() for _ in range(11)]
        assert got[-1]["type"] == "server_removed"
        assert [m["seq"] for m in got] == list(range(1, 12))  # no gaps: dropped ones never got a seq

    run(main())


def test_overflow_ends_the_subscription_with_none():
    async def main():
        bus = Bus(dict, max_queue=5, soft_limit=5)
        _, slow = bus.subscribe()
        _, fast = bus.subscribe()
        for i in range(5):
            bus.publish({"type": "link_updated", "i": i})
            assert (await fast.get())["i"] == i
        bus.publish({"type": "link_updated", "i": 5})
        assert slow.overflowed
        assert await slow.get() is None
        assert (await fast.get())["i"] == 5  # the others are not affected

    run(main())


def test_listeners_see_everything():
    async def main():
        bus = Bus(dict)
        seen = []
        bus.listen(seen.append)
        bus.publish({"type": "event_sent"})
        assert seen == [{"type": "event_sent"}]

    run(main())
