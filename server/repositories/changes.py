"""The task change outbox: written by every task write, read by the watch streams.

Every write statement on `tasks` is wrapped by `with_changes`, so in the same
statement (and so the same transaction) it:

1. bumps `users.change_seq` by the number of rows written, which locks the
   user's row until commit: one user's changes commit in seq order, gap-free;
2. inserts one `task_changes` row per written task, with a JSON snapshot of
   the task as written (none for a deletion);
3. calls `pg_notify('task_changes', user_id)`, which PostgreSQL delivers to
   every listening server process when, and only when, the transaction commits.
"""

from __future__ import annotations

import uuid

from psycopg import sql

from server import domain
from server.db import executor
from server.repositories import task_rows

CHANNEL = "task_changes"

_WRAP = sql.SQL("""
WITH t AS ({core}),
s AS (
    UPDATE users SET change_seq = change_seq + (SELECT count(*) FROM t)
    WHERE id = %(user_id)s AND EXISTS (SELECT FROM t)
    RETURNING change_seq
),
c AS (
    INSERT INTO task_changes (user_id, seq, task_id, event_type, task)
    SELECT %(user_id)s, s.change_seq - count(*) OVER () + row_number() OVER (), t.id,
           t.event_type, CASE WHEN t.event_type = {deleted} THEN NULL
                              ELSE to_jsonb(t) - 'event_type' END
    FROM t CROSS JOIN s
)
SELECT t.* FROM t
LEFT JOIN LATERAL (SELECT pg_notify({channel}, %(user_id)s::text) FROM s) AS n ON true
""")

READ = """
SELECT seq, event_type, task_id, task, committed_at FROM task_changes
WHERE user_id = %s AND seq > %s ORDER BY seq LIMIT %s
"""

BOUNDS = """
SELECT u.change_seq, (SELECT min(seq) FROM task_changes WHERE user_id = u.id)
FROM users AS u WHERE u.id = %s
"""

PRUNE = "DELETE FROM task_changes WHERE committed_at < now() - make_interval(secs => %s)"


def with_changes(core: sql.Composable) -> str:
    """Wrap a task write that returns the task columns plus `event_type` (see module doc).

    The core statement must use `%(user_id)s` for the owner; the result is the
    core's rows, unchanged, as statement text (built once, at import).
    """
    return task_rows.text(
        _WRAP.format(
            core=core,
            deleted=task_rows.kind(domain.ChangeKind.DELETED),
            channel=sql.Literal(CHANNEL),
        )
    )


class PgChangesRepository:
    """Reads of the change outbox (writes happen inside the task statements)."""

    def __init__(self, db: executor.Executor) -> None:
        self._db = db

    async def read(self, user_id: uuid.UUID, after_seq: int, limit: int) -> list[domain.TaskChange]:
        """The user's changes after `after_seq`, oldest first, at most `limit`."""
        rows = await self._db.fetch_all(READ, (user_id, after_seq, limit))
        return [
            domain.TaskChange(
                seq=row[0],
                kind=domain.ChangeKind(row[1]),
                task_id=row[2],
                task=None if row[3] is None else task_rows.from_json(row[3]),
                committed_at=row[4],
            )
            for row in rows
        ]

    async def bounds(self, user_id: uuid.UUID) -> tuple[int, int | None] | None:
        """(latest seq, oldest retained seq or None) of the user; None if no such user."""
        row = await self._db.fetch_one(BOUNDS, (user_id,))
        return None if row is None else (row[0], row[1])

    async def prune(self, older_than_s: float) -> int:
        """Delete changes older than `older_than_s` seconds; returns how many."""
        return await self._db.execute(PRUNE, (older_than_s,))
