"""Reading a call's invocation metadata: the one loop over its (key, value) pairs."""

from __future__ import annotations

from typing import Any


def values(context: Any, key: str) -> list[str]:
    """Every value sent under `key` (lowercase, as gRPC delivers keys), in order."""
    return [str(v) for k, v in context.invocation_metadata() or () if k == key]


def first(context: Any, key: str) -> str | None:
    """The first value sent under `key`, or None when the call carries none."""
    found = values(context, key)
    return found[0] if found else None
