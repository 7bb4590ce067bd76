"""Availability: probes PostgreSQL on a connection of its own, shares probes, reports changes."""

from __future__ import annotations

import asyncio
import time

from server.db.availability import Availability

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nothing"


async def test_a_reachable_database_is_available(database_url: str) -> None:
    availability = Availability(database_url)
    try:
        assert await availability.confirm()
        assert availability.available
    finally:
        await availability.close()


async def test_an_unreachable_database_is_known_at_once_and_reported_once() -> None:
    availability = Availability(UNREACHABLE, timeout_s=1.0)
    changes: list[bool] = []

    async def record(available: bool) -> None:
        changes.append(available)

    availability.on_change(record)
    started = time.monotonic()
    answers = await asyncio.gather(*(availability.confirm() for _ in range(20)))
    assert answers == [False] * 20
    assert time.monotonic() - started < 1.0
    assert not availability.available
    assert await availability.confirm() is False
    assert changes == [False]
