"""The main query shapes use an index, not a scan of the whole table.

85,000 tasks (5,000 for the user, 20,000 for each of four others), in a database
of this module's own, are enough for the planner to care; EXPLAIN runs on the
statements the repository really builds, captured by an executor that explains
instead of executing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from server import domain
from server.config import Settings
from server.db import database, executor
from server.db import pool as db_pool
from server.repositories import tasks
from server.repositories.tasks import PgTasksRepository
from server.repositories.users import PgUsersRepository
from server.services import queries

_FILL = """
INSERT INTO tasks (user_id, title, description, completed, priority, due_at, remind_at,
                   category, tags, created_at)
SELECT %(user_id)s, 'task ' || g,
       CASE WHEN g %% 50 = 0 THEN 'buy milk' WHEN g %% 2000 = 7 THEN 'feed the zebra' ELSE '' END,
       g %% 3 = 0, 1 + g %% 4,
       CASE WHEN g %% 5 = 0 THEN NULL ELSE now() + (g %% 100 - 50) * interval '1 day' END,
       CASE WHEN g %% 20 = 0 THEN now() + (g %% 48) * interval '1 hour' END,
       (ARRAY['', 'home', 'work', 'errands'])[1 + g %% 4],
       CASE WHEN g %% 100 = 0 THEN ARRAY['rare'] ELSE ARRAY['t' || (g %% 10)] END,
       now() - g * interval '1 second'
FROM generate_series(1, %(count)s) AS g
"""


@pytest.fixture
async def conn(scratch_database_url: str) -> AsyncIterator[executor.Connection]:
    """This module's own database, migrated to head, and a connection configured as a server
    process's, in a transaction rolled back at the end.

    The plans follow the tables' statistics and size, which the shared database's other rows
    would move from run to run: the e2e stacks commit tasks with random tags, and rolled-back
    tests leave dead tuples. In the shared database the common tag's plan tipped now and then.
    """
    database.run_migrations(scratch_database_url)
    settings = Settings(database_url=scratch_database_url, db_pool_min=1, db_pool_max=1)
    own_pool = db_pool.make_pool(scratch_database_url, settings)
    await own_pool.open(wait=True)
    try:
        async with own_pool.connection() as connection, connection.transaction(force_rollback=True):
            yield connection
    finally:
        await own_pool.close()


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

    async def fetch_all(
        self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool = False
    ) -> list[tuple[Any, ...]]:
        await self._explain(query, params)
        return []

    async def fetch_one(
        self, query: Any, params: Any = None, *, prepare: bool | None = None
    ) -> tuple[Any, ...] | None:
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
) -> uuid.UUID:
    """The fill; returns one of the users with 20,000 tasks."""
    await conn.execute(_FILL, {"user_id": user.id, "count": 5_000})
    for i in range(4):
        other = await users_repo.add(f"bulk-{i}-{uuid.uuid4().hex[:6]}@example.com", "h", "B")
        await conn.execute(_FILL, {"user_id": other.id, "count": 20_000})
    # A sample as large as the tables: the statistics, hence the plans, are the same on every
    # run (the default 30,000-row sample once tipped the common tag to the tags GIN index).
    await conn.execute("SET default_statistics_target = 1000")
    await conn.execute("ANALYZE")
    await conn.execute("RESET default_statistics_target")
    return other.id


async def test_query_shapes_use_indexes(
    conn: executor.Connection,
    users_repo: PgUsersRepository,
    user: domain.User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One fill (85,000 tasks, 5,000 of them the user's), then every shape explained."""
    bulk_user = await _fill(conn, users_repo, user)
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
        "rare q": queries.make_filter(q="zebra"),
        "due order": None,
    }
    monkeypatch.setattr(tasks, "WALK", 200)  # a walk short of the user's 5,000 rows
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
    await repo.list_page(bulk_user, domain.TaskQuery(queries.make_filter(q="zebra")), 50, None)
    month = queries.make_filter(due_after=now, due_before=now + dt.timedelta(days=30))
    await repo.list_page(bulk_user, domain.TaskQuery(month), 50, None)
    # Each q shape: the walk finds nothing (the executor answers no rows), so step two follows.
    names = [
        n
        for shape in shapes
        for n in ((shape, f"{shape} fallback") if "q" in shape.split() else (shape,))
    ]
    names += ["next page", "tags", "reminders", "stats", "bulk rare q", "bulk rare q fallback"]
    names += ["bulk due range"]
    scanning = [
        name
        for name, plan in zip(names, explaining.plans, strict=True)
        if _seq_scans_of_tasks(plan)
    ]
    assert scanning == []
    plans = dict(zip(names, explaining.plans, strict=True))
    keyset = " ".join(n.get("Index Cond", "") for n in _nodes(plans["next page"]))
    assert "created_at" in keyset
    # Tag filters walk task_tags in listing order: no sort, no bitmap of the tags GIN index.
    for name in ("common tag", "rare tag"):
        assert "pk_task_tags" in _indexes(plans[name]), name
        assert "ix_tasks_user_id_tags" not in _indexes(plans[name]), name
    # q, step one: the listing's index, no trigram; step two: the trigram indexes.
    assert "ix_tasks_user_id_created_at_id" in _indexes(plans["q"])
    assert not {"ix_tasks_title_trgm", "ix_tasks_description_trgm"} & _indexes(plans["q"])
    assert {"ix_tasks_title_trgm", "ix_tasks_description_trgm"} <= _indexes(
        plans["bulk rare q fallback"]
    )
    # A due range: the count is planned apart from the page, on the due-date index; where the
    # range is wide enough for the page to walk the listing, it walks the listing's index alone
    # (due_at is included) and reads only the page's rows, by id.
    assert "ix_tasks_user_id_due_at_id" in _indexes(plans["due range"])
    due_walk = _scans(plans["bulk due range"])
    assert ("Index Only Scan", "ix_tasks_user_id_created_at_id") in due_walk
    assert ("Index Scan", "ix_tasks_user_id_created_at_id") not in due_walk
    assert ("Index Scan", "pk_tasks") in due_walk
    # Reminders use their index (at scale in order, stopping at the limit, index-only once the
    # table is vacuumed: bench/data_scale.py); stats and tags read the aggregates.
    assert "ix_tasks_user_id_remind_at_id" in _indexes(plans["reminders"])
    assert _relations(plans["tags"]) == {"task_counts"}
    assert {"task_counts", "task_time_counts"} <= _relations(plans["stats"])
    # ... touching `tasks` only for the open tasks due in the current 15 minutes.
    task_indexes = {i for i in _indexes(plans["stats"]) if i.startswith("ix_tasks")}
    assert task_indexes <= {"ix_tasks_user_id_due_at_id"}
    # The reminders index covers the query: walked in its order it needs no table row. (A table
    # filled in this uncommitted transaction has no all-visible pages, so the planner prefers a
    # bitmap here; at scale, after VACUUM, it picks this plan on its own.)
    await conn.execute("SET LOCAL enable_bitmapscan = off")
    await repo.reminders(bulk_user, dt.timedelta(days=1), 1000)
    assert _scans(explaining.plans[-1]) == {("Index Only Scan", "ix_tasks_user_id_remind_at_id")}


