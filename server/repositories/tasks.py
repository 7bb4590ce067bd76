"""Tasks in the `tasks` table; every statement is filtered by owner and id together."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from psycopg import sql

from server import domain
from server.db import executor

COLUMNS = (
    "id, user_id, title, description, completed, completed_at, priority, due_at, remind_at,"
    " category, tags, created_at, updated_at, version"
)
"""The columns every statement returns, in the order `_to_task` reads them."""

INSERT = f"""
INSERT INTO tasks (user_id, title, description, completed, completed_at, priority, due_at,
                   remind_at, category, tags)
VALUES (%(user_id)s, %(title)s, %(description)s, %(completed)s,
        CASE WHEN %(completed)s THEN now() END, %(priority)s, %(due_at)s,
        %(remind_at)s, %(category)s, %(tags)s::text[])
RETURNING {COLUMNS}
"""

SELECT_ONE = f"SELECT {COLUMNS} FROM tasks WHERE user_id = %s AND id = %s"

DELETE = "DELETE FROM tasks WHERE user_id = %s AND id = %s"

_PAGE = """
SELECT c.total, p.*
FROM (SELECT count(*) FROM tasks WHERE user_id = %(user_id)s) AS c (total)
LEFT JOIN (
    SELECT {columns} FROM tasks
    WHERE user_id = %(user_id)s {after}
    ORDER BY created_at DESC, id DESC
    LIMIT %(limit)s
) AS p ON true
ORDER BY p.created_at DESC, p.id DESC
"""

FIRST_PAGE = _PAGE.format(columns=COLUMNS, after="")
"""The newest tasks and the user's task count, in one round trip (one row even if empty)."""

NEXT_PAGE = _PAGE.format(columns=COLUMNS, after="AND (created_at, id) < (%(created_at)s, %(id)s)")
"""Like FIRST_PAGE, after a keyset cursor."""

_COMPLETED_AT = (
    "completed_at = CASE WHEN NOT %(completed)s THEN NULL"
    " WHEN completed THEN coalesce(completed_at, now()) ELSE now() END"
)

_UPDATE_ORDER = (
    "title",
    "description",
    "completed",
    "priority",
    "due_at",
    "remind_at",
    "category",
    "tags",
)


def _to_task(row: tuple[Any, ...]) -> domain.Task:
    return domain.Task(
        id=row[0],
        user_id=row[1],
        title=row[2],
        description=row[3],
        completed=row[4],
        completed_at=row[5],
        priority=domain.Priority(row[6]),
        due_at=row[7],
        remind_at=row[8],
        category=row[9],
        tags=tuple(row[10]),
        created_at=row[11],
        updated_at=row[12],
        version=row[13],
    )


def _field_params(fields: domain.TaskFields) -> dict[str, Any]:
    return {
        "title": fields.title,
        "description": fields.description,
        "completed": fields.completed,
        "priority": int(fields.priority),
        "due_at": fields.due_at,
        "remind_at": fields.remind_at,
        "category": fields.category,
        "tags": list(fields.tags),
    }


@functools.cache
def update_statement(present: frozenset[str], versioned: bool) -> str:
    """The UPDATE for one set of present fields (at most 2**9 distinct statements).

    Args:
        present: the task fields that change.
        versioned: whether to require `version = %(expected_version)s`.

    Returns:
        SQL with named placeholders, returning the updated row.
    """
    assignments: list[sql.Composable] = [
        sql.SQL("{} = {}").format(
            sql.Identifier(name),
            sql.SQL("%(tags)s::text[]") if name == "tags" else sql.Placeholder(name),
        )
        for name in _UPDATE_ORDER
        if name in present
    ]
    if "completed" in present:
        assignments.append(sql.SQL(_COMPLETED_AT))
    assignments.append(sql.SQL("version = version + 1, updated_at = now()"))
    condition = "user_id = %(user_id)s AND id = %(id)s"
    if versioned:
        condition += " AND version = %(expected_version)s"
    statement = sql.SQL("UPDATE tasks SET {} WHERE {} RETURNING {}").format(
        sql.SQL(", ").join(assignments), sql.SQL(condition), sql.SQL(COLUMNS)
    )
    return statement.as_string()


class PgTasksRepository:
    """`ports.TasksRepository` on PostgreSQL."""

    def __init__(self, db: executor.Executor) -> None:
        self._db = db

    async def add(self, user_id: uuid.UUID, fields: domain.TaskFields) -> domain.Task:
        """Insert a task and return it as stored (completed_at is now if completed)."""
        row = await self._db.fetch_one(INSERT, {"user_id": user_id, **_field_params(fields)})
        if row is None:  # pragma: no cover - INSERT ... RETURNING always returns the row
            raise RuntimeError("INSERT returned no row")
        return _to_task(row)

    async def get(self, user_id: uuid.UUID, task_id: uuid.UUID) -> domain.Task | None:
        """The user's task with this id, or None."""
        row = await self._db.fetch_one(SELECT_ONE, (user_id, task_id))
        return None if row is None else _to_task(row)

    async def list_page(
        self, user_id: uuid.UUID, page_size: int, after: domain.PageCursor | None
    ) -> domain.TaskPage:
        """Up to page_size tasks, newest first, after the cursor; total_size counts all of them.

        Raises:
            ValueError: page_size is below 1.
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        params: dict[str, Any] = {"user_id": user_id, "limit": page_size + 1}
        query = FIRST_PAGE
        if after is not None:
            params.update(created_at=after.created_at, id=after.task_id)
            query = NEXT_PAGE
        rows = await self._db.fetch_all(query, params)
        total = rows[0][0] if rows else 0
        tasks = [_to_task(row[1:]) for row in rows if row[1] is not None]
        next_cursor = None
        if len(tasks) > page_size:
            tasks = tasks[:page_size]
            next_cursor = domain.PageCursor(created_at=tasks[-1].created_at, task_id=tasks[-1].id)
        return domain.TaskPage(tasks=tasks, next_cursor=next_cursor, total_size=total)

    async def update(
        self,
        user_id: uuid.UUID,
        task_id: uuid.UUID,
        patch: domain.TaskPatch,
        expected_version: int | None,
    ) -> domain.Task | None:
        """Change the present fields, bump the version; None if no such task or a stale version.

        `completed_at` follows `completed`: now when it turns true, kept while it
        stays true, NULL when false. With no field present only `version` and
        `updated_at` change.
        """
        query = update_statement(patch.present, expected_version is not None)
        values = _field_params(patch.fields)
        params = {name: values[name] for name in patch.present}
        params.update(user_id=user_id, id=task_id)
        if expected_version is not None:
            params["expected_version"] = expected_version
        row = await self._db.fetch_one(query, params)
        return None if row is None else _to_task(row)

    async def delete(self, user_id: uuid.UUID, task_id: uuid.UUID) -> bool:
        """Delete the user's task; False if the user has no such task."""
        return await self._db.execute(DELETE, (user_id, task_id)) == 1
