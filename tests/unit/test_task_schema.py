"""One declaration of a task: the proto, the model, the domain and every codec agree with it.

`test_task_schema_matches_proto_model_and_domain` is the test that fails when a
field is added to the proto's Task (or to the model, or to the domain) but
forgotten in `domain.TASK_SCHEMA` or any of the places it drives.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
import uuid
from typing import Any

import pytest
from google.protobuf import descriptor, json_format
from todo.v1 import task_pb2, task_service_pb2

from server import domain
from server.db import models
from server.repositories import task_rows
from server.servicers import converters, ndjson

Kind = domain.FieldKind
FD = descriptor.FieldDescriptor

_PROTO_TYPES = {
    Kind.UUID: (FD.TYPE_STRING, None),
    Kind.TEXT: (FD.TYPE_STRING, None),
    Kind.BOOL: (FD.TYPE_BOOL, None),
    Kind.PRIORITY: (FD.TYPE_ENUM, "todo.v1.Priority"),
    Kind.TIME: (FD.TYPE_MESSAGE, "google.protobuf.Timestamp"),
    Kind.TAGS: (FD.TYPE_STRING, None),
    Kind.VERSION: (FD.TYPE_STRING, None),  # the etag
}
_PYTHON_TYPES = {
    Kind.UUID: uuid.UUID,
    Kind.TEXT: str,
    Kind.BOOL: bool,
    Kind.PRIORITY: domain.Priority,
    Kind.TIME: dt.datetime,
    Kind.TAGS: tuple[str, ...],
    Kind.VERSION: int,
}
WRITE_MESSAGES = [
    task_service_pb2.CreateTaskRequest,
    task_service_pb2.ReplaceTaskRequest,
    task_service_pb2.UpdateTaskRequest,
    task_service_pb2.NewTask,
    task_service_pb2.TaskUpdate,
]
"""The request messages a caller writes task fields with; each carries every writable one."""


def _proto_type(field: Any) -> tuple[int, str | None]:
    if field.type == FD.TYPE_ENUM:
        return field.type, field.enum_type.full_name
    if field.type == FD.TYPE_MESSAGE:
        return field.type, field.message_type.full_name
    return field.type, None


def _expected_python_type(field: domain.TaskField) -> object:
    base = _PYTHON_TYPES[field.kind]
    return base | None if field.optional else base


def test_task_schema_matches_proto_model_and_domain() -> None:
    schema = domain.TASK_SCHEMA
    # The proto's Task: same fields, same order, matching types.
    proto: list[Any] = list(task_pb2.Task.DESCRIPTOR.fields)
    assert [f.name for f in proto] == [f.api_name for f in schema]
    for spec, field in zip(schema, proto, strict=True):
        assert _proto_type(field) == _PROTO_TYPES[spec.kind], spec.name
        assert field.is_repeated == (spec.kind is Kind.TAGS), spec.name
    # The SQLAlchemy model (the source of the migrations): the same columns.
    table = models.TaskRow.__table__
    assert [c.name for c in table.columns] == list(task_rows.NAMES)
    for spec in schema:
        assert table.columns[spec.name].nullable == spec.optional or spec.name == "user_id", (
            spec.name
        )
    # The domain types: Task has every field, TaskFields the writable ones, same types.
    hints = typing.get_type_hints(domain.Task)
    assert [f.name for f in dataclasses.fields(domain.Task)] == [f.name for f in schema]
    for spec in schema:
        assert hints[spec.name] == _expected_python_type(spec), spec.name
    writable = [f.name for f in dataclasses.fields(domain.TaskFields)]
    assert writable == [f.name for f in domain.WRITABLE_TASK_FIELDS]
    assert frozenset(writable) == domain.TASK_FIELDS
    field_hints = typing.get_type_hints(domain.TaskFields)
    for spec in domain.WRITABLE_TASK_FIELDS:
        assert field_hints[spec.name] == _expected_python_type(spec), spec.name


@pytest.mark.parametrize("message", WRITE_MESSAGES, ids=lambda m: m.DESCRIPTOR.name)
def test_every_write_message_carries_every_writable_field(message: typing.Any) -> None:
    fields = message.DESCRIPTOR.fields_by_name
    for spec in domain.WRITABLE_TASK_FIELDS:
        assert spec.name in fields, f"{message.DESCRIPTOR.name} lacks {spec.name}"
        assert _proto_type(fields[spec.name]) == _PROTO_TYPES[spec.kind], spec.name


_STAMP = dt.datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=dt.UTC)
_SAMPLES: dict[domain.FieldKind, typing.Callable[[str], object]] = {
    Kind.UUID: lambda name: uuid.uuid4(),
    Kind.TEXT: lambda name: f"{name} value",
    Kind.BOOL: lambda name: True,
    Kind.PRIORITY: lambda name: domain.Priority.HIGH,
    Kind.TIME: lambda name: _STAMP + dt.timedelta(minutes=len(name)),
    Kind.TAGS: lambda name: ("a", "b"),
    Kind.VERSION: lambda name: 3,
}
"""A non-default value of each kind, so every field of the schema shows in every form."""


def _full_task(**changes: object) -> domain.Task:
    values = {f.name: _SAMPLES[f.kind](f.name) for f in domain.TASK_SCHEMA}
    return domain.Task(**{**values, **changes})  # type: ignore[arg-type]


_STORED = {Kind.PRIORITY: int, Kind.TAGS: list}
"""How psycopg hands back a column of each kind, where it differs from the domain value."""


@pytest.mark.parametrize("optional_none", [False, True])
def test_every_codec_round_trips_every_field(optional_none: bool) -> None:
    nones = {f.name: None for f in domain.TASK_SCHEMA if f.optional} if optional_none else {}
    task = _full_task(**nones)
    # JSON snapshots (outbox, idempotency answers).
    assert task_rows.from_json(task_rows.to_json(task)) == task
    # Rows decoded by the generated mapping, here after one leading column.
    stored = [
        _STORED.get(spec.kind, lambda v: v)(getattr(task, spec.name)) for spec in domain.TASK_SCHEMA
    ]
    assert task_rows.to_task(("total", *stored, "s0"), 1) == task
    # The proto, and the NDJSON writer against protobuf's own JSON printer.
    message = converters.task_to_proto(task)
    printed = json_format.MessageToDict(message, preserving_proto_field_name=True)
    assert list(ndjson.task_object(task)) == list(printed)
    assert ndjson.task_object(task) == printed
    for spec in domain.TASK_SCHEMA:
        if spec.optional and getattr(task, spec.name) is None:
            assert not message.HasField(spec.name)
    # The writable fields, read back from a write request.
    written = {k: v for k, v in printed.items() if k in domain.TASK_FIELDS}
    request = json_format.ParseDict(written, task_service_pb2.CreateTaskRequest())
    expected = domain.TaskFields(**{n: getattr(task, n) for n in domain.TASK_FIELDS})
    assert converters.task_fields(request) == expected
    assert converters.task_patch(
        json_format.ParseDict(written, task_service_pb2.UpdateTaskRequest())
    ).present == frozenset(written)


def test_a_snapshot_from_before_an_optional_field_existed_still_reads() -> None:
    # Outbox rows (7 days) and batch answers (48 h) outlive a deploy that adds a field.
    task = _full_task()
    snapshot = task_rows.to_json(task)
    for field in domain.TASK_SCHEMA:
        older = {name: value for name, value in snapshot.items() if name != field.name}
        if field.optional:
            absent: dict[str, Any] = {field.name: None}
            assert task_rows.from_json(older) == dataclasses.replace(task, **absent)
        else:
            with pytest.raises(KeyError):
                task_rows.from_json(older)
