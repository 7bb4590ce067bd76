"""The in-memory revocation set, fed by LISTEN/NOTIFY from real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from server.adapters.revocations import SessionRevocations
from server.adapters.unit_of_work import UnitOfWork
from server.db import pool as db_pool
from server.db.listener import NotificationListener


class _Unreachable:
    async def is_active(self, session_id: uuid.UUID) -> bool:
        raise AssertionError("the database fallback should not be used once ready")


async def _new_session(pool: db_pool.Pool) -> uuid.UUID:
    session_id = uuid.uuid4()
    async with UnitOfWork(pool) as uow:
        user = await uow.users.add(f"r-{session_id.hex[:10]}@example.com", "hash", "R")
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        await uow.sessions.add(session_id, user.id, "jti", expires)
        await uow.commit()
    return session_id


async def _revoke(pool: db_pool.Pool, session_id: uuid.UUID, commit: bool = True) -> None:
    async with UnitOfWork(pool) as uow:
        await uow.sessions.revoke(session_id)
        if commit:
            await uow.commit()


async def _wait_ready(revocations: SessionRevocations) -> None:
    for _ in range(100):
        if revocations.ready:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("listener never became ready")


async def _eventually_inactive(revocations: SessionRevocations, session_id: uuid.UUID) -> float:
    started = asyncio.get_running_loop().time()
    while await revocations.is_active(session_id):
        assert asyncio.get_running_loop().time() - started < 1.0, "not revoked within 1 s"
        await asyncio.sleep(0.005)
    return asyncio.get_running_loop().time() - started


async def test_revocation_reaches_a_listener_within_a_second(database_url: str, pool) -> None:
    session_id = await _new_session(pool)
    listener = NotificationListener(database_url)
    revocations = SessionRevocations(listener, 900, _Unreachable())
    listener.start()
    try:
        await _wait_ready(revocations)
        assert await revocations.is_active(session_id)
        await _revoke(pool, session_id)
        await _eventually_inactive(revocations, session_id)
    finally:
        await listener.stop()


async def test_uncommitted_revocation_is_not_seen(database_url: str, pool) -> None:
    session_id = await _new_session(pool)
    listener = NotificationListener(database_url)
    revocations = SessionRevocations(listener, 900, _Unreachable())
    listener.start()
    try:
        await _wait_ready(revocations)
        await _revoke(pool, session_id, commit=False)
        await asyncio.sleep(0.2)
        assert await revocations.is_active(session_id)
    finally:
        await listener.stop()


async def test_reload_on_connect_covers_earlier_revocations(database_url: str, pool) -> None:
    session_id = await _new_session(pool)
    await _revoke(pool, session_id)
    listener = NotificationListener(database_url)
    revocations = SessionRevocations(listener, 900, _Unreachable())
    listener.start()
    try:
        await _wait_ready(revocations)
        assert not await revocations.is_active(session_id)
    finally:
        await listener.stop()


async def test_falls_back_to_the_database_until_ready() -> None:
    asked: list[uuid.UUID] = []

    class Fallback:
        async def is_active(self, session_id: uuid.UUID) -> bool:
            asked.append(session_id)
            return False

    listener = NotificationListener("postgresql://nobody@127.0.0.1:1/none")
    revocations = SessionRevocations(listener, 900, Fallback())
    listener.start()
    try:
        sid = uuid.uuid4()
        assert not await revocations.is_active(sid)
        assert asked == [sid] and not revocations.ready
    finally:
        await listener.stop()


@pytest.fixture(autouse=True)
def _quiet_listener_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR", logger="server.db")


async def _delete_user_of(pool: db_pool.Pool, session_id: uuid.UUID) -> None:
    async with pool.connection() as connection:
        cursor = await connection.execute(
            "SELECT user_id FROM sessions WHERE id = %s", (session_id,)
        )
        row = await cursor.fetchone()
    assert row is not None
    async with UnitOfWork(pool) as uow:
        await uow.sessions.revoke_all(row[0])
        assert await uow.users.delete(row[0])
        await uow.commit()


async def test_deleting_a_user_reaches_a_listener_within_a_second(database_url: str, pool) -> None:
    session_id = await _new_session(pool)
    listener = NotificationListener(database_url)
    revocations = SessionRevocations(listener, 900, _Unreachable())
    listener.start()
    try:
        await _wait_ready(revocations)
        assert await revocations.is_active(session_id)
        await _delete_user_of(pool, session_id)
        await _eventually_inactive(revocations, session_id)
    finally:
        await listener.stop()


async def test_a_listener_connecting_after_a_user_was_deleted_still_refuses(
    database_url: str, pool
) -> None:
    session_id = await _new_session(pool)
    await _delete_user_of(pool, session_id)
    listener = NotificationListener(database_url)
    revocations = SessionRevocations(listener, 900, _Unreachable())
    listener.start()
    try:
        await _wait_ready(revocations)
        assert not await revocations.is_active(session_id)
    finally:
        await listener.stop()
