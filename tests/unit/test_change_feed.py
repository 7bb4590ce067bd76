from __future__ import annotations

import uuid

from server.adapters.change_feed import ChangeFeed


class FakeListener:
    def __init__(self) -> None:
        self.callbacks: dict[str, object] = {}
        self.on_connect: list[object] = []

    def subscribe(self, channel, callback, *, on_connect=None, **_: object) -> None:
        self.callbacks[channel] = callback
        self.on_connect.append(on_connect)


async def test_notifications_ring_only_that_users_subscriptions() -> None:
    listener = FakeListener()
    feed = ChangeFeed(listener)  # type: ignore[arg-type]
    alice, bob = uuid.uuid4(), uuid.uuid4()
    with feed.subscribe(alice) as a, feed.subscribe(bob) as b:
        assert feed.watchers == 2
        listener.callbacks["task_changes"](str(alice))  # type: ignore[operator]
        assert await a.wait(0.01)
        assert not await b.wait(0.01)
        listener.callbacks["task_changes"]("not-a-uuid")  # type: ignore[operator]
    assert feed.watchers == 0


async def test_reconnect_rings_everyone_and_close_ends_them() -> None:
    listener = FakeListener()
    feed = ChangeFeed(listener)  # type: ignore[arg-type]
    with feed.subscribe(uuid.uuid4()) as a, feed.subscribe(uuid.uuid4()) as b:
        await listener.on_connect[0](None)  # type: ignore[operator]
        assert await a.wait(0.01) and await b.wait(0.01)
        a.reset()
        feed.close()
        assert await a.wait(0.01) and a.closed and b.closed
    with feed.subscribe(uuid.uuid4()) as late:
        assert late.closed
