"""Batch writes on tasks: one statement per batch, change events included.

Items travel as one JSON array (`jsonb_to_recordset`), so a batch of 500 is
one round trip whatever its shape. Each statement returns only the rows it
wrote; the service compares that with what it asked for and, if anything is
missing, raises and lets the unit of work roll the whole batch back.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from server import domain
from server.db import executor
from server.repositories import changes, task_rows

_QUALIFIED = task_rows.columns("tasks")
_WRITABLE = task_rows.WRITABLE

_EVENT = task_rows.change_kind(sql.Identifier("tasks", "completed"), sql.SQL("x.o_completed"))

INSERT_MANY = changes.with_changes(
    sql.SQL("""
INSERT INTO tasks (id, user_id, {names}, completed_at)
SELECT x.id, %(user_id)s, {values}, {completed_at}
FROM jsonb_to_recordset(%(items)s) AS x(id uuid, {recordset})
RETURNING {columns}, {created} AS event_type
""").format(
        names=task_rows.names(_WRITABLE),
        values=sql.SQL(", ").join(sql.Identifier("x", name) for name in _WRITABLE),
        completed_at=task_rows.completed_at(sql.SQL("x.completed"), None),
        recordset=task_rows.recordset(_WRITABLE),
        columns=task_rows.columns(),
        created=task_rows.kind(domain.ChangeKind.CREATED),
    )
)

_LOCKED = sql.SQL("""
    SELECT id AS o_id, completed AS o_completed FROM tasks
    WHERE user_id = %(user_id)s AND id = ANY(%(ids)s) FOR UPDATE
""")


def _keep_unless_sent(name: str) -> sql.Composable:
    return sql.SQL("{col} = CASE WHEN {has} THEN {new} ELSE {old} END").format(
        col=sql.Identifier(name),
        has=sql.Identifier("x", f"has_{name}"),
        new=sql.Identifier("x", name),
        old=sql.Identifier("tasks", name),
    )


UPDATE_MANY = changes.with_changes(
    sql.SQL("""
UPDATE tasks SET
    {assignments},
    completed_at = CASE WHEN NOT x.has_completed THEN tasks.completed_at ELSE {completed_at} END,
    version = tasks.version + 1,
    updated_at = now()
FROM (
    SELECT r.*, o.o_completed FROM jsonb_to_recordset(%(items)s) AS r(
        id uuid, expected_version integer, {recordset})
    JOIN ({locked}) AS o ON o.o_id = r.id
) AS x
WHERE tasks.id = x.id AND (x.expected_version IS NULL OR tasks.version = x.expected_version)
RETURNING {columns}, {event} AS event_type
""").format(
        assignments=sql.SQL(",\n    ").join(map(_keep_unless_sent, _WRITABLE)),
        completed_at=task_rows.completed_at(sql.SQL("x.completed"), "tasks"),
        recordset=task_rows.recordset(_WRITABLE, flags=True),
        locked=_LOCKED,
        columns=_QUALIFIED,
        event=_EVENT,
    )
)

COMPLETE_MANY = changes.with_changes(
    sql.SQL("""
UPDATE tasks SET
    completed = %(completed)s,
    completed_at = {completed_at},
    version = tasks.version + 1,
    updated_at = now()
FROM ({locked}) AS x
WHERE tasks.id = x.o_id
RETURNING {columns}, {event} AS event_type
""").format(
        completed_at=task_rows.completed_at(sql.Placeholder("completed"), "tasks"),
        locked=_LOCKED,
        columns=_QUALIFIED,
        event=_EVENT,
    )
)

DELETE_MANY = changes.with_changes(
    sql.SQL("""
DELETE FROM tasks WHERE user_id = %(user_id)s AND id = ANY(%(ids)s)
RETURNING {columns}, {deleted} AS event_type
""").format(columns=task_rows.columns(), deleted=task_rows.kind(domain.ChangeKind.DELETED))
)

VERSIONS = "SELECT id, version FROM tasks WHERE user_id = %s AND id = ANY(%s)"


def _new_item(task_id: uuid.UUID, fields: domain.TaskFields) -> dict[str, Any]:
    return {"id": str(task_id), **task_rows.json_item(fields)}


def _update_item(change: domain.TaskUpdate) -> dict[str, Any]:
    item = _new_item(change.task_id, change.patch.fields)
    item["expected_version"] = change.expected_version
    for name in _WRITABLE:
        item[f"has_{name}"] = name in change.patch.present
    return item


def _in_order(rows: list[tuple[Any, ...]], ids: list[uuid.UUID]) -> list[domain.Task]:
    by_id = {task.id: task for task in map(task_rows.to_task, rows)}
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
