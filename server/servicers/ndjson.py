"""Tasks as newline-delimited JSON, byte for byte the API's JSON form.

`tasks:stream` sends many lines per gRPC message (as `google.api.HttpBody`),
which costs a fraction of one message per task. The lines must read exactly
like Envoy's transcoding of a `todo.v1.Task` (snake_case names, every scalar
and list present, enums by name, unset times left out, RFC 3339 UTC times
with 0, 3 or 6 fractional digits); a unit test compares them with protobuf's
own JSON printer.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

from server import domain

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


_PRIORITY = {p: f"PRIORITY_{p.name}" for p in domain.Priority}
_ZERO = dt.timedelta(0)


def _time(value: dt.datetime) -> str:
    if value.utcoffset() != _ZERO:
        value = value.astimezone(dt.UTC)
    micros = value.microsecond
    spec = "seconds" if micros == 0 else "milliseconds" if micros % 1000 == 0 else "microseconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def task_object(task: domain.Task) -> dict[str, object]:
    """The API's JSON object for a task, in proto field order."""
    obj: dict[str, object] = {
        "id": str(task.id),
        "user_id": str(task.user_id),
        "title": task.title,
        "description": task.description,
        "completed": task.completed,
    }
    if task.completed_at is not None:
        obj["completed_at"] = _time(task.completed_at)
    obj["priority"] = _PRIORITY[task.priority]
    if task.due_at is not None:
        obj["due_at"] = _time(task.due_at)
    if task.remind_at is not None:
        obj["remind_at"] = _time(task.remind_at)
    obj["category"] = task.category
    obj["tags"] = list(task.tags)
    obj["created_at"] = _time(task.created_at)
    obj["updated_at"] = _time(task.updated_at)
    obj["etag"] = task.etag
    return obj


def lines(tasks: Iterable[domain.Task]) -> bytes:
    """The tasks as NDJSON, one line each."""
    return "".join(_ENCODER.encode(task_object(t)) + "\n" for t in tasks).encode("utf-8")
