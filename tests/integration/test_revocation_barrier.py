"""The revocation barrier on real PostgreSQL, with two listeners standing for two processes.

Each "process" is a listener, its revocation set and its barrier, as `create_server`
wires them. A revocation committed through one process's unit of work must be in
force in both processes' memory the moment the unit of work returns: no polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import psycopg
import pytest

from server.adapters.revocation_barrier import RevocationBarrier
from server.adapters.revocations import SessionRevocations
from server.adapters.unit_of_work import UnitOfWork
from server.db import pool as db_pool
from server.db.listener import LISTENER_PREFIX, NotificationListener, ready_listeners

pytestmark = pytest.mark.integration
TIMEOUT_S = 1.5


class _Unreachable:
    async def is_active(self, session_id: uuid.UUID) -> bool:
        raise AssertionError("the database fallback should not be used once ready")


@dataclass
class _Process:
    listener: NotificationListener
    revocations: SessionRevocations
    barrier: RevocationBarrier


@contextlib.asynccontextmanager
async def _process(url: str, pool: db_pool.Pool) -> AsyncIterator[_Process]:
    listener = NotificationListener(url)

    async def live() -> list[str]:
        async with pool.connection() as connection:
            return await ready_listeners(connection)

    barrier = RevocationBarrier(listener, live, TIMEOUT_S)
    revocations = SessionRevocations(listener, 900, _Unreachable(), barrier.acknowledge)
    listener.start()
    try:
        for _ in range(250):
            if revocations.ready:
                break
            await asyncio.sleep(0.02)
        assert revocations.ready, "listener never became ready"
        yield _Process(listener, revocations, barrier)
    finally:
        await listener.stop()


async def _user_with_sessions(pool: db_pool.Pool, count: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    ids = [uuid.uuid4() for _ in range(count)]
    async with UnitOfWork(pool) as uow:
        user = await uow.users.add(f"b-{ids[0].hex[:10]}@example.com", "hash", "B")
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        for session_id in ids:
            await uow.sessions.add(session_id, user.id, f"jti-{session_id}", expires)
        await uow.commit()
    return user.id, ids


async def test_ready_listeners_are_listed_by_name(database_url: str, pool) -> None:
    async with _process(database_url, pool) as a, _process(database_url, pool) as b:
        async with pool.connection() as connection:
            names = set(await ready_listeners(connection))
        assert {a.listener.name, b.listener.name} <= names
    for _ in range(200):  # a closed connection's backend exits a moment later
        async with pool.connection() as connection:
            left = set(await ready_listeners(connection))
        if not {a.listener.name, b.listener.name} & left:
            break
        await asyncio.sleep(0.01)
    assert not {a.listener.name, b.listener.name} & left


async def test_logout_is_in_force_in_both_processes_when_it_returns(
    database_url: str, pool
) -> None:
    async with _process(database_url, pool) as a, _process(database_url, pool) as b:
        for _ in range(10):  # a race lost once in ten would show here
            _, [session_id] = await _user_with_sessions(pool, 1)
            async with UnitOfWork(pool, a.barrier.wait) as uow:
                assert await uow.sessions.revoke(session_id)
                await uow.commit()
            assert not await a.revocations.is_active(session_id)
            assert not await b.revocations.is_active(session_id)


async def test_revoking_all_sessions_waits_for_every_one(database_url: str, pool) -> None:
    async with _process(database_url, pool) as a, _process(database_url, pool) as b:
        user_id, sessions = await _user_with_sessions(pool, 5)
        async with UnitOfWork(pool, b.barrier.wait) as uow:
            assert await uow.sessions.revoke_all(user_id, keep=sessions[0]) == 4
            await uow.commit()
        for process in (a, b):
            assert await process.revocations.is_active(sessions[0])
            for session_id in sessions[1:]:
                assert not await process.revocations.is_active(session_id)


async def test_a_rolled_back_revocation_is_not_waited_for(database_url: str, pool) -> None:
    waited: list[list[uuid.UUID]] = []

    async def barrier(ids: list[uuid.UUID]) -> None:
        waited.append(ids)

    _, [session_id] = await _user_with_sessions(pool, 1)
    async with UnitOfWork(pool, barrier) as uow:
        await uow.sessions.revoke(session_id)
    assert waited == []
    async with UnitOfWork(pool, barrier) as uow:
        await uow.sessions.revoke(session_id)
        await uow.commit()
    assert waited == [[session_id]]


async def test_a_silent_listener_costs_the_bound_not_more(database_url: str, pool) -> None:
    """A listed listener that never acknowledges (a stuck or dying process)."""
    async with _process(database_url, pool) as a:
        name = LISTENER_PREFIX + "stuck"
        async with await psycopg.AsyncConnection.connect(
            database_url, autocommit=True, application_name=name
        ):
            _, [session_id] = await _user_with_sessions(pool, 1)
            started = time.monotonic()
            async with UnitOfWork(pool) as uow:
                await uow.sessions.revoke(session_id)
                await uow.commit()
            assert not await a.barrier.wait([session_id])
            assert TIMEOUT_S - 0.1 <= time.monotonic() - started <= TIMEOUT_S + 1.0
            assert not await a.revocations.is_active(session_id)  # a's own ack came


async def test_a_listener_dying_mid_wait_is_dropped_from_the_wait(database_url: str, pool) -> None:
    async with _process(database_url, pool) as a:
        dying = await psycopg.AsyncConnection.connect(
            database_url, autocommit=True, application_name=LISTENER_PREFIX + "dying"
        )
        _, [session_id] = await _user_with_sessions(pool, 1)
        async with UnitOfWork(pool) as uow:
            await uow.sessions.revoke(session_id)
            await uow.commit()
        started = time.monotonic()
        waiting = asyncio.create_task(a.barrier.wait([session_id]))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # it waits for the listed, silent listener
        await dying.close()  # its process dies: the connection goes
        assert await waiting  # everyone still listed acknowledged
        assert time.monotonic() - started < TIMEOUT_S - 0.2
