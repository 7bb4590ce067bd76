"""Canonical encodings of request values, for hashes that must survive a deploy.

The `request_id` body hash of batch calls and the query a page token is bound
to are hashed over this text: JSON with sorted keys, dataclasses as objects
keyed by field name, ISO 8601 times, enum members by name, UUIDs as text, sets
sorted. A dataclass field left at its default is left out, so a field added
with a default changes no hash of a value that does not use it. Python's
`repr()` is never used: it changes when a class or a field is renamed, and
would turn an honest retry after a deploy into `REQUEST_ID_REUSED`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json
import uuid
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not _at_default(f, getattr(value, f.name))
        }
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, frozenset | set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"no canonical form for {type(value).__name__}")


def _at_default(field: dataclasses.Field[Any], value: Any) -> bool:
    """Whether a dataclass field holds its declared default (left out of the text)."""
    if field.default is not dataclasses.MISSING:
        return bool(value == field.default)
    if field.default_factory is not dataclasses.MISSING:
        return bool(value == field.default_factory())
    return False


def canonical(value: Any) -> str:
    """The canonical text of a value built from dataclasses, enums, times, ids and containers.

    Raises:
        TypeError: the value holds a type with no canonical form.
    """
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(value: Any) -> bytes:
    """SHA-256 of the canonical text."""
    return hashlib.sha256(canonical(value).encode()).digest()
