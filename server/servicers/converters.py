"""Proto <-> domain conversions, as plain module functions."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from google.protobuf import timestamp_pb2
from todo.v1 import task_pb2, task_service_pb2, user_pb2

from server import domain, errors
from server.services import queries

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    """A datetime as a Timestamp."""
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


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


def priority(value: int) -> domain.Priority:
    """A proto Priority as the domain's; unspecified means MEDIUM."""
    if value == task_pb2.PRIORITY_UNSPECIFIED:
        return domain.Priority.MEDIUM
    try:
        return domain.Priority(value)
    except ValueError:
        raise errors.InvalidArgument(
            errors.FieldViolation(
                "priority",
                "must be one of PRIORITY_LOW, PRIORITY_MEDIUM, PRIORITY_HIGH, PRIORITY_URGENT",
            ),
            reason="INVALID_PRIORITY",
        ) from None


def filter_priorities(values: Any) -> list[domain.Priority]:
    """Priorities named in a filter; PRIORITY_UNSPECIFIED or an unknown number is refused."""
    try:
        return [domain.Priority(v) for v in values]
    except ValueError:
        raise errors.InvalidArgument(
            errors.FieldViolation("priority", "must name PRIORITY_LOW, _MEDIUM, _HIGH or _URGENT"),
            reason="INVALID_FILTER",
        ) from None


def task_filter(request: Any) -> domain.TaskFilter:
    """The filter fields shared by ListTasks, StreamTasks and GetTaskStats requests."""
    return queries.make_filter(
        completed=request.completed if request.HasField("completed") else None,
        priorities=filter_priorities(request.priority),
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


def task_to_proto(task: domain.Task) -> task_pb2.Task:
    """A domain task as the API's Task (unset times are left out)."""
    message = task_pb2.Task(
        id=str(task.id),
        user_id=str(task.user_id),
        title=task.title,
        description=task.description,
        completed=task.completed,
        priority=int(task.priority),  # type: ignore[arg-type]
        category=task.category,
        tags=task.tags,
        created_at=timestamp(task.created_at),
        updated_at=timestamp(task.updated_at),
        etag=task.etag,
    )
    for field in ("completed_at", "due_at", "remind_at"):
        value = getattr(task, field)
        if value is not None:
            getattr(message, field).CopyFrom(timestamp(value))
    return message


def task_fields(request: Any) -> domain.TaskFields:
    """The writable fields of a Create, Replace or Update request; unset ones take defaults."""
    return domain.TaskFields(
        title=request.title,
        description=request.description,
        completed=request.completed,
        priority=priority(request.priority),
        due_at=optional_datetime(request, "due_at"),
        remind_at=optional_datetime(request, "remind_at"),
        category=request.category,
        tags=tuple(request.tags),
    )


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
    present = {
        name
        for name in (
            "title",
            "description",
            "completed",
            "priority",
            "category",
            "due_at",
            "remind_at",
        )
        if message.HasField(name)
    }
    if message.tags:
        present.add("tags")
    return frozenset(present)


def _mask_fields(paths: Any) -> frozenset[str]:
    names = {_CAMEL.sub("_", path).lower() for path in paths}
    unknown = sorted(names - domain.TASK_FIELDS)
    if unknown or not names:
        rule = f"names unknown fields: {', '.join(unknown)}" if unknown else "must name a field"
        raise errors.InvalidArgument(
            errors.FieldViolation("update_mask", rule), reason="INVALID_UPDATE_MASK"
        )
    return frozenset(names)


def optional_string(request: Any, field: str) -> str | None:
    """An `optional string` field's value, or None when absent."""
    return str(getattr(request, field)) if request.HasField(field) else None
