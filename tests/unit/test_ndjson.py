"""The NDJSON lines of tasks:stream read exactly like protobuf's JSON for the same Task."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from google.protobuf import json_format

from server import domain
from server.servicers import converters, ndjson

T0 = dt.datetime(2026, 11, 25, 15, 0, 0, tzinfo=dt.UTC)


def _task(**overrides: object) -> domain.Task:
    base: dict[str, object] = dict(
        id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        title='Buy milk \u00e9\u2603 "quoted"\n',
        description="",
        completed=False,
        completed_at=None,
        priority=domain.Priority.MEDIUM,
        due_at=None,
        remind_at=None,
        category="",
        tags=(),
        created_at=T0,
        updated_at=T0,
        version=1,
    )
    base.update(overrides)
    return domain.Task(**base)  # type: ignore[arg-type]


CASES = [
    _task(),
    _task(completed=True, completed_at=T0.replace(microsecond=123000), tags=("a", "b")),
    _task(
        due_at=T0.replace(microsecond=123456),
        remind_at=T0.replace(microsecond=1),
        priority=domain.Priority.URGENT,
        category="home",
        description="x" * 300,
    ),
    _task(
        created_at=dt.datetime(
            2026, 1, 1, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=5))
        )
    ),
]


@pytest.mark.parametrize("task", CASES)
def test_line_matches_protobufs_json(task: domain.Task) -> None:
    line = ndjson.lines([task])
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    expected = json_format.MessageToDict(
        converters.task_to_proto(task),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    assert json.loads(line) == expected


def test_one_line_per_task() -> None:
    body = ndjson.lines(CASES)
    assert [json.loads(line)["id"] for line in body.decode().splitlines()] == [
        str(t.id) for t in CASES
    ]


@pytest.mark.parametrize("task", CASES)
def test_bulk_protos_equal_single_ones(task: domain.Task) -> None:
    """`tasks_to_proto` (batches) makes the same message as `task_to_proto`, times included."""
    assert converters.tasks_to_proto([task]) == [converters.task_to_proto(task)]
