"""Expired task changes, batch request ids and drained throttle buckets go; recent ones stay."""

from __future__ import annotations

import uuid

from server import domain, housekeeping
from server.adapters.unit_of_work import UnitOfWork
from server.config import Settings
from server.db import pool as db_pool


async def test_prune_once_removes_only_expired_rows(pool: db_pool.Pool, database_url: str) -> None:
    async with UnitOfWork(pool) as uow:
        user = await uow.users.add(f"h-{uuid.uuid4().hex[:8]}@example.com", "h", "H")
        await uow.tasks.add(user.id, domain.TaskFields(title="old"))
        await uow.tasks.add(user.id, domain.TaskFields(title="new"))
        await uow.idempotency.claim(user.id, "batchCreate", "old-request", b"h")
        await uow.idempotency.claim(user.id, "batchCreate", "new-request", b"h")
        await uow.commit()
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE task_changes SET committed_at = now() - interval '8 days'"
            " WHERE user_id = %s AND seq = 1",
            (user.id,),
        )
        await conn.execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '3 days'"
            " WHERE user_id = %s AND request_id = 'old-request'",
            (user.id,),
        )
        drained, live = f"test:{uuid.uuid4().hex}", f"test:{uuid.uuid4().hex}"
        await conn.execute(
            "INSERT INTO rate_limits (key, tat) VALUES (%s, now() - interval '1 second'),"
            " (%s, now() + interval '1 minute')",
            (drained, live),
        )
    settings = Settings(database_url=database_url, change_retention_s=7 * 24 * 3600)
    await housekeeping.prune_once(lambda: UnitOfWork(pool), settings)
    async with pool.connection() as conn:
        seqs = await (
            await conn.execute(
                "SELECT seq FROM task_changes WHERE user_id = %s ORDER BY seq", (user.id,)
            )
        ).fetchall()
        ids = await (
            await conn.execute(
                "SELECT request_id FROM idempotency_keys WHERE user_id = %s", (user.id,)
            )
        ).fetchall()
        buckets = await (
            await conn.execute("SELECT key FROM rate_limits WHERE key IN (%s, %s)", (drained, live))
        ).fetchall()
        await conn.execute("DELETE FROM rate_limits WHERE key = %s", (live,))
    assert [row[0] for row in seqs] == [2]
    assert [row[0] for row in ids] == ["new-request"]
    assert [row[0] for row in buckets] == [live]


async def test_between_full_rounds_only_throttle_buckets_are_pruned(
    pool: db_pool.Pool, database_url: str
) -> None:
    async with UnitOfWork(pool) as uow:
        user = await uow.users.add(f"h-{uuid.uuid4().hex[:8]}@example.com", "h", "H")
        await uow.tasks.add(user.id, domain.TaskFields(title="old"))
        await uow.commit()
    drained = f"test:{uuid.uuid4().hex}"
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE task_changes SET committed_at = now() - interval '8 days' WHERE user_id = %s",
            (user.id,),
        )
        await conn.execute(
            "INSERT INTO rate_limits (key, tat) VALUES (%s, now() - interval '1 second')",
            (drained,),
        )
    settings = Settings(database_url=database_url, change_retention_s=7 * 24 * 3600)
    await housekeeping.prune_once(lambda: UnitOfWork(pool), settings, everything=False)
    async with pool.connection() as conn:
        changes = await (
            await conn.execute("SELECT count(*) FROM task_changes WHERE user_id = %s", (user.id,))
        ).fetchone()
        bucket = await (
            await conn.execute("SELECT 1 FROM rate_limits WHERE key = %s", (drained,))
        ).fetchone()
    assert changes is not None and changes[0] == 1
    assert bucket is None
