"""Connections: fail fast while the database is down, bounded waits, no stale connections."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any, cast

import psycopg_pool
import pytest

from server import errors
from server.db import executor
from server.db.connections import Connections, closed_by_server

OPEN: list[FakeConnection] = []


@pytest.fixture(autouse=True)
def _close_sockets() -> Iterator[None]:
    yield
    while OPEN:
        connection = OPEN.pop()
        connection.local.close()
        connection.remote.close()


class FakeConnection:
    """Stands for a pooled connection: its socket is one end of a socketpair."""

    def __init__(self) -> None:
        self.local, self.remote = socket.socketpair()
        OPEN.append(self)
        self.closed = False
        self.broken = False

    def fileno(self) -> int:
        return self.local.fileno()

    async def close(self) -> None:
        self.closed = True
        self.local.close()
        self.remote.close()

    def closed_by_server(self) -> FakeConnection:
        self.remote.sendall(b"E")  # what PostgreSQL sends when it ends a session
        return self


class FakePool:
    def __init__(self, connections: list[FakeConnection]) -> None:
        self.idle = connections
        self.returned: list[FakeConnection] = []
        self.calls = 0

    async def getconn(self, timeout: float | None = None) -> executor.Connection:  # noqa: ASYNC109 (psycopg_pool's signature)
        self.calls += 1
        if not self.idle:
            await asyncio.sleep(timeout or 0)
            raise psycopg_pool.PoolTimeout("no connection")
        return cast(executor.Connection, self.idle.pop(0))

    async def putconn(self, conn: executor.Connection) -> None:
        self.returned.append(cast(Any, conn))


class FakeAvailability:
    def __init__(self, available: bool = True, answers: bool | None = None) -> None:
        self._available = available
        self.answers = available if answers is None else answers
        self.suspected = 0
        self.confirmed = 0

    @property
    def available(self) -> bool:
        return self._available

    def go_down(self) -> None:
        self._available = False
        self.answers = False

    async def confirm(self) -> bool:
        self.confirmed += 1
        self._available = self.answers
        return self.answers

    def suspect(self) -> None:
        self.suspected += 1


async def test_while_the_database_is_down_calls_fail_at_once() -> None:
    pool = FakePool([FakeConnection()])
    availability = FakeAvailability(available=False)
    started = time.monotonic()
    with pytest.raises(errors.Unavailable) as caught:
        await Connections(pool, availability, acquire_timeout_s=5).getconn()
    assert caught.value.reason == "DATABASE_UNAVAILABLE"
    assert time.monotonic() - started < 0.1
    assert availability.confirmed == 1 and pool.calls == 0


async def test_the_first_call_after_the_database_returns_is_served() -> None:
    connection = FakeConnection()
    availability = FakeAvailability(available=False, answers=True)
    got = await Connections(FakePool([connection]), availability, acquire_timeout_s=5).getconn()
    assert got is cast(Any, connection)


async def test_a_busy_pool_is_a_bounded_wait_then_database_busy() -> None:
    started = time.monotonic()
    with pytest.raises(errors.Unavailable) as caught:
        await Connections(FakePool([]), FakeAvailability(), acquire_timeout_s=0.3).getconn()
    assert caught.value.reason == "DATABASE_BUSY"
    assert 0.3 <= time.monotonic() - started < 0.6


async def test_a_waiting_caller_stops_waiting_when_the_database_goes_down() -> None:
    availability = FakeAvailability()
    connections = Connections(FakePool([]), availability, acquire_timeout_s=30)
    waiting = asyncio.ensure_future(connections.getconn())
    await asyncio.sleep(0.1)
    availability.go_down()
    started = time.monotonic()
    with pytest.raises(errors.Unavailable) as caught:
        await waiting
    assert caught.value.reason == "DATABASE_UNAVAILABLE"
    assert time.monotonic() - started < 0.6


async def test_connections_the_server_closed_are_never_handed_out() -> None:
    stale = [FakeConnection().closed_by_server(), FakeConnection().closed_by_server()]
    live = FakeConnection()
    pool = FakePool([*stale, live])
    availability = FakeAvailability()
    got = await Connections(pool, availability, acquire_timeout_s=5).getconn()
    assert got is cast(Any, live)
    assert pool.returned == stale and all(c.closed for c in stale)
    assert availability.suspected == 2


def test_an_idle_healthy_connection_is_not_readable() -> None:
    connection = FakeConnection()
    assert not closed_by_server(cast(executor.Connection, connection))
    assert closed_by_server(cast(executor.Connection, connection.closed_by_server()))


async def test_a_connection_returned_broken_makes_availability_probe() -> None:
    pool = FakePool([])
    availability = FakeAvailability()
    broken = FakeConnection()
    broken.broken = True
    await Connections(pool, availability, acquire_timeout_s=1).putconn(cast(Any, broken))
    assert availability.suspected == 1 and pool.returned == [broken]
