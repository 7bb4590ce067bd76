"""Expired task changes and batch request ids are pruned; recent ones stay."""

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
    assert [row[0] for row in seqs] == [2]
    assert [row[0] for row in ids] == ["new-request"]
