"""Proto <-> domain conversions, as plain module functions.

They only map shapes; every rule (defaults, allowed values) belongs to the
services (`services.validation`, `services.queries`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from google.protobuf import timestamp_pb2
from todo.v1 import task_pb2, task_service_pb2, user_pb2

from server import domain, errors
from server.services import queries, validation

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    """A datetime as a Timestamp (a naive one taken as UTC, as `FromDatetime` does).

    Built from the difference to the epoch: the same result as `Timestamp.FromDatetime`,
    in half its time (a listed page holds a few dozen timestamps).
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000
    )


def optional_datetime(message: Any, field: str) -> dt.datetime | None:
    """The Timestamp field as an aware UTC datetime, or None when unset."""
    if not message.HasField(field):
        return None
    try:
        value: dt.datetime = getattr(message, field).ToDatetime(tzinfo=dt.UTC)
    except (ValueError, OverflowError):
        raise errors.InvalidArgument(
            errors.FieldViolation(field, "must be a valid time"), reason="INVALID_TIME"
        ) from None
    return value


def optional_duration(message: Any, field: str) -> dt.timedelta | None:
    """The Duration field as a timedelta, or None when unset."""
    if not message.HasField(field):
        return None
    try:
        value: dt.timedelta = getattr(message, field).ToTimedelta()
    except (ValueError, OverflowError):
        raise errors.InvalidArgument(
            errors.FieldViolation(field, "must be a valid duration"), reason="INVALID_WINDOW"
        ) from None
    return value


def task_filter(request: Any) -> domain.TaskFilter:
    """The filter fields shared by ListTasks, StreamTasks and GetTaskStats requests."""
    return queries.make_filter(
        completed=request.completed if request.HasField("completed") else None,
        priorities=validation.filter_priorities(request.priority),
        category=request.category if request.HasField("category") else None,
        tags=request.tag,
        due_after=optional_datetime(request, "due_after"),
        due_before=optional_datetime(request, "due_before"),
        overdue=request.overdue if request.HasField("overdue") else None,
        q=request.q,
    )


def task_query(request: Any) -> domain.TaskQuery:
    """The filter and order of a ListTasks or StreamTasks request."""
    return domain.TaskQuery(task_filter(request), queries.parse_order_by(request.order_by))


def stats_to_proto(stats: domain.TaskStats) -> task_service_pb2.TaskStats:
    """Domain stats as the API's TaskStats."""
    return task_service_pb2.TaskStats(
        total=stats.total,
        completed=stats.completed,
        open=stats.total - stats.completed,
        overdue=stats.overdue,
        due_today=stats.due_today,
        by_priority=[
            task_service_pb2.PriorityCount(priority=int(p), count=n)  # type: ignore[arg-type]
            for p, n in stats.by_priority
        ],
        by_category=[
            task_service_pb2.CategoryCount(category=c, count=n) for c, n in stats.by_category
        ],
        completed_per_day=[
            task_service_pb2.DayCount(date=d.isoformat(), count=n)
            for d, n in stats.completed_per_day
        ],
    )


def reminder_to_proto(reminder: domain.Reminder) -> task_service_pb2.Reminder:
    """A domain reminder as the API's Reminder."""
    message = task_service_pb2.Reminder(
        task_id=str(reminder.task_id), title=reminder.title, remind_at=timestamp(reminder.remind_at)
    )
    if reminder.due_at is not None:
        message.due_at.CopyFrom(timestamp(reminder.due_at))
    return message


def event_to_proto(change: domain.TaskChange | None, resume_token: str) -> task_pb2.TaskEvent:
    """A change as a TaskEvent; None as a HEARTBEAT."""
    if change is None:
        return task_pb2.TaskEvent(
            event_type=task_pb2.EVENT_TYPE_HEARTBEAT, resume_token=resume_token
        )
    event = task_pb2.TaskEvent(
        event_type=int(change.kind),  # type: ignore[arg-type]
        task_id=str(change.task_id),
        resume_token=resume_token,
        commit_time=timestamp(change.committed_at),
    )
    if change.task is not None:
        event.task.CopyFrom(task_to_proto(change.task))
    return event


def user_to_proto(user: domain.User) -> user_pb2.User:
    """A domain user as the API's User."""
    return user_pb2.User(
        id=str(user.id),
        email=user.email,
        name=user.name,
        timezone=user.timezone,
        created_at=timestamp(user.created_at),
        updated_at=timestamp(user.updated_at),
    )


def _seconds_nanos(value: dt.datetime) -> dict[str, int]:
    """A Timestamp's fields for an aware datetime: no Timestamp message is built and copied."""
    since = value - _EPOCH
    return {"seconds": since.days * 86_400 + since.seconds, "nanos": since.microseconds * 1000}


