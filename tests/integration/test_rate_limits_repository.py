from __future__ import annotations

import asyncio
import uuid

import pytest

from server.adapters.unit_of_work import UnitOfWork
from server.db import executor
from server.db import pool as db_pool
from server.repositories.rate_limits import PgRateLimitsRepository


def _key() -> str:
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture
def limits(conn: executor.Connection) -> PgRateLimitsRepository:
    return PgRateLimitsRepository(executor.Executor(conn))


async def test_a_key_allows_its_limit_then_says_how_long_to_wait(
    limits: PgRateLimitsRepository,
) -> None:
    key = _key()
    assert [await limits.hit(key, 3, 60) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await limits.hit(key, 3, 60)
    assert 19 < wait <= 20  # one more every 60 s / 3; now() is fixed inside the transaction
    assert await limits.hit(key, 3, 60) == wait  # a refused hit is not counted
    assert await limits.hit(_key(), 3, 60) == 0.0  # keys are independent


async def test_a_bucket_drains_with_time(limits: PgRateLimitsRepository, conn) -> None:
    key = _key()
    for _ in range(2):
        await limits.hit(key, 2, 0.2)
    assert await limits.hit(key, 2, 0.2) > 0
    # now() is fixed inside the test's transaction: let time pass by moving the row back.
    await conn.execute(
        "UPDATE rate_limits SET tat = tat - interval '1 second' WHERE key = %s", (key,)
    )
    assert await limits.hit(key, 2, 0.2) == 0.0


async def test_prune_forgets_drained_buckets(limits: PgRateLimitsRepository, conn) -> None:
    key = _key()
    await limits.hit(key, 1, 60)
    await conn.execute(
        "UPDATE rate_limits SET tat = now() - interval '1 second' WHERE key = %s", (key,)
    )
    assert await limits.prune() >= 1
    cursor = await conn.execute("SELECT 1 FROM rate_limits WHERE key = %s", (key,))
    assert await cursor.fetchone() is None


async def test_concurrent_hits_from_many_connections_are_counted_exactly(
    pool: db_pool.Pool,
) -> None:
    key = _key()

    async def hit() -> float:
        async with UnitOfWork(pool) as uow:
            wait = await uow.rate_limits.hit(key, 5, 60)
            await uow.commit()
            return wait

    try:
        results = await asyncio.gather(*(hit() for _ in range(12)))
        assert sum(1 for wait in results if wait == 0.0) == 5
    finally:
        async with pool.connection() as connection:
            await connection.execute("DELETE FROM rate_limits WHERE key = %s", (key,))


async def test_prune_skips_a_row_an_attempt_holds_instead_of_waiting_for_it(
    pool: db_pool.Pool,
) -> None:
    """A prune that waited for an attempt's row lock deadlocked with login floods."""
    held, drained = _key(), _key()
    async with pool.connection() as setup:
        await setup.execute(
            "INSERT INTO rate_limits (key, tat) VALUES (%s, now() - interval '1 minute'),"
            " (%s, now() - interval '1 minute')",
            (held, drained),
        )
    try:
        async with pool.connection() as attempt, attempt.transaction():
            await attempt.execute("SELECT 1 FROM rate_limits WHERE key = %s FOR UPDATE", (held,))
            async with UnitOfWork(pool).autocommit() as housekeeping:
                pruned = await asyncio.wait_for(housekeeping.rate_limits.prune(), timeout=5)
            assert pruned >= 1
        async with pool.connection() as check:
            cursor = await check.execute(
                "SELECT key FROM rate_limits WHERE key IN (%s, %s)", (held, drained)
            )
            assert [row[0] for row in await cursor.fetchall()] == [held]
    finally:
        async with pool.connection() as connection:
            await connection.execute("DELETE FROM rate_limits WHERE key = %s", (held,))
