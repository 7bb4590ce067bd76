"""Tasks in the `tasks` table; every statement is filtered by owner and id together."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from typing import Any

from psycopg import sql

from server import domain
from server.db import executor
from server.repositories import changes, task_queries, task_rows, task_stats

_COLUMNS = task_rows.columns()
_EVENT = sql.SQL("{} AS event_type")

INSERT = changes.with_changes(
    sql.SQL("""
INSERT INTO tasks (user_id, {names}, completed_at)
VALUES (%(user_id)s, {values}, {completed_at})
RETURNING {columns}, {event}
""").format(
        names=task_rows.names(task_rows.WRITABLE),
        values=sql.SQL(", ").join(map(task_rows.placeholder, task_rows.WRITABLE)),
        completed_at=task_rows.completed_at(sql.Placeholder("completed"), None),
        columns=_COLUMNS,
        event=_EVENT.format(task_rows.kind(domain.ChangeKind.CREATED)),
    )
)
"""Insert one task, recording its CREATED change (built once, at import)."""

SELECT_ONE = task_rows.text(
    sql.SQL("SELECT {} FROM tasks WHERE user_id = %s AND id = %s").format(_COLUMNS)
)

DELETE = changes.with_changes(
    sql.SQL("""
DELETE FROM tasks WHERE user_id = %(user_id)s AND id = %(id)s
RETURNING {columns}, {event}
""").format(columns=_COLUMNS, event=_EVENT.format(task_rows.kind(domain.ChangeKind.DELETED)))
)
"""Delete one task, recording its DELETED change."""

_FIRST_PAGE = sql.SQL("""
SELECT c.total, p.*
FROM (
    SELECT count(*) FROM (
        SELECT FROM tasks WHERE {where} ORDER BY {order} LIMIT %(count_cap)s
    ) AS m
) AS c (total)
LEFT JOIN (
    SELECT {columns}, {sorts} FROM tasks WHERE {where} ORDER BY {order} LIMIT %(limit)s
) AS p ON true
ORDER BY {outer_order}
""")
"""A page and its match count (up to COUNT_CAP) in one round trip (one row even if empty).

The count walks the page's own order, so it uses the listing's index (and stops at the
cap) rather than scanning other users' rows.
"""

_ESTIMATE = sql.SQL("EXPLAIN (FORMAT JSON) SELECT FROM tasks WHERE {where}")
"""The planner's estimate of the matches, for counts beyond COUNT_CAP."""

COUNT_CAP = 1_000
"""Up to this many matches, total_size is exact; beyond it, the planner's estimate."""

_NEXT_PAGE = sql.SQL("""
SELECT NULL AS total, {columns}, {sorts} FROM tasks WHERE {where} AND {after} ORDER BY {order}
LIMIT %(limit)s
""")
"""A later page; its total comes from the page token."""

TAGS = """
SELECT tag, count(*) FROM tasks CROSS JOIN LATERAL unnest(tags) AS tag
WHERE user_id = %s GROUP BY tag ORDER BY tag
"""

REMINDERS = """
SELECT id, title, remind_at, due_at FROM tasks
WHERE user_id = %s AND NOT completed AND remind_at >= now() AND remind_at < now() + %s
ORDER BY remind_at, id LIMIT %s
"""

_UPDATE = sql.SQL("""
UPDATE tasks SET {assignments}
FROM (
    SELECT id AS o_id, completed AS o_completed FROM tasks
    WHERE user_id = %(user_id)s AND id = %(id)s FOR UPDATE
) AS o
WHERE {condition}
RETURNING {columns}, {event} AS event_type
""")
"""The row's old `completed` (read under lock) tells UPDATED from COMPLETED or REOPENED."""

_UPDATE_EVENT = task_rows.change_kind(
    sql.Identifier("completed"), sql.Identifier("o", "o_completed")
)
_COMPLETED_AT = sql.SQL("completed_at = {}").format(
    task_rows.completed_at(sql.Placeholder("completed"), "tasks")
)
_BUMP = sql.SQL("version = version + 1, updated_at = now()")
_VERSIONED = sql.SQL("tasks.id = o.o_id AND version = %(expected_version)s")
_UNVERSIONED = sql.SQL("tasks.id = o.o_id")


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
        sql.SQL("{} = {}").format(sql.Identifier(name), task_rows.placeholder(name))
        for name in task_rows.WRITABLE
        if name in present
    ]
    if "completed" in present:
        assignments.append(_COMPLETED_AT)
    assignments.append(_BUMP)
    statement = _UPDATE.format(
        assignments=sql.SQL(", ").join(assignments),
        condition=_VERSIONED if versioned else _UNVERSIONED,
        columns=_COLUMNS,
        event=_UPDATE_EVENT,
    )
    return changes.with_changes(statement)


_SORTS_START = 1 + len(task_rows.NAMES)
"""A page row is: the total, the task columns, then the sort values s0, s1, ..."""


