"""The streams' wire forms, built by PostgreSQL, read exactly like the Python encoders.

`tasks:stream` lines come from SQL (`task_rows.WIRE_COLUMNS`); they must be byte for
byte what `ndjson.lines` writes for the same task (which tests/unit/test_ndjson.py
compares with protobuf's JSON), and the native stream's field tuples must make the
same Task messages as `converters.task_to_proto`. The cases cover every kind: quoting
and non-ASCII text, control characters, 0, 3 and 6 fractional digits, unset and set
optional times, tags, every priority.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from google.protobuf import json_format

from server import domain
from server.db import executor
from server.repositories import tasks
from server.servicers import converters, ndjson
from server.services import queries

T0 = dt.datetime(2026, 11, 25, 15, 0, 0, tzinfo=dt.UTC)

_SET = """
UPDATE tasks SET completed = %(completed)s, completed_at = %(completed_at)s,
       created_at = %(created_at)s, updated_at = %(updated_at)s, version = %(version)s
WHERE id = %(id)s
"""

CASES: list[tuple[domain.TaskFields, dict[str, Any]]] = [
    (
        domain.TaskFields(title='Buy milk \u00e9\u2603 "quoted" \\ back\n\ttab'),
        dict(completed=False, completed_at=None, created_at=T0, updated_at=T0, version=1),
    ),
    (
        domain.TaskFields(
            title="x\u0001y\u001fz\u007f",
            description="x" * 300,
            tags=("a", 'b "c"', "\u00fcber"),
            priority=domain.Priority.URGENT,
            category="home",
            due_at=T0.replace(microsecond=123456),
            remind_at=T0.replace(microsecond=1),
        ),
        dict(
            completed=True,
            completed_at=T0.replace(microsecond=123000),
            created_at=dt.datetime(
                2026, 1, 1, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=5))
            ),
            updated_at=T0.replace(microsecond=100),
            version=42,
        ),
    ),
    (
        domain.TaskFields(title="low", priority=domain.Priority.LOW, due_at=T0),
        dict(completed=False, completed_at=None, created_at=T0, updated_at=T0, version=7),
    ),
    (
        domain.TaskFields(title="high", priority=domain.Priority.HIGH, tags=("only",)),
        dict(
            completed=False,
            completed_at=None,
            created_at=T0 - dt.timedelta(days=400),
            updated_at=T0.replace(microsecond=10_000),
            version=3,
        ),
    ),
]


async def _stored(
    conn: executor.Connection, repo: tasks.PgTasksRepository, user: domain.User
) -> list[domain.Task]:
    for fields, overrides in CASES:
        task = await repo.add(user.id, fields)
        await conn.execute(_SET, {"id": task.id, **overrides})
    return list((await repo.list_page(user.id, domain.TaskQuery(), 100, None)).tasks)


async def test_ndjson_lines_from_sql_match_the_python_writer(
    conn: executor.Connection, tasks_repo: tasks.PgTasksRepository, user: domain.User
) -> None:
    stored = await _stored(conn, tasks_repo, user)
    chunk = await tasks_repo.stream_chunk(
        user.id, domain.TaskQuery(), 100, None, domain.WireForm.NDJSON
    )
    assert chunk.next_cursor is None
    assert ndjson.join(chunk.items) == ndjson.lines(stored)
    for line, task in zip(chunk.items, stored, strict=True):
        expected = json_format.MessageToDict(
            converters.task_to_proto(task),
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
        assert json.loads(line) == expected


async def test_fields_make_the_same_protos(
    conn: executor.Connection, tasks_repo: tasks.PgTasksRepository, user: domain.User
) -> None:
    stored = await _stored(conn, tasks_repo, user)
    chunk = await tasks_repo.stream_chunk(
        user.id, domain.TaskQuery(), 100, None, domain.WireForm.FIELDS
    )
    assert converters.tasks_from_fields(chunk.items) == [
        converters.task_to_proto(t) for t in stored
    ]


async def test_chunks_walk_every_task_once(
    conn: executor.Connection, tasks_repo: tasks.PgTasksRepository, user: domain.User
) -> None:
    stored = await _stored(conn, tasks_repo, user)
    query = domain.TaskQuery(order=(domain.Order(domain.SortKey.DUE_AT),))
    expected = (await tasks_repo.list_page(user.id, query, 100, None)).tasks
    seen: list[str] = []
    cursor = None
    while True:
        chunk = await tasks_repo.stream_chunk(user.id, query, 1, cursor, domain.WireForm.FIELDS)
        seen += [values[0] for values in chunk.items]
        if chunk.next_cursor is None:
            break
        cursor = chunk.next_cursor
    assert seen == [str(t.id) for t in expected] and len(seen) == len(stored)


async def test_filtered_streams_match_the_listing(
    conn: executor.Connection, tasks_repo: tasks.PgTasksRepository, user: domain.User
) -> None:
    """`q` (both steps) and the tag walk select the wire form too, in the listing's order."""
    await _stored(conn, tasks_repo, user)
    for task_filter in (
        queries.make_filter(q="milk"),
        queries.make_filter(q="x"),
        queries.make_filter(tags=["only"]),
        queries.make_filter(tags=["a"]),
    ):
        query = domain.TaskQuery(task_filter)
        page = await tasks_repo.list_page(user.id, query, 100, None)
        expected = [str(t.id) for t in page.tasks]
        for form in domain.WireForm:
            chunk = await tasks_repo.stream_chunk(user.id, query, 100, None, form)
            if form is domain.WireForm.FIELDS:
                got = [values[0] for values in chunk.items]
            else:
                got = [json.loads(line)["id"] for line in chunk.items]
            assert got == expected and expected, (task_filter, form)
