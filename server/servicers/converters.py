"""Proto <-> domain conversions, as plain module functions."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from google.protobuf import timestamp_pb2
from todo.v1 import task_pb2, task_service_pb2, user_pb2

from server import domain, errors

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
        if request.HasField(name)
    }
    if request.tags:
        present.add("tags")
    return domain.TaskPatch(fields, frozenset(present))


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
