"""The statements behind `tasks:stats` and `tags`, and their rows as domain objects.

Unfiltered (the common case), stats and tags read the per-user aggregates the
triggers on `tasks` keep (migration 0004): `task_counts` for the totals and the
counts per priority, category and tag; `task_time_counts` (15-minute buckets)
for the completion days, `due_today` and `overdue` in the user's time zone. Only
the open tasks due in the current, partly elapsed bucket are counted from
`tasks` itself. Cost: the number of the user's distinct categories, tags and
buckets, not of tasks.

Filtered, one pass over the matching tasks with GROUPING SETS gives the same
figures.
"""

from __future__ import annotations

import datetime as dt
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

_BIN = "date_bin('15 minutes', {}, timestamptz '2000-01-01 00:00+00')"

AGGREGATES = (
    """
WITH z AS (
    SELECT coalesce((SELECT timezone FROM users WHERE id = %(user_id)s), 'UTC') AS tz
),
b AS (
    SELECT z.tz, today.d,
           (today.d::timestamp AT TIME ZONE z.tz) AS today_start,
           ((today.d + 1)::timestamp AT TIME ZONE z.tz) AS tomorrow_start,
           ((today.d - %(days)s::int + 1)::timestamp AT TIME ZONE z.tz) AS window_start,
           """
    + _BIN.format("now()")
    + """ AS now_bucket
    FROM z CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE z.tz)::date AS d) AS today
)
SELECT 'count', dimension, value, n FROM task_counts WHERE user_id = %(user_id)s AND n <> 0
UNION ALL
SELECT 'day', NULL, ((c.bucket AT TIME ZONE b.tz)::date)::text, sum(c.n)
FROM task_time_counts AS c, b
WHERE c.user_id = %(user_id)s AND c.kind = 1 AND c.bucket >= b.window_start
GROUP BY 1, 2, 3 HAVING sum(c.n) <> 0
UNION ALL
SELECT 'due_today', NULL, NULL, coalesce(sum(c.n), 0)
FROM task_time_counts AS c, b
WHERE c.user_id = %(user_id)s AND c.kind = 2
  AND c.bucket >= b.today_start AND c.bucket < b.tomorrow_start
UNION ALL
SELECT 'overdue', NULL, NULL,
       (SELECT coalesce(sum(c.n), 0) FROM task_time_counts AS c
        WHERE c.user_id = %(user_id)s AND c.kind = 2 AND c.bucket < b.now_bucket)
     + (SELECT count(*) FROM tasks AS t
        WHERE t.user_id = %(user_id)s AND NOT t.completed
          AND t.due_at >= b.now_bucket AND t.due_at < now())
FROM b
"""
)
"""Stats of all the user's tasks from the aggregates (params: user_id, days)."""

TAGS = """
SELECT value, n FROM task_counts
WHERE user_id = %s AND dimension = 'tag' AND n > 0 ORDER BY value
"""
"""Every tag of the user's tasks with how many carry it, by name, from the aggregates."""


def statement(conditions: list[sql.Composable]) -> sql.Composed:
    """The stats statement for these filter conditions (see task_queries)."""
    return _STATS.format(where=sql.SQL(" AND ").join(conditions), days=_DAYS)


def from_aggregates(rows: list[tuple[Any, ...]]) -> domain.TaskStats:
    """The AGGREGATES statement's rows as domain.TaskStats."""
    counts = {(r[1], r[2]): int(r[3]) for r in rows if r[0] == "count"}
    single = {r[0]: int(r[3]) for r in rows if r[0] in ("due_today", "overdue")}
    days = sorted((dt.date.fromisoformat(r[2]), int(r[3])) for r in rows if r[0] == "day")
    return domain.TaskStats(
        total=counts.get(("total", ""), 0),
        completed=counts.get(("completed", ""), 0),
        overdue=single.get("overdue", 0),
        due_today=single.get("due_today", 0),
        by_priority=tuple((p, counts.get(("priority", str(p.value)), 0)) for p in domain.Priority),
        by_category=tuple(sorted((v, n) for (d, v), n in counts.items() if d == "category")),
        completed_per_day=tuple(days),
    )


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