def _proto_value(kind: domain.FieldKind) -> Any:
    if kind is domain.FieldKind.UUID:
        return str
    if kind is domain.FieldKind.PRIORITY:
        return int
    if kind is domain.FieldKind.TIME:
        return _seconds_nanos
    if kind is domain.FieldKind.VERSION:
        return domain.etag
    return None


_TO_PROTO = tuple(
    (f.api_name, f.name, f.optional, _proto_value(f.kind)) for f in domain.TASK_SCHEMA
)
"""(proto name, attribute, optional, encoder or None) of every Task field."""


def task_to_proto(task: domain.Task) -> task_pb2.Task:
    """A domain task as the API's Task (unset times are left out)."""
    values: dict[str, Any] = {}
    for api_name, name, optional, encode in _TO_PROTO:
        value = getattr(task, name)
        if optional and value is None:
            continue
        values[api_name] = value if encode is None else encode(value)
    return task_pb2.Task(**values)


def tasks_to_proto(tasks: Sequence[domain.Task]) -> list[task_pb2.Task]:
    """Many domain tasks as the API's Tasks (a batch's answer)."""
    return [task_to_proto(task) for task in tasks]


_API_NAMES = tuple(f.api_name for f in domain.TASK_SCHEMA)
_TIME_NAMES = tuple(f.api_name for f in domain.TASK_SCHEMA if f.kind is domain.FieldKind.TIME)
_MICROS = 1_000_000


def tasks_from_fields(chunk: Sequence[Sequence[Any]]) -> list[task_pb2.Task]:
    """Tasks in `domain.WireForm.FIELDS` as the API's Tasks: one constructor call each.

    The values are already the proto's (ids and etag strings, priority numbers, tags),
    by TASK_SCHEMA order, but times: their microseconds become Timestamps given as
    seconds and nanos (5x cheaper than from a datetime, which goes through Python).
    """
    make, names, times = task_pb2.Task, _API_NAMES, _TIME_NAMES
    tasks = []
    for values in chunk:
        fields = dict(zip(names, values, strict=True))
        for name in times:
            micros = fields[name]
            if micros is not None:
                fields[name] = {"seconds": micros // _MICROS, "nanos": micros % _MICROS * 1000}
        tasks.append(make(**fields))
    return tasks


def _field_reader(field: domain.TaskField) -> Any:
    name = field.name
    if field.kind is domain.FieldKind.TIME:
        return lambda request: optional_datetime(request, name)
    if field.kind is domain.FieldKind.PRIORITY:
        return lambda request: validation.priority(getattr(request, name))
    if field.kind is domain.FieldKind.TAGS:
        return lambda request: tuple(getattr(request, name))
    if field.optional:  # absent is None, not the proto's zero value
        return lambda request: getattr(request, name) if request.HasField(name) else None
    return lambda request: getattr(request, name)


_FROM_REQUEST = tuple((f.name, _field_reader(f)) for f in domain.WRITABLE_TASK_FIELDS)
_PRESENCE = tuple((f.name, f.kind is domain.FieldKind.TAGS) for f in domain.WRITABLE_TASK_FIELDS)
"""(name, repeated): a repeated field is present when not empty, the others by HasField."""


def task_fields(request: Any) -> domain.TaskFields:
    """The writable fields of a Create, Replace or Update request; unset ones take defaults."""
    return domain.TaskFields(**{name: read(request) for name, read in _FROM_REQUEST})


def task_patch(request: task_service_pb2.UpdateTaskRequest) -> domain.TaskPatch:
    """The fields an UpdateTaskRequest changes: those in its mask, else those present."""
    fields = task_fields(request)
    if request.HasField("update_mask"):
        return domain.TaskPatch(fields, _mask_fields(request.update_mask.paths))
    return domain.TaskPatch(fields, _present_fields(request))


def batch_update_item(
    item: task_service_pb2.TaskUpdate,
) -> tuple[str, domain.TaskPatch, str | None]:
    """One batch update item as (task id, patch of the fields present, etag or None)."""
    patch = domain.TaskPatch(task_fields(item), _present_fields(item))
    return item.id, patch, optional_string(item, "etag")


def _present_fields(message: Any) -> frozenset[str]:
    return frozenset(
        name
        for name, repeated in _PRESENCE
        if (len(getattr(message, name)) > 0 if repeated else message.HasField(name))
    )


def _mask_fields(paths: Any) -> frozenset[str]:
    return validation.update_mask({_CAMEL.sub("_", path).lower() for path in paths})


def optional_string(request: Any, field: str) -> str | None:
    """An `optional string` field's value, or None when absent."""
    return str(getattr(request, field)) if request.HasField(field) else None
