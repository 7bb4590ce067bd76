"""Idempotency keys of batch calls: the first answer, replayed for a repeated request_id.

`claim` inserts the key at the start of the batch's transaction. A second
request with the same key blocks on that insert until the first commits (then
sees its answer) or rolls back (then goes ahead itself), so two concurrent
identical requests still run once.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Jsonb

from server import domain
from server.db import executor
from server.repositories import task_rows

CLAIM = """
INSERT INTO idempotency_keys (user_id, route, request_id, request_hash)
VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING true
"""

EXISTING = """
SELECT request_hash, response FROM idempotency_keys
WHERE user_id = %s AND route = %s AND request_id = %s
"""

COMPLETE = """
UPDATE idempotency_keys SET response = %s
WHERE user_id = %s AND route = %s AND request_id = %s
"""

PRUNE = "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => %s)"


class PgIdempotencyRepository:
    """`ports.IdempotencyRepository` on PostgreSQL."""

    def __init__(self, db: executor.Executor) -> None:
        self._db = db

    async def claim(
        self, user_id: uuid.UUID, route: str, request_id: str, request_hash: bytes
    ) -> tuple[bytes, list[domain.Task]] | None:
        """Claim the key; None if it was new, else (the first request's hash, its answer)."""
        key = (user_id, route, request_id)
        if await self._db.fetch_one(CLAIM, (*key, request_hash)) is not None:
            return None
        row = await self._db.fetch_one(EXISTING, key)
        if row is None:  # pragma: no cover - pruned between the two statements
            return None
        answer: list[Any] = row[1] or []
        return bytes(row[0]), [task_rows.from_json(item) for item in answer]

    async def complete(
        self, user_id: uuid.UUID, route: str, request_id: str, answer: list[domain.Task]
    ) -> None:
        """Store the answer of a claimed key (in the same transaction as the work)."""
        response = Jsonb([task_rows.to_json(task) for task in answer])
        await self._db.execute(COMPLETE, (response, user_id, route, request_id))

    async def prune(self, older_than_s: float) -> int:
        """Forget keys older than `older_than_s` seconds; returns how many."""
        return await self._db.execute(PRUNE, (older_than_s,))