def _page(rows: list[Any], page_size: int, sort_count: int, total: int) -> domain.TaskPage:
    tasks = [task_rows.to_task(row, 1) for row in rows[:page_size]]
    next_cursor = None
    if len(rows) > page_size:
        last = rows[page_size - 1]
        keys = tuple(last[_SORTS_START : _SORTS_START + sort_count])
        next_cursor = domain.PageCursor(keys[:-1], keys[-1], total)
    return domain.TaskPage(tasks=tasks, next_cursor=next_cursor, total_size=total)


class PgTasksRepository:
    """`ports.TasksRepository` on PostgreSQL."""

    def __init__(self, db: executor.Executor) -> None:
        self._db = db

    async def add(self, user_id: uuid.UUID, fields: domain.TaskFields) -> domain.Task:
        """Insert a task and return it as stored (completed_at is now if completed)."""
        row = await self._db.fetch_one(INSERT, {"user_id": user_id, **task_rows.params(fields)})
        if row is None:  # pragma: no cover - INSERT ... RETURNING always returns the row
            raise RuntimeError("INSERT returned no row")
        return task_rows.to_task(row)

    async def get(self, user_id: uuid.UUID, task_id: uuid.UUID) -> domain.Task | None:
        """The user's task with this id, or None."""
        row = await self._db.fetch_one(SELECT_ONE, (user_id, task_id))
        return None if row is None else task_rows.to_task(row)

    async def list_page(
        self,
        user_id: uuid.UUID,
        query: domain.TaskQuery,
        page_size: int,
        after: domain.PageCursor | None,
        *,
        count: bool = True,
    ) -> domain.TaskPage:
        """Up to page_size matching tasks in order, after the cursor.

        The first page (no cursor) also counts the matches (exactly up to
        COUNT_CAP, else the planner's estimate) unless `count` is False; later
        pages carry that count in their cursor.

        Raises:
            ValueError: page_size is below 1, or the cursor does not fit the order.
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        columns = task_queries.sort_columns(query.order)
        conditions, params = task_queries.filter_conditions(user_id, query.filter)
        params.update(limit=page_size + 1, count_cap=COUNT_CAP + 1)
        where = task_queries.where(conditions)
        parts = {
            "columns": _COLUMNS,
            "sorts": sql.SQL(", ").join(
                sql.SQL("{} AS {}").format(c.expression, sql.Identifier(f"s{i}"))
                for i, c in enumerate(columns)
            ),
            "where": where,
            "order": task_queries.order_clause(columns),
        }
        if after is None and count:
            outer = task_queries.order_clause(columns, prefix="p")
            statement = _FIRST_PAGE.format(**parts, outer_order=outer)
        else:
            condition: sql.Composable = sql.SQL("true")
            if after is not None:
                condition, after_params = task_queries.after_condition(columns, after)
                params.update(after_params)
            statement = _NEXT_PAGE.format(**parts, after=condition)
        raw = await self._db.fetch_all(task_rows.text(statement), params)
        total = after.total_size if after else (raw[0][0] if raw and count else 0)
        if total > COUNT_CAP and after is None:
            total = await self._estimate(where, params)
        rows = [row for row in raw if row[1] is not None]  # the empty page's one row: no task
        return _page(rows, page_size, len(columns), total)

    async def _estimate(self, where: sql.Composable, params: dict[str, Any]) -> int:
        row = await self._db.fetch_one(task_rows.text(_ESTIMATE.format(where=where)), params)
        estimate = int(row[0][0]["Plan"]["Plan Rows"]) if row else 0
        return max(estimate, COUNT_CAP + 1)

    async def stats(self, user_id: uuid.UUID, task_filter: domain.TaskFilter) -> domain.TaskStats:
        """Counts over the user's tasks that match the filter, in their time zone."""
        conditions, params = task_queries.filter_conditions(user_id, task_filter)
        rows = await self._db.fetch_all(task_rows.text(task_stats.statement(conditions)), params)
        return task_stats.to_stats(rows)

    async def tags(self, user_id: uuid.UUID) -> list[tuple[str, int]]:
        """Every tag the user's tasks carry, by name, with how many carry it."""
        return [(row[0], row[1]) for row in await self._db.fetch_all(TAGS, (user_id,))]

    async def reminders(
        self, user_id: uuid.UUID, window: dt.timedelta, limit: int
    ) -> list[domain.Reminder]:
        """Open tasks whose remind_at is in [now, now + window), earliest first."""
        rows = await self._db.fetch_all(REMINDERS, (user_id, window, limit))
        return [domain.Reminder(row[0], row[1], row[2], row[3]) for row in rows]

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
        values = task_rows.params(patch.fields)
        params = {name: values[name] for name in patch.present}
        params.update(user_id=user_id, id=task_id)
        if expected_version is not None:
            params["expected_version"] = expected_version
        row = await self._db.fetch_one(query, params)
        return None if row is None else task_rows.to_task(row)

    async def delete(self, user_id: uuid.UUID, task_id: uuid.UUID) -> bool:
        """Delete the user's task; False if the user has no such task."""
        rows = await self._db.fetch_all(DELETE, {"user_id": user_id, "id": task_id})
        return len(rows) == 1
