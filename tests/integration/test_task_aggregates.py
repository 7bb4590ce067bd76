"""The per-user aggregates (task_counts, task_time_counts, task_tags) equal a full recount.

Several connections write one user's tasks at once (single and batch creates,
updates, completions, deletions, some inside multi-statement transactions),
then every aggregate is compared with what the tasks themselves say, computed
in Python. Deleting the account leaves no aggregate rows behind.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import random
import uuid
from typing import Any

from server import domain, errors
from server.db import executor
from server.db import pool as db_pool
from server.repositories.task_batches import PgTaskBatchesRepository
from server.repositories.tasks import PgTasksRepository
from server.repositories.users import PgUsersRepository

NOW = dt.datetime.now(dt.UTC)
TAGS = ("a", "b", "c", "d")
CATEGORIES = ("", "home", "work")
QUARTER = dt.timedelta(minutes=15)
ORIGIN = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _fields(rng: random.Random) -> domain.TaskFields:
    return domain.TaskFields(
        title=f"t{rng.randrange(1000)}",
        completed=rng.random() < 0.4,
        priority=rng.choice(list(domain.Priority)),
        due_at=None
        if rng.random() < 0.3
        else NOW + dt.timedelta(minutes=rng.randrange(-3000, 3000)),
        category=rng.choice(CATEGORIES),
        tags=tuple(sorted(rng.sample(TAGS, rng.randrange(3)))),
    )


def _patch(rng: random.Random) -> domain.TaskPatch:
    fields = _fields(rng)
    present = frozenset(
        rng.sample(["completed", "priority", "due_at", "category", "tags", "title"], 2)
    )
    return domain.TaskPatch(fields, present)


async def _ids(db: executor.Executor, user_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await db.fetch_all("SELECT id FROM tasks WHERE user_id = %s", (user_id,))
    return [row[0] for row in rows]


async def _worker(
    pool: db_pool.Pool, user_id: uuid.UUID, seed: int, steps: int, conflicts: list[str]
) -> None:
    rng = random.Random(seed)
    for _ in range(steps):
        try:
            await _step(pool, user_id, rng)
        except errors.Aborted as exc:  # a deadlock between transactions: the client retries
            conflicts.append(str(exc.__cause__))


async def _step(pool: db_pool.Pool, user_id: uuid.UUID, rng: random.Random) -> None:
    async with pool.connection() as connection:
        db = executor.Executor(connection)
        single, batches = PgTasksRepository(db), PgTaskBatchesRepository(db)
        ids = await _ids(db, user_id)
        action = rng.randrange(7) if ids else 0
        if action == 0:
            await single.add(user_id, _fields(rng))
        elif action == 1:
            await batches.add_many(user_id, [_fields(rng) for _ in range(rng.randrange(1, 8))])
        elif action == 2:
            await single.update(user_id, rng.choice(ids), _patch(rng), None)
        elif action == 3:
            chosen = rng.sample(ids, min(len(ids), 4))
            updates = [domain.TaskUpdate(i, _patch(rng)) for i in chosen]
            await batches.update_many(user_id, updates)
        elif action == 4:
            chosen = rng.sample(ids, min(len(ids), 5))
            await batches.set_completed_many(user_id, chosen, rng.random() < 0.5)
        elif action == 5:
            await single.delete(user_id, rng.choice(ids))
        else:  # one transaction, several statements (a use case)
            async with connection.transaction():
                await single.add(user_id, _fields(rng))
                await batches.delete_many(user_id, rng.sample(ids, min(len(ids), 2)))


def _bucket(value: dt.datetime) -> dt.datetime:
    return ORIGIN + QUARTER * ((value - ORIGIN) // QUARTER)


async def _expected_and_actual(
    db: executor.Executor, user_id: uuid.UUID
) -> tuple[dict[str, Any], dict[str, Any]]:
    rows = await db.fetch_all(
        "SELECT id, completed, completed_at, priority, category, tags, due_at, created_at"
        " FROM tasks WHERE user_id = %s",
        (user_id,),
    )
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    times: collections.Counter[tuple[int, dt.datetime]] = collections.Counter()
    tags = set()
    for task_id, completed, completed_at, priority, category, task_tags, due_at, created in rows:
        counts["total", ""] += 1
        counts["completed", ""] += completed
        counts["priority", str(priority)] += 1
        counts["category", category] += 1
        for tag in task_tags:
            counts["tag", tag] += 1
            tags.add((tag, created, task_id))
        if completed and completed_at is not None:
            times[1, _bucket(completed_at)] += 1
        if not completed and due_at is not None:
            times[2, _bucket(due_at)] += 1
    expected = {
        "counts": {k: v for k, v in counts.items() if v},
        "times": {k: v for k, v in times.items() if v},
        "tags": tags,
    }
    stored_counts = await db.fetch_all(
        "SELECT dimension, value, n FROM task_counts WHERE user_id = %s AND n <> 0", (user_id,)
    )
    stored_times = await db.fetch_all(
        "SELECT kind, bucket, n FROM task_time_counts WHERE user_id = %s AND n <> 0", (user_id,)
    )
    stored_tags = await db.fetch_all(
        "SELECT tag, created_at, task_id FROM task_tags WHERE user_id = %s", (user_id,)
    )
    actual = {
        "counts": {(r[0], r[1]): r[2] for r in stored_counts},
        "times": {(r[0], r[1]): r[2] for r in stored_times},
        "tags": {tuple(r) for r in stored_tags},
    }
    return expected, actual


async def test_aggregates_equal_a_recount_after_concurrent_writes(pool: db_pool.Pool) -> None:
    async with pool.connection() as connection:
        user = await PgUsersRepository(executor.Executor(connection)).add(
            f"agg-{uuid.uuid4().hex}@example.com", "h", "Agg"
        )
    try:
        conflicts: list[str] = []
        await asyncio.gather(*(_worker(pool, user.id, s, 40, conflicts) for s in range(3)))
        async with pool.connection() as connection:
            db = executor.Executor(connection)
            expected, actual = await _expected_and_actual(db, user.id)
            assert expected["counts"]["total", ""] > 0  # the workload left tasks behind
            assert expected["tags"]  # and tags, and buckets: the comparison is not vacuous
            assert actual == expected
            stats = await PgTasksRepository(db).stats(user.id, domain.TaskFilter())
            assert stats.total == expected["counts"]["total", ""]
    finally:
        async with pool.connection() as connection:
            await PgUsersRepository(executor.Executor(connection)).delete(user.id)
    async with pool.connection() as connection:
        db = executor.Executor(connection)
        for table in ("task_counts", "task_time_counts", "task_tags"):
            rows = await db.fetch_all(
                f"SELECT count(*) FROM {table} WHERE user_id = %s", (user.id,)
            )
            assert rows == [(0,)], table
