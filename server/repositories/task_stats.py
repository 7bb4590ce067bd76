"""The one statement behind `tasks:stats`, and its rows as domain.TaskStats.

One pass over the filtered tasks with GROUPING SETS gives the totals and the
counts per priority, category and completion day, in the user's time zone
for "today" and for the days of `completed_per_day`.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from server import domain

_STATS = sql.SQL("""
WITH z AS (
    SELECT coalesce((SELECT timezone FROM users WHERE id = %(user_id)s), 'UTC') AS tz
),
today AS (SELECT (now() AT TIME ZONE z.tz)::date AS d, z.tz FROM z),
f AS (
    SELECT t.priority, t.category, t.completed,
           NOT t.completed AND t.due_at < now() AS overdue,
           NOT t.completed AND (t.due_at AT TIME ZONE today.tz)::date = today.d AS due_today,
           CASE WHEN t.completed AND (t.completed_at AT TIME ZONE today.tz)::date > today.d - {days}
                THEN (t.completed_at AT TIME ZONE today.tz)::date END AS day
    FROM tasks AS t, today WHERE {where}
)
SELECT grouping(priority, category, day), priority, category, day, count(*),
       count(*) FILTER (WHERE completed), count(*) FILTER (WHERE overdue),
       count(*) FILTER (WHERE due_today)
FROM f GROUP BY GROUPING SETS ((), (priority), (category), (day))
""")
"""One pass over the matching tasks: the totals, then counts per priority, category and day."""

_TOTALS, _BY_PRIORITY, _BY_CATEGORY, _BY_DAY = 7, 3, 5, 6
"""grouping(priority, category, day) of each grouping set's rows."""


_DAYS = sql.Literal(domain.COMPLETED_PER_DAY_DAYS)


def statement(conditions: list[sql.Composable]) -> sql.Composed:
    """The stats statement for these filter conditions (see task_queries)."""
    return _STATS.format(where=sql.SQL(" AND ").join(conditions), days=_DAYS)


def to_stats(rows: list[tuple[Any, ...]]) -> domain.TaskStats:
    """The statement's rows as domain.TaskStats (all four priorities listed)."""
    totals = next((r for r in rows if r[0] == _TOTALS), None)
    total, completed, overdue, due_today = totals[4:8] if totals else (0, 0, 0, 0)
    priorities = {domain.Priority(r[1]): r[4] for r in rows if r[0] == _BY_PRIORITY}
    categories = sorted((r[2], r[4]) for r in rows if r[0] == _BY_CATEGORY)
    days = sorted((r[3], r[4]) for r in rows if r[0] == _BY_DAY and r[3] is not None)
    return domain.TaskStats(
        total=total,
        completed=completed,
        overdue=overdue,
        due_today=due_today,
        by_priority=tuple((p, priorities.get(p, 0)) for p in domain.Priority),
        by_category=tuple(categories),
        completed_per_day=tuple(days),
    )