def _indexes(plan: dict[str, Any]) -> set[str]:
    return {n["Index Name"] for n in _nodes(plan) if "Index Name" in n}


def _scans(plan: dict[str, Any]) -> set[tuple[str, str]]:
    return {(n["Node Type"], n["Index Name"]) for n in _nodes(plan) if "Index Name" in n}


def _relations(plan: dict[str, Any]) -> set[str]:
    return {n["Relation Name"] for n in _nodes(plan) if "Relation Name" in n}


async def test_q_statements_are_never_prepared(
    conn: executor.Connection, tasks_repo: PgTasksRepository, user: domain.User
) -> None:
    """psycopg prepares a statement after 5 runs on a connection, and PostgreSQL then switches
    it to a generic plan when that looks cheaper: for `q` that plan reads every match through
    the trigram indexes and sorts them (bench/data_scale.py, README "Query shapes"). The `q`
    statements (walk, count, fallback, estimate) are planned for their values every time."""
    await conn.execute(_FILL, {"user_id": user.id, "count": 300})
    for term in ("milk", "zebra", "task"):  # the walk fills the page; runs dry; over the cap
        query = domain.TaskQuery(queries.make_filter(q=term))
        for _ in range(12):
            await tasks_repo.list_page(user.id, query, 5, None)
    cursor = await conn.execute(
        "SELECT statement FROM pg_prepared_statements WHERE statement ILIKE %s", ("%ILIKE%",)
    )
    assert await cursor.fetchall() == []
