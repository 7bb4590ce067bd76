"""The main query shapes use an index, not a scan of the whole table.

50,000 tasks (20,000 for the user, the rest spread over four others) are
enough for the planner to care; EXPLAIN runs on the statements the
repository really builds, captured by an executor that explains instead of
executing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from server import domain
from server.db import executor
from server.repositories.tasks import PgTasksRepository
from server.repositories.users import PgUsersRepository
from server.services import queries

_FILL = """
INSERT INTO tasks (user_id, title, description, completed, priority, due_at, remind_at,
                   category, tags, created_at)
SELECT %(user_id)s, 'task ' || g, CASE WHEN g %% 50 = 0 THEN 'buy milk' ELSE '' END,
       g %% 3 = 0, 1 + g %% 4,
       CASE WHEN g %% 5 = 0 THEN NULL ELSE now() + (g %% 100 - 50) * interval '1 day' END,
       CASE WHEN g %% 20 = 0 THEN now() + (g %% 48) * interval '1 hour' END,
       (ARRAY['', 'home', 'work', 'errands'])[1 + g %% 4],
       CASE WHEN g %% 100 = 0 THEN ARRAY['rare'] ELSE ARRAY['t' || (g %% 10)] END,
       now() - g * interval '1 second'
FROM generate_series(1, %(count)s) AS g
"""


class ExplainingExecutor(executor.Executor):
    """Runs EXPLAIN on each statement instead of the statement; keeps the plans."""

    def __init__(self, connection: executor.Connection) -> None:
        super().__init__(connection)
        self.plans: list[dict[str, Any]] = []

    async def _explain(self, query: Any, params: Any) -> None:
        cursor = await self._connection.execute("EXPLAIN (FORMAT JSON) " + query, params)
        row = await cursor.fetchone()
        assert row is not None
        self.plans.append(row[0][0]["Plan"])

    async def fetch_all(self, query: Any, params: Any = None) -> list[tuple[Any, ...]]:
        await self._explain(query, params)
        return []

    async def fetch_one(self, query: Any, params: Any = None) -> tuple[Any, ...] | None:
        await self._explain(query, params)
        return None


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


def _seq_scans_of_tasks(plan: dict[str, Any]) -> list[str]:
    return [
        n.get("Alias", "")
        for n in _nodes(plan)
        if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "tasks"
    ]


async def _fill(
    conn: executor.Connection, users_repo: PgUsersRepository, user: domain.User
) -> None:
    await conn.execute(_FILL, {"user_id": user.id, "count": 5_000})
    for i in range(4):
        other = await users_repo.add(f"bulk-{i}-{uuid.uuid4().hex[:6]}@example.com", "h", "B")
        await conn.execute(_FILL, {"user_id": other.id, "count": 20_000})
    await conn.execute("ANALYZE tasks")


async def test_query_shapes_use_indexes(
    conn: executor.Connection, users_repo: PgUsersRepository, user: domain.User
) -> None:
    """One fill (85,000 tasks, 5,000 of them the user's), then every shape explained."""
    await _fill(conn, users_repo, user)
    now = dt.datetime.now(dt.UTC)
    shapes: dict[str, domain.TaskFilter | None] = {
        "first page": queries.make_filter(),
        "completed": queries.make_filter(completed=True),
        "priority": queries.make_filter(priorities=[domain.Priority.URGENT]),
        "category": queries.make_filter(category="errands"),
        "common tag": queries.make_filter(tags=["t1"]),
        "rare tag": queries.make_filter(tags=["rare"]),
        "due range": queries.make_filter(due_after=now, due_before=now + dt.timedelta(days=2)),
        "overdue": queries.make_filter(overdue=True),
        "q": queries.make_filter(q="milk"),
        "due order": None,
    }
    explaining = ExplainingExecutor(conn)
    repo = PgTasksRepository(explaining)
    for task_filter in shapes.values():
        query = (
            domain.TaskQuery(order=queries.parse_order_by("due_at"))
            if task_filter is None
            else domain.TaskQuery(task_filter)
        )
        await repo.list_page(user.id, query, 50, None)
    cursor = domain.PageCursor((now - dt.timedelta(hours=1),), uuid.uuid4(), 5_000)
    await repo.list_page(user.id, domain.TaskQuery(), 50, cursor)
    await repo.tags(user.id)
    await repo.reminders(user.id, dt.timedelta(days=1), 100)
    await repo.stats(user.id, domain.TaskFilter())
    names = [*shapes, "next page", "tags", "reminders", "stats"]
    scanning = [
        name
        for name, plan in zip(names, explaining.plans, strict=True)
        if _seq_scans_of_tasks(plan)
    ]
    assert scanning == []
    keyset = " ".join(n.get("Index Cond", "") for n in _nodes(explaining.plans[len(shapes)]))
    assert "created_at" in keyset
