"""Batch writes on tasks: one statement per batch, change events included.

Items travel as one JSON array (`jsonb_to_recordset`), so a batch of 500 is
one round trip whatever its shape. Each statement returns only the rows it
wrote; the service compares that with what it asked for and, if anything is
missing, raises and lets the unit of work roll the whole batch back.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Jsonb

from server import domain
from server.db import executor
from server.repositories import changes
from server.repositories.tasks import COLUMNS, to_task

_QUALIFIED = ", ".join(f"tasks.{name}" for name in COLUMNS.split(", "))

_EVENT = "CASE WHEN tasks.completed = x.o_completed THEN 2 WHEN tasks.completed THEN 3 ELSE 4 END"

INSERT_MANY = changes.with_changes(f"""
INSERT INTO tasks (id, user_id, title, description, completed, completed_at, priority, due_at,
                   remind_at, category, tags)
SELECT x.id, %(user_id)s, x.title, x.description, x.completed,
       CASE WHEN x.completed THEN now() END, x.priority, x.due_at, x.remind_at, x.category, x.tags
FROM jsonb_to_recordset(%(items)s) AS x(
    id uuid, title text, description text, completed boolean, priority smallint,
    due_at timestamptz, remind_at timestamptz, category text, tags text[])
RETURNING {COLUMNS}, 1 AS event_type
""")

_LOCKED = """
    SELECT id AS o_id, completed AS o_completed FROM tasks
    WHERE user_id = %(user_id)s AND id = ANY(%(ids)s) FOR UPDATE
"""

UPDATE_MANY = changes.with_changes(f"""
UPDATE tasks SET
    title = CASE WHEN x.has_title THEN x.title ELSE tasks.title END,
    description = CASE WHEN x.has_description THEN x.description ELSE tasks.description END,
    completed = CASE WHEN x.has_completed THEN x.completed ELSE tasks.completed END,
    completed_at = CASE WHEN NOT x.has_completed THEN tasks.completed_at
                        WHEN NOT x.completed THEN NULL
                        WHEN tasks.completed THEN coalesce(tasks.completed_at, now())
                        ELSE now() END,
    priority = CASE WHEN x.has_priority THEN x.priority ELSE tasks.priority END,
    due_at = CASE WHEN x.has_due_at THEN x.due_at ELSE tasks.due_at END,
    remind_at = CASE WHEN x.has_remind_at THEN x.remind_at ELSE tasks.remind_at END,
    category = CASE WHEN x.has_category THEN x.category ELSE tasks.category END,
    tags = CASE WHEN x.has_tags THEN x.tags ELSE tasks.tags END,
    version = tasks.version + 1,
    updated_at = now()
FROM (
    SELECT r.*, o.o_completed FROM jsonb_to_recordset(%(items)s) AS r(
        id uuid, expected_version integer,
        has_title boolean, title text, has_description boolean, description text,
        has_completed boolean, completed boolean, has_priority boolean, priority smallint,
        has_due_at boolean, due_at timestamptz, has_remind_at boolean, remind_at timestamptz,
        has_category boolean, category text, has_tags boolean, tags text[])
    JOIN ({_LOCKED}) AS o ON o.o_id = r.id
) AS x
WHERE tasks.id = x.id AND (x.expected_version IS NULL OR tasks.version = x.expected_version)
RETURNING {_QUALIFIED}, {_EVENT} AS event_type
""")

COMPLETE_MANY = changes.with_changes(f"""
UPDATE tasks SET
    completed = %(completed)s,
    completed_at = CASE WHEN NOT %(completed)s THEN NULL
                        WHEN tasks.completed THEN coalesce(tasks.completed_at, now())
                        ELSE now() END,
    version = tasks.version + 1,
    updated_at = now()
FROM ({_LOCKED}) AS x
WHERE tasks.id = x.o_id
RETURNING {_QUALIFIED}, {_EVENT} AS event_type
""")

DELETE_MANY = changes.with_changes(f"""
DELETE FROM tasks WHERE user_id = %(user_id)s AND id = ANY(%(ids)s)
RETURNING {COLUMNS}, 5 AS event_type
""")

VERSIONS = "SELECT id, version FROM tasks WHERE user_id = %s AND id = ANY(%s)"


def _time(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _new_item(task_id: uuid.UUID, fields: domain.TaskFields) -> dict[str, Any]:
    return {
        "id": str(task_id),
        "title": fields.title,
        "description": fields.description,
        "completed": fields.completed,
        "priority": int(fields.priority),
        "due_at": _time(fields.due_at),
        "remind_at": _time(fields.remind_at),
        "category": fields.category,
        "tags": list(fields.tags),
    }


def _update_item(change: domain.TaskUpdate) -> dict[str, Any]:
    item = _new_item(change.task_id, change.patch.fields)
    item["expected_version"] = change.expected_version
    for name in domain.TASK_FIELDS:
        item[f"has_{name}"] = name in change.patch.present
    return item


def _in_order(rows: list[tuple[Any, ...]], ids: list[uuid.UUID]) -> list[domain.Task]:
    by_id = {task.id: task for task in map(to_task, rows)}
    return [by_id[task_id] for task_id in ids if task_id in by_id]


class PgTaskBatchesRepository:
    """`ports.TaskBatchesRepository` on PostgreSQL; results come back in request order."""

    def __init__(self, db: executor.Executor) -> None:
        self._db = db

    async def add_many(
        self, user_id: uuid.UUID, items: list[domain.TaskFields]
    ) -> list[domain.Task]:
        """Insert every task."""
        ids = [uuid.uuid4() for _ in items]
        payload = Jsonb([_new_item(i, f) for i, f in zip(ids, items, strict=True)])
        rows = await self._db.fetch_all(INSERT_MANY, {"user_id": user_id, "items": payload})
        return _in_order(rows, ids)

    async def update_many(
        self, user_id: uuid.UUID, items: list[domain.TaskUpdate]
    ) -> list[domain.Task]:
        """Apply each patch; tasks that are missing or whose version differs are left out."""
        ids = [item.task_id for item in items]
        payload = Jsonb([_update_item(item) for item in items])
        params = {"user_id": user_id, "items": payload, "ids": ids}
        return _in_order(await self._db.fetch_all(UPDATE_MANY, params), ids)

    async def set_completed_many(
        self, user_id: uuid.UUID, ids: list[uuid.UUID], completed: bool
    ) -> list[domain.Task]:
        """Complete or reopen the user's tasks among `ids`."""
        params = {"user_id": user_id, "ids": ids, "completed": completed}
        return _in_order(await self._db.fetch_all(COMPLETE_MANY, params), ids)

    async def delete_many(self, user_id: uuid.UUID, ids: list[uuid.UUID]) -> int:
        """Delete the user's tasks among `ids`; returns how many."""
        return len(await self._db.fetch_all(DELETE_MANY, {"user_id": user_id, "ids": ids}))

    async def versions(self, user_id: uuid.UUID, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        """The current version of each of the user's tasks among `ids`."""
        return {row[0]: row[1] for row in await self._db.fetch_all(VERSIONS, (user_id, ids))}
