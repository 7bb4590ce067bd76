"""The revocation barrier's logic, with fake listeners on a fake notification bus."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

import pytest

from server.adapters import revocation_barrier
from server.adapters.revocation_barrier import ACK_CHANNEL, RevocationBarrier
from server.adapters.revocations import CHANNEL, SessionRevocations
from server.db.listener import NotificationListener

BOUND_S = 0.3


class _Bus:
    """Delivers what any fake listener sends to every subscriber, on the next loop turn."""

    def __init__(self) -> None:
        self.subscribers: dict[str, list[Callable[[str], None]]] = {}
        self.sent: list[tuple[str, str]] = []

    def publish(self, channel: str, payload: str) -> None:
        self.sent.append((channel, payload))
        for callback in self.subscribers.get(channel, []):
            asyncio.get_running_loop().call_soon(callback, payload)


class _Listener:
    def __init__(self, bus: _Bus, name: str) -> None:
        self.bus = bus
        self.name = name
        self.connected = True

    def subscribe(self, channel: str, callback: Callable[[str], None], **hooks: Any) -> None:
        self.bus.subscribers.setdefault(channel, []).append(callback)

    def send(self, channel: str, payload: str) -> None:
        self.bus.publish(channel, payload)


def _barrier(listener: _Listener, live: Callable[[], list[str]]) -> RevocationBarrier:
    async def live_listeners() -> list[str]:
        return live()

    return RevocationBarrier(cast(NotificationListener, listener), live_listeners, BOUND_S)


def _ack(bus: _Bus, name: str, session_id: uuid.UUID) -> None:
    bus.publish(ACK_CHANNEL, f"{name} {session_id}")


async def test_waits_until_every_listed_listener_acknowledged_every_session() -> None:
    bus = _Bus()
    barrier = _barrier(_Listener(bus, "todo-listener a"), lambda: ["todo-listener a", "b"])
    first, second = uuid.uuid4(), uuid.uuid4()
    waiting = asyncio.create_task(barrier.wait([first, second]))
    for name, session_id in [("todo-listener a", first), ("todo-listener a", second), ("b", first)]:
        _ack(bus, name, session_id)
        await asyncio.sleep(0.02)
        assert not waiting.done(), f"answered before b acknowledged {second}"
    _ack(bus, "b", second)
    assert await asyncio.wait_for(waiting, BOUND_S / 2)


async def test_acknowledgements_arriving_before_the_wait_count() -> None:
    bus = _Bus()
    barrier = _barrier(_Listener(bus, "a"), lambda: ["a", "b"])
    session_id = uuid.uuid4()
    _ack(bus, "a", session_id)
    _ack(bus, "b", session_id)
    await asyncio.sleep(0)
    started = time.monotonic()
    assert await barrier.wait([session_id])
    assert time.monotonic() - started < BOUND_S / 2


async def test_a_silent_listener_costs_the_bound_then_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = _Bus()
    barrier = _barrier(_Listener(bus, "a"), lambda: ["a", "hung"])
    session_id = uuid.uuid4()
    _ack(bus, "a", session_id)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        assert not await barrier.wait([session_id])
    assert BOUND_S - 0.05 <= time.monotonic() - started < BOUND_S + 0.5
    assert "hung" in caplog.text and "timed out" in caplog.text


async def test_a_listener_gone_from_the_listing_is_no_longer_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(revocation_barrier, "RELIST_S", 0.05)
    bus = _Bus()
    listed = ["a", "dying"]
    barrier = _barrier(_Listener(bus, "a"), lambda: list(listed))
    session_id = uuid.uuid4()
    _ack(bus, "a", session_id)
    waiting = asyncio.create_task(barrier.wait([session_id]))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    listed.remove("dying")  # its process died: its connection is gone
    assert await asyncio.wait_for(waiting, BOUND_S / 2)


async def test_no_wait_without_revocations_or_without_a_listener() -> None:
    bus = _Bus()
    listener = _Listener(bus, "a")

    def unlistable() -> list[str]:
        raise AssertionError("listed needlessly")

    barrier = _barrier(listener, unlistable)
    assert await barrier.wait([])
    listener.connected = False  # reconnecting: no acknowledgement could be heard
    assert not await barrier.wait([uuid.uuid4()])


async def test_a_failed_listing_answers_at_once(caplog: pytest.LogCaptureFixture) -> None:
    def down() -> list[str]:
        raise OSError("database down")

    barrier = _barrier(_Listener(_Bus(), "a"), down)
    with caplog.at_level(logging.WARNING):
        assert not await barrier.wait([uuid.uuid4()])
    assert "could not list" in caplog.text


async def test_malformed_acknowledgements_are_ignored() -> None:
    bus = _Bus()
    barrier = _barrier(_Listener(bus, "a"), lambda: ["a"])
    bus.publish(ACK_CHANNEL, "a not-a-uuid")
    bus.publish(ACK_CHANNEL, "")
    await asyncio.sleep(0)
    assert not await barrier.wait([uuid.uuid4()])


class _NeverAsked:
    async def is_active(self, session_id: uuid.UUID) -> bool:
        raise AssertionError("the database fallback is not used here")


async def test_a_process_acknowledges_a_revocation_after_applying_it() -> None:
    bus = _Bus()
    listener = _Listener(bus, "a")
    barrier = _barrier(listener, lambda: ["a"])
    fake = cast(NotificationListener, listener)
    revocations = SessionRevocations(fake, 900, _NeverAsked(), barrier.acknowledge)
    revocations._ready = True  # as after the listener's reload
    session_id = uuid.uuid4()
    assert await revocations.is_active(session_id)
    bus.publish(CHANNEL, "garbage")
    bus.publish(CHANNEL, str(session_id))
    assert await barrier.wait([session_id])
    assert not await revocations.is_active(session_id)
    assert bus.sent.count((ACK_CHANNEL, f"a {session_id}")) == 1
    assert not any(payload.endswith("garbage") for _, payload in bus.sent[2:])
