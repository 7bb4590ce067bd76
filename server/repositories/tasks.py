"""Tasks in the `tasks` table; every statement is filtered by owner and id together."""

from __future__ import annotations

import dataclasses
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
        SELECT FROM {count_from} LIMIT %(count_cap)s
    ) AS m
) AS c (total)
LEFT JOIN (
    SELECT {columns}, {sorts} FROM {source} WHERE {where} ORDER BY {order} LIMIT %(limit)s
) AS p ON true
ORDER BY {outer_order}
""")
"""A page and its match count (up to COUNT_CAP) in one round trip (one row even if empty).

The count walks the page's own order, so it uses the listing's index (and stops at the
cap) rather than scanning other users' rows; with a due-date range it has no order, so
its plan is chosen apart from the page's: a range scan of the due-date index. A filter on
one tag alone counts `task_tags` entries (an index-only scan), without joining the tasks.
"""

_TAG_COUNT = sql.SQL("task_tags WHERE user_id = %(user_id)s AND tag = %(f_walk_tag)s")

_TASKS = sql.Identifier("tasks")

_FROM_TAGS = {"id": "task_id", "created_at": "created_at", "user_id": "user_id"}

_TAG_WALK = sql.SQL("""(
    SELECT {columns} FROM task_tags AS tt
    JOIN tasks AS t ON t.id = tt.task_id AND t.user_id = tt.user_id
    WHERE tt.tag = %(f_walk_tag)s
) AS tasks""").format(
    columns=sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(sql.Identifier("tt", _FROM_TAGS[name]), sql.Identifier(name))
        if name in _FROM_TAGS
        else sql.Identifier("t", name)
        for name in (*task_rows.NAMES, *(() if "user_id" in task_rows.NAMES else ("user_id",)))
    )
)
"""The user's tasks carrying one tag, as a `tasks` look-alike whose `created_at` and `id`
come from `task_tags`: the newest-first listing walks its primary key and stops at the page."""

_KEYS_WALK = sql.SQL("""(
    SELECT t.* FROM (
        SELECT id FROM tasks WHERE {where} ORDER BY {order} LIMIT %(limit)s
    ) AS k
    JOIN tasks AS t ON t.id = k.id
) AS tasks""")
"""The page's tasks found by walking the listing's index alone (it includes `due_at`, so the
due-range filter reads the index tuple), then read from the table by id: only the page's rows
are fetched, not every walked row. The outer query re-applies the conditions and the order to
those few rows."""


def _index_only_walk(query: domain.TaskQuery) -> bool:
    """Whether the page's filter reads only columns the listing's index holds (a due range)."""
    f = query.filter
    return (
        query.order == domain.DEFAULT_ORDER
        and (f.due_after is not None or f.due_before is not None)
        and dataclasses.replace(f, due_after=None, due_before=None) == domain.TaskFilter()
    )


WALK = 2_000
"""How many of the listing's rows a `q` page scans before falling back to the trigram index."""

_Q_WALK = sql.SQL("""
SELECT NULL AS total, w.* FROM (
    SELECT {columns}, {sorts}, {q} AS matched FROM {source} WHERE {where}
    ORDER BY {order} LIMIT %(walk)s
) AS w
WHERE w.matched ORDER BY {w_order} LIMIT %(limit)s
""")
"""Step one of `q`: the matches among the next WALK rows in listing order (walked without the
`q` condition, so on the listing's index; the walk stops as soon as the page is full)."""

_Q_FALLBACK = sql.SQL("""
WITH m AS MATERIALIZED (SELECT {columns}, {sorts} FROM {source} WHERE {where})
SELECT c.total, p.*
FROM (SELECT count(*) FROM (SELECT FROM m LIMIT %(count_cap)s) AS x) AS c (total)
LEFT JOIN (SELECT * FROM m ORDER BY {m_order} LIMIT %(limit)s) AS p ON true
ORDER BY {outer_order}
""")
"""Step two of `q`, for terms too rare for the walk: every match (found through the trigram
indexes, planned on their own), sorted; the page and the count (up to COUNT_CAP)."""

