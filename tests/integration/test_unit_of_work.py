from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg import pq

from server import domain, errors
from server.adapters.unit_of_work import UnitOfWork
from server.config import Settings
from server.db import pool as db_pool


def _email() -> str:
    return f"uow-{uuid.uuid4().hex}@example.com"


async def _find(pool: db_pool.Pool, email: str) -> domain.Credentials | None:
    async with UnitOfWork(pool).autocommit() as reader:
        return await reader.users.get_credentials(email)


@pytest.fixture
async def committed_user(pool: db_pool.Pool) -> AsyncIterator[domain.User]:
    """A committed user, deleted (with its tasks and sessions) after the test."""
    async with UnitOfWork(pool) as uow:
        user = await uow.users.add(_email(), "hash", "Committed")
        await uow.commit()
    yield user
    async with pool.connection() as connection:
        await connection.execute("DELETE FROM users WHERE id = %s", (user.id,))


async def test_commit_persists(committed_user: domain.User, pool: db_pool.Pool) -> None:
    found = await _find(pool, committed_user.email)

    assert found is not None and found.user == committed_user


async def test_leaving_without_commit_rolls_back(pool: db_pool.Pool) -> None:
    email = _email()
    async with UnitOfWork(pool) as uow:
        await uow.users.add(email, "hash", "Forgotten")
        assert await uow.users.get_credentials(email) is not None  # visible inside

    assert await _find(pool, email) is None


async def test_an_exception_rolls_back_and_propagates(pool: db_pool.Pool) -> None:
    email = _email()
    with pytest.raises(errors.NotFound):
        async with UnitOfWork(pool) as uow:
            await uow.users.add(email, "hash", "Failed")
            raise errors.NotFound("boom")

    assert await _find(pool, email) is None


async def test_work_after_commit_needs_another_commit(
    committed_user: domain.User, pool: db_pool.Pool
) -> None:
    async with UnitOfWork(pool) as uow:
        kept = await uow.tasks.add(committed_user.id, domain.TaskFields(title="kept"))
        await uow.commit()
        dropped = await uow.tasks.add(committed_user.id, domain.TaskFields(title="dropped"))

    async with UnitOfWork(pool).autocommit() as reader:
        assert await reader.tasks.get(committed_user.id, kept.id) == kept
        assert await reader.tasks.get(committed_user.id, dropped.id) is None


async def test_read_only_reads_without_a_transaction(
    committed_user: domain.User, pool: db_pool.Pool
) -> None:
    async with UnitOfWork(pool).autocommit() as reader:
        assert await reader.users.get(committed_user.id) == committed_user
        task = await reader.tasks.add(committed_user.id, domain.TaskFields(title="autocommit"))

    async with UnitOfWork(pool).autocommit() as reader:
        assert await reader.tasks.get(committed_user.id, task.id) == task


async def test_connections_go_back_to_the_pool_in_autocommit(pool: db_pool.Pool) -> None:
    for _ in range(3 * pool.max_size):
        async with UnitOfWork(pool) as uow:
            await uow.users.get(uuid.uuid4())
        with pytest.raises(RuntimeError):
            async with UnitOfWork(pool) as uow:
                await uow.users.get(uuid.uuid4())
                raise RuntimeError

    # Nothing leaked: every connection can be taken at once, idle and in autocommit.
    held = [await pool.getconn(timeout=2) for _ in range(pool.max_size)]
    try:
        for connection in held:
            assert connection.autocommit
            assert connection.info.transaction_status == pq.TransactionStatus.IDLE
    finally:
        for connection in held:
            await pool.putconn(connection)


async def test_a_unit_of_work_is_not_reentrant(pool: db_pool.Pool) -> None:
    uow = UnitOfWork(pool)
    async with uow:
        with pytest.raises(RuntimeError, match="in use"):
            async with uow.autocommit():
                pass
    with pytest.raises(RuntimeError, match="async with"):
        await uow.commit()


async def test_unreachable_database_is_unavailable() -> None:
    settings = Settings(db_pool_min=1, db_pool_max=1)
    unreachable = db_pool.make_pool(
        "postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=1", settings, timeout=0.5
    )
    await unreachable.open(wait=False)
    try:
        with pytest.raises(errors.Unavailable) as caught:
            async with UnitOfWork(unreachable):
                pass
        assert caught.value.message == "database unavailable"
        with pytest.raises(errors.Unavailable):
            await db_pool.ping(unreachable)
    finally:
        await unreachable.close()


async def test_a_lost_connection_is_unavailable(pool: db_pool.Pool, database_url: str) -> None:
    async with UnitOfWork(pool).autocommit() as reader:
        backend = await _backend_pid(reader)
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
        with pytest.raises(errors.Unavailable) as caught:
            await reader.users.get(uuid.uuid4())
    assert "SELECT" not in str(caught.value)

    await db_pool.ping(pool)  # the broken connection was discarded


async def _backend_pid(uow: UnitOfWork) -> int:
    connection = uow._bound()
    return connection.info.backend_pid
