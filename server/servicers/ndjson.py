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
from collections.abc import Iterable, Sequence
from typing import Any

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


def _json_value(kind: domain.FieldKind) -> Any:
    if kind is domain.FieldKind.UUID:
        return str
    if kind is domain.FieldKind.PRIORITY:
        return _PRIORITY.__getitem__
    if kind is domain.FieldKind.TIME:
        return _time
    if kind is domain.FieldKind.TAGS:
        return list
    if kind is domain.FieldKind.VERSION:
        return domain.etag
    return None


_FIELDS = tuple((f.api_name, f.name, f.optional, _json_value(f.kind)) for f in domain.TASK_SCHEMA)
"""(JSON name, attribute, optional, encoder or None) of every field, in proto order."""


def task_object(task: domain.Task) -> dict[str, object]:
    """The API's JSON object for a task, in proto field order."""
    obj: dict[str, object] = {}
    for api_name, name, optional, encode in _FIELDS:
        value = getattr(task, name)
        if optional and value is None:
            continue
        obj[api_name] = value if encode is None else encode(value)
    return obj


def lines(tasks: Iterable[domain.Task]) -> bytes:
    """The tasks as NDJSON, one line each."""
    return "".join(_ENCODER.encode(task_object(t)) + "\n" for t in tasks).encode("utf-8")


def join(lines: Sequence[bytes]) -> bytes:
    """Lines the database wrote (`domain.WireForm.NDJSON`) as one NDJSON body part."""
    return b"\n".join(lines) + b"\n"
