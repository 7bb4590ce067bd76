"""Finds text that must not enter the service: NUL and other control characters.

PostgreSQL `text` cannot hold U+0000, so a NUL in any string failed deep in
the database with a 500 and a logged traceback. The other control characters
(C0 and C1, DEL) are never part of a title, a name or an email, and can
rewrite a terminal showing logs or exported data (U+009B is CSI, U+001B ESC).
So every string field of every request, at any depth, repeated fields and
map keys included, may hold any Unicode code point except the control
characters (category Cc) other than tab, line feed and carriage return.
Format characters (bidi controls, zero-width joiners) are allowed: they are
needed by right-to-left scripts and emoji. Lone surrogates cannot reach the
server: protobuf refuses a string that is not valid UTF-8.

`violations(message)` returns one FieldViolation per bad field, named by its
path as the API prints it (`tasks[2].title`, `tags[0]`), in field order.

The check runs on every call, so the common case is fast: the strings of the
whole request are gathered (by a per-message-type plan that skips types
holding no text, such as Timestamp) and searched once; only a request that
fails is walked again to name its fields. `bench/text_safety.py` measures it.
"""

from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple

from google.protobuf import descriptor, message

from server import errors

REASON = "INVALID_CHARACTER"
MAX_VIOLATIONS = 100
"""A request with more bad fields is answered with the first ones only."""

_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_STRING = descriptor.FieldDescriptor.TYPE_STRING
_MESSAGE = descriptor.FieldDescriptor.TYPE_MESSAGE


def check(request: message.Message) -> None:
    """Raise InvalidArgument (reason INVALID_CHARACTER) if any string field is unsafe."""
    texts: list[str] = []
    _gather(request, texts)
    if not texts or _UNSAFE.search("".join(texts)) is None:
        return
    raise errors.InvalidArgument(violations(request), reason=REASON)


class _Plan(NamedTuple):
    """Which fields of one message type can hold text, by kind."""

    strings: tuple[str, ...]
    repeated_strings: tuple[str, ...]
    messages: tuple[str, ...]
    repeated_messages: tuple[str, ...]
    maps: tuple[descriptor.FieldDescriptor, ...]


def _gather(msg: message.Message, texts: list[str]) -> None:
    plan = _plan(msg.DESCRIPTOR)
    texts.extend([getattr(msg, name) for name in plan.strings])
    for name in plan.repeated_strings:
        texts.extend(getattr(msg, name))
    for name in plan.messages:
        if msg.HasField(name):
            _gather(getattr(msg, name), texts)
    for name in plan.repeated_messages:
        for item in getattr(msg, name):
            _gather(item, texts)
    for field in plan.maps:
        value_field = field.message_type.fields_by_name["value"]  # type: ignore[union-attr]
        for key, item in getattr(msg, field.name).items():
            texts.append(key if isinstance(key, str) else "")
            if value_field.type == _STRING:
                texts.append(item)
            elif value_field.type == _MESSAGE:
                _gather(item, texts)


@functools.cache
def _plan(desc: descriptor.Descriptor) -> _Plan:
    kinds: dict[str, list[Any]] = {k: [] for k in _Plan._fields}
    for field in desc.fields:
        entry = field.message_type
        if field.type == _STRING:
            kinds["repeated_strings" if field.is_repeated else "strings"].append(field.name)
        elif entry is not None and entry.GetOptions().map_entry:
            kinds["maps"].append(field)
        elif entry is not None and _holds_text(entry, frozenset({desc.full_name})):
            kinds["repeated_messages" if field.is_repeated else "messages"].append(field.name)
    return _Plan(**{k: tuple(v) for k, v in kinds.items()})


def _holds_text(desc: descriptor.Descriptor, seen: frozenset[str]) -> bool:
    """Whether a message of this type can contain a string at any depth."""
    if desc.full_name in seen:
        return True  # a recursive type: walk it, to be safe
    for field in desc.fields:
        entry = field.message_type
        if field.type == _STRING or (
            entry is not None and _holds_text(entry, seen | {desc.full_name})
        ):
            return True
    return False


def violations(request: message.Message) -> list[errors.FieldViolation]:
    """Every string field of `request` that holds a forbidden character."""
    found: list[errors.FieldViolation] = []
    _walk(request, "", found)
    return found


def _walk(msg: message.Message, prefix: str, found: list[errors.FieldViolation]) -> None:
    for field, value in msg.ListFields():
        if len(found) >= MAX_VIOLATIONS:
            return
        if field.type == _STRING:
            path = prefix + field.name
            if field.is_repeated:
                for i, item in enumerate(value):
                    _check_text(item, f"{path}[{i}]", found)
            else:
                _check_text(value, path, found)
        elif field.type == _MESSAGE:
            _walk_message_field(field, value, prefix + field.name, found)


def _walk_message_field(
    field: descriptor.FieldDescriptor,
    value: Any,
    path: str,
    found: list[errors.FieldViolation],
) -> None:
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        _walk_map(entry, value, path, found)
    elif field.is_repeated:
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}].", found)
    else:
        _walk(value, path + ".", found)


def _walk_map(
    entry: descriptor.Descriptor,
    value: Any,
    path: str,
    found: list[errors.FieldViolation],
) -> None:
    key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
    for key, item in value.items():
        item_path = f"{path}[{key!r}]"
        if key_field.type == _STRING:
            _check_text(key, item_path, found)
        if value_field.type == _STRING:
            _check_text(item, item_path, found)
        elif value_field.type == _MESSAGE:
            _walk(item, item_path + ".", found)


def _check_text(text: Any, path: str, found: list[errors.FieldViolation]) -> None:
    bad = _UNSAFE.search(text)
    if bad is not None and len(found) < MAX_VIOLATIONS:
        code = ord(bad.group())
        found.append(
            errors.FieldViolation(path, f"must not contain the control character U+{code:04X}")
        )