_COUNT = sql.SQL("""
SELECT count(*) FROM (SELECT FROM {source} WHERE {where} ORDER BY {order} LIMIT %(count_cap)s) AS m
""")
"""The match count (up to COUNT_CAP) alone, walking the listing's order."""

_ESTIMATE = sql.SQL("EXPLAIN (FORMAT JSON) SELECT FROM tasks WHERE {where}")
"""The planner's estimate of the matches, for counts beyond COUNT_CAP."""

COUNT_CAP = 1_000
"""Up to this many matches, total_size is exact; beyond it, the planner's estimate."""

_NEXT_PAGE = sql.SQL("""
SELECT NULL AS total, {columns}, {sorts} FROM {source} WHERE {where} ORDER BY {order}
LIMIT %(limit)s
""")
"""A later page; its total comes from the page token."""

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
        rows, total, sort_count = await self._page_rows(
            user_id, query, page_size, after, count, _COLUMNS, binary=False
        )
        return _page(rows, page_size, sort_count, total)

    async def stream_chunk(
        self,
        user_id: uuid.UUID,
        query: domain.TaskQuery,
        size: int,
        after: domain.PageCursor | None,
        form: domain.WireForm,
    ) -> domain.TaskChunk:
        """Up to `size` matching tasks in order, after the cursor, in `form` (no count).

        The same statements as `list_page`, selecting the wire form instead of the
        columns, in the binary protocol; no `Task` is built.

        Raises:
            ValueError: size is below 1, or the cursor does not fit the order.
        """
        select, width = task_rows.WIRE_COLUMNS[form]
        rows, _, sort_count = await self._page_rows(
            user_id, query, size, after, False, select, binary=True
        )
        start = 1 + width
        if width == 1:
            items: list[Any] = [row[1] for row in rows[:size]]
        else:
            items = [row[1:start] for row in rows[:size]]
        next_cursor = None
        if len(rows) > size:
            keys = tuple(rows[size - 1][start : start + sort_count])
            next_cursor = domain.PageCursor(keys[:-1], keys[-1], 0)
        return domain.TaskChunk(items, next_cursor)

    async def _page_rows(
        self,
        user_id: uuid.UUID,
        query: domain.TaskQuery,
        page_size: int,
        after: domain.PageCursor | None,
        count: bool,
        select: sql.Composable,
        *,
        binary: bool,
    ) -> tuple[list[Any], int, int]:
        """(rows of page_size + 1 at most, total, number of sort columns) of a page.

        A row is the total, the `select` columns, then the sort values s0, s1, ...
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        columns = task_queries.sort_columns(query.order)
        conditions, params = task_queries.filter_conditions(user_id, query.filter)
        params.update(limit=page_size + 1, count_cap=COUNT_CAP + 1)
        estimate_where = task_queries.where(conditions)
        source: sql.Composable = _TASKS
        if query.filter.tags and query.order == domain.DEFAULT_ORDER:
            source = _TAG_WALK
            params["f_walk_tag"] = query.filter.tags[0]
            if len(query.filter.tags) == 1:  # the walk is the condition: no GIN plan to pick
                conditions.remove(task_queries.TAGS_CONDITION)
        if after is not None:
            condition, after_params = task_queries.after_condition(columns, after)
            conditions.append(condition)
            params.update(after_params)
        parts = {
            "columns": select,
            "sorts": sql.SQL(", ").join(
                sql.SQL("{} AS {}").format(c.expression, sql.Identifier(f"s{i}"))
                for i, c in enumerate(columns)
            ),
            "where": task_queries.where(conditions),
            "order": task_queries.order_clause(columns),
            "source": source,
        }
        count_source = source
        if _index_only_walk(query):
            parts["source"] = _KEYS_WALK.format(where=parts["where"], order=parts["order"])
        first = after is None and count
        if query.filter.q:
            return await self._q_page(
                parts, conditions, estimate_where, params, columns, page_size, after, count, binary
            )
        if first:
            due_range = query.filter.due_after is not None or query.filter.due_before is not None
            count_from: sql.Composable = sql.SQL("{} WHERE {} {}").format(
                count_source,
                parts["where"],
                sql.SQL("") if due_range else sql.SQL("ORDER BY {}").format(parts["order"]),
            )
            if source is _TAG_WALK and conditions == [task_queries.OWNER_CONDITION]:
                count_from = _TAG_COUNT
            statement = _FIRST_PAGE.format(
                **parts,
                count_from=count_from,
                outer_order=task_queries.order_clause(columns, prefix="p"),
            )
        else:
            statement = _NEXT_PAGE.format(**parts)
        raw = await self._db.fetch_all(task_rows.text(statement), params, binary=binary)
        total = after.total_size if after else (raw[0][0] if raw and count else 0)
        if total > COUNT_CAP and after is None:
            total = await self._estimate(estimate_where, params)
        rows = [row for row in raw if row[1] is not None]  # the empty page's one row: no task
        return rows, total, len(columns)

    async def _q_page(
        self,
        parts: dict[str, Any],
        conditions: list[sql.Composable],
        estimate_where: sql.Composable,
        params: dict[str, Any],
        columns: list[task_queries.SortColumn],
        page_size: int,
        after: domain.PageCursor | None,
        count: bool,
        binary: bool,
    ) -> tuple[list[Any], int, int]:
        """A `q` page in two steps: walk the listing, else the trigram indexes (see _Q_WALK).

        Each statement is planned for its values (`prepare=False`): the generic plan
        PostgreSQL switches a prepared statement to reads every match of the term through the
        trigram and tag indexes and sorts them (48-89 ms against 7 for the walk, measured on
        PostgreSQL 18 at 200k tasks).
        """
        walk = max(WALK, 4 * (page_size + 1))
        q_index = conditions.index(task_queries.Q_CONDITION)
        rest = conditions[:q_index] + conditions[q_index + 1 :]
        statement = _Q_WALK.format(
            **{
                **parts,
                "where": task_queries.where(rest),
                "q": task_queries.Q_CONDITION,
                "w_order": task_queries.order_clause(columns, prefix="w"),
            }
        )
        rows = await self._db.fetch_all(
            task_rows.text(statement), {**params, "walk": walk}, prepare=False, binary=binary
        )
        first = after is None and count
        if len(rows) > page_size:  # the walk filled the page
            total = after.total_size if after else 0
            if first:
                count_statement = _COUNT.format(**parts)
                row = await self._db.fetch_one(
                    task_rows.text(count_statement), params, prepare=False
                )
                total = row[0] if row else 0
        else:  # it ran dry (or the matches ran out): step two finds every remaining match
            statement = _Q_FALLBACK.format(
                **parts,
                m_order=task_queries.order_clause(columns, prefix="m"),
                outer_order=task_queries.order_clause(columns, prefix="p"),
            )
            raw = await self._db.fetch_all(
                task_rows.text(statement), params, prepare=False, binary=binary
            )
            rows = [row for row in raw if row[1] is not None]
            total = after.total_size if after else (raw[0][0] if raw and first else 0)
        if total > COUNT_CAP and first:
            total = await self._estimate(estimate_where, params)
        return rows, total, len(columns)

    async def _estimate(self, where: sql.Composable, params: dict[str, Any]) -> int:
        row = await self._db.fetch_one(
            task_rows.text(_ESTIMATE.format(where=where)), params, prepare=False
        )
        estimate = int(row[0][0]["Plan"]["Plan Rows"]) if row else 0
        return max(estimate, COUNT_CAP + 1)

    async def stats(self, user_id: uuid.UUID, task_filter: domain.TaskFilter) -> domain.TaskStats:
        """Counts over the user's tasks that match the filter, in their time zone."""
        if task_filter == domain.TaskFilter():
            rows = await self._db.fetch_all(
                task_stats.AGGREGATES,
                {"user_id": user_id, "days": domain.COMPLETED_PER_DAY_DAYS},
            )
            return task_stats.from_aggregates(rows)
        conditions, params = task_queries.filter_conditions(user_id, task_filter)
        rows = await self._db.fetch_all(task_rows.text(task_stats.statement(conditions)), params)
        return task_stats.to_stats(rows)

    async def tags(self, user_id: uuid.UUID) -> list[tuple[str, int]]:
        """Every tag the user's tasks carry, by name, with how many carry it."""
        rows = await self._db.fetch_all(task_stats.TAGS, (user_id,))
        return [(row[0], int(row[1])) for row in rows]

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
