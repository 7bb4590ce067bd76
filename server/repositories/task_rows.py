"""A task's SQL pieces, parameters, rows and JSON, all derived from `domain.TASK_SCHEMA`.

Everything here is built once, at import, with psycopg's `sql` module, the
one composition mechanism of the repositories. Rows are decoded by a mapping
generated from the declaration (every statement selects `columns()`, so the
column of each field is known by its name), never by a hand-written
`row[7]`; the JSON form is the
one PostgreSQL's `to_jsonb` gives a task row (the outbox snapshots and the
idempotency answers use it).

The rules about writes live here, once, as SQL built from the domain:
`completed_at` follows `completed`, and a write's change kind comes from
`domain.ChangeKind`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from psycopg import sql

from server import domain

Kind = domain.FieldKind
NAMES: tuple[str, ...] = tuple(f.name for f in domain.TASK_SCHEMA)
"""Every column of a task, in declaration order."""
WRITABLE: tuple[str, ...] = tuple(f.name for f in domain.WRITABLE_TASK_FIELDS)
"""The columns a caller writes, in declaration order."""

_PG_TYPES = {
    Kind.UUID: "uuid",
    Kind.TEXT: "text",
    Kind.BOOL: "boolean",
    Kind.PRIORITY: "smallint",
    Kind.TIME: "timestamptz",
    Kind.TAGS: "text[]",
    Kind.VERSION: "integer",
}
"""The PostgreSQL type of each kind (recordset columns and parameter casts)."""

_BY_NAME = {f.name: f for f in domain.TASK_SCHEMA}


def columns(table: str | None = None) -> sql.Composed:
    """Every task column, optionally qualified by a table alias."""
    if table is None:
        return sql.SQL(", ").join(sql.Identifier(name) for name in NAMES)
    return sql.SQL(", ").join(sql.Identifier(table, name) for name in NAMES)


def names(fields: Iterable[str]) -> sql.Composed:
    """These column names, comma-separated."""
    return sql.SQL(", ").join(sql.Identifier(name) for name in fields)


def placeholder(name: str) -> sql.Composable:
    """The named parameter of a field, cast where psycopg cannot infer the type."""
    if _BY_NAME[name].kind is Kind.TAGS:
        return sql.SQL("{}::text[]").format(sql.Placeholder(name))
    return sql.Placeholder(name)


def recordset(fields: Iterable[str], flags: bool = False) -> sql.Composed:
    """`name type, ...` of a `jsonb_to_recordset` alias; `flags` adds `has_<name> boolean`."""
    parts: list[sql.Composable] = []
    for name in fields:
        if flags:
            parts.append(sql.SQL("{} boolean").format(sql.Identifier(f"has_{name}")))
        parts.append(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(_PG_TYPES[_BY_NAME[name].kind]))
        )
    return sql.SQL(", ").join(parts)


def completed_at(completed: sql.Composable, old: str | None) -> sql.Composable:
    """The rule for `completed_at`, as SQL.

    It is now when a task turns completed, kept while it stays completed, and
    NULL while it is open.

    Args:
        completed: the new `completed` value.
        old: the alias of the row before the write, or None for an insert.
    """
    if old is None:
        return sql.SQL("CASE WHEN {} THEN now() END").format(completed)
    return sql.SQL(
        "CASE WHEN NOT {c} THEN NULL WHEN {was} THEN coalesce({at}, now()) ELSE now() END"
    ).format(
        c=completed, was=sql.Identifier(old, "completed"), at=sql.Identifier(old, "completed_at")
    )


def kind(value: domain.ChangeKind) -> sql.Composable:
    """A change kind as an SQL literal."""
    return sql.Literal(int(value))


def change_kind(completed: sql.Composable, was_completed: sql.Composable) -> sql.Composable:
    """The kind of an update, as SQL: COMPLETED or REOPENED if `completed` flipped, else UPDATED."""
    return sql.SQL(
        "CASE WHEN {c} = {was} THEN {u} WHEN {c} THEN {done} ELSE {reopened} END"
    ).format(
        c=completed,
        was=was_completed,
        u=kind(domain.ChangeKind.UPDATED),
        done=kind(domain.ChangeKind.COMPLETED),
        reopened=kind(domain.ChangeKind.REOPENED),
    )


def text(statement: sql.Composable) -> str:
    """A composed statement as text, once, at import."""
    return statement.as_string(None)


# --- values in and out, by kind -------------------------------------------------------

_PRIORITIES = {p.value: p for p in domain.Priority}
"""Stored priority -> enum, a dict lookup (Priority(n) is slow on hot paths)."""


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _from_iso(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


def _same(value: Any) -> Any:
    return value


_TO_PARAM: dict[domain.FieldKind, Callable[[Any], Any]] = {
    Kind.PRIORITY: int,
    Kind.TAGS: list,
}
_FROM_ROW: dict[domain.FieldKind, Callable[[Any], Any]] = {
    Kind.PRIORITY: _PRIORITIES.__getitem__,
    Kind.TAGS: tuple,
}
_TO_JSON: dict[domain.FieldKind, Callable[[Any], Any]] = {
    Kind.UUID: str,
    Kind.PRIORITY: int,
    Kind.TIME: _iso,
    Kind.TAGS: list,
}
_FROM_JSON: dict[domain.FieldKind, Callable[[Any], Any]] = {
    Kind.UUID: uuid.UUID,
    Kind.PRIORITY: domain.Priority,
    Kind.TIME: _from_iso,
    Kind.TAGS: tuple,
}

_PARAMS = tuple((f.name, _TO_PARAM.get(f.kind, _same)) for f in domain.WRITABLE_TASK_FIELDS)
_JSON_PARAMS = tuple((f.name, _TO_JSON.get(f.kind, _same)) for f in domain.WRITABLE_TASK_FIELDS)
_DECODE = tuple((f.name, _FROM_ROW.get(f.kind, _same)) for f in domain.TASK_SCHEMA)
_JSON_OUT = tuple((f.name, _TO_JSON.get(f.kind, _same)) for f in domain.TASK_SCHEMA)
_JSON_IN = tuple((f.name, f.optional, _FROM_JSON.get(f.kind, _same)) for f in domain.TASK_SCHEMA)


def params(fields: domain.TaskFields) -> dict[str, Any]:
    """The writable fields as statement parameters, by column name."""
    return {name: encode(getattr(fields, name)) for name, encode in _PARAMS}


def json_item(fields: domain.TaskFields) -> dict[str, Any]:
    """The writable fields as one JSON object of a `jsonb_to_recordset` array."""
    return {name: encode(getattr(fields, name)) for name, encode in _JSON_PARAMS}


_WIDTH = len(NAMES)


def to_task(row: Sequence[Any], start: int = 0) -> domain.Task:
    """The task in a row whose columns from `start` on are `columns()` (the generated mapping).

    Each statement selects `columns()`, so column `start + i` is field `NAMES[i]`; the
    values go to `domain.Task` by name.
    """
    values = row[start : start + _WIDTH]
    return domain.Task(
        **{name: decode(v) for (name, decode), v in zip(_DECODE, values, strict=True)}
    )


def to_json(task: domain.Task) -> dict[str, Any]:
    """A task as the JSON object `to_jsonb` gives its row."""
    return {name: encode(getattr(task, name)) for name, encode in _JSON_OUT}


def from_json(data: Mapping[str, Any]) -> domain.Task:
    """A task from its `to_jsonb` snapshot.

    Snapshots are stored (the outbox for 7 days, batch answers for 48 hours), so one may
    predate an optional field added since: that field is None, as the column's default.
    """
    return domain.Task(
        **{
            name: _optional(decode, data.get(name)) if optional else decode(data[name])
            for name, optional, decode in _JSON_IN
        }
    )


def _optional(decode: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else decode(value)


# --- the wire forms of a task, built by PostgreSQL for the streams -------------------------

_ETAG = sql.Literal(domain.ETAG_PREFIX)


def _api_value(field: domain.TaskField) -> sql.Composable:
    """A field as `WireForm.FIELDS` carries it (ids and etag text, times in µs, see domain)."""
    column = sql.Identifier(field.name)
    if field.kind is Kind.UUID:
        return sql.SQL("{}::text").format(column)
    if field.kind is Kind.TIME:  # numeric: exact
        return sql.SQL("(extract(epoch FROM {}) * 1000000)::int8").format(column)
    if field.kind is Kind.VERSION:
        return sql.SQL("{} || {}").format(_ETAG, column)
    return column


def _rfc3339(column: sql.Composable) -> sql.Composable:
    """A timestamptz as protobuf's JSON writes it: UTC, 0, 3 or 6 fractional digits, `Z`."""
    micros = sql.SQL("(date_part('microseconds', {})::int8 %% 1000000)").format(column)
    return sql.SQL(
        "to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE"
        " WHEN {us} = 0 THEN ''"
        " WHEN {us} %% 1000 = 0 THEN '.' || lpad(({us} / 1000)::text, 3, '0')"
        " ELSE '.' || lpad({us}::text, 6, '0') END || 'Z'"
    ).format(c=column, us=micros)


def _quoted(text: sql.Composable) -> sql.Composable:
    return sql.SQL("'\"' || {} || '\"'").format(text)


def _json_value(field: domain.TaskField) -> sql.Composable:
    """A field's JSON value as text; NULL for an unset optional field."""
    column = sql.Identifier(field.name)
    if field.kind is Kind.UUID:
        return _quoted(sql.SQL("{}::text").format(column))
    if field.kind is Kind.TEXT:
        return sql.SQL("to_json({})::text").format(column)
    if field.kind is Kind.BOOL:
        return sql.SQL("CASE WHEN {} THEN 'true' ELSE 'false' END").format(column)
    if field.kind is Kind.PRIORITY:
        return sql.SQL("CASE {} {} END").format(
            column,
            sql.SQL(" ").join(
                sql.SQL("WHEN {} THEN {}").format(
                    sql.Literal(p.value), sql.Literal(f'"PRIORITY_{p.name}"')
                )
                for p in domain.Priority
            ),
        )
    if field.kind is Kind.TIME:
        return _quoted(_rfc3339(column))
    if field.kind is Kind.TAGS:
        return sql.SQL("array_to_json({})::text").format(column)
    return _quoted(sql.SQL("{} || {}").format(_ETAG, column))  # Kind.VERSION: the etag


def _json_line() -> sql.Composable:
    """A task row's JSON object, byte for byte protobuf's JSON of the API's Task.

    Fields in proto order by their API names, every scalar and list present, enums by
    name, unset (NULL) times left out: `concat` skips the NULL that `'"name":' || NULL`
    is. As bytes (UTF-8), so the stream needs no decoding and encoding per task.
    """
    if domain.TASK_SCHEMA[0].optional:  # pragma: no cover - the opening brace needs a field
        raise RuntimeError("the first task field must not be optional")
    pieces = [
        sql.SQL("{} || {}").format(
            sql.Literal(("{" if i == 0 else ",") + f'"{field.api_name}":'), _json_value(field)
        )
        for i, field in enumerate(domain.TASK_SCHEMA)
    ]
    return sql.SQL("convert_to(concat({}, '}}'), 'UTF8') AS wire_line").format(
        sql.SQL(", ").join(pieces)
    )


WIRE_COLUMNS: dict[domain.WireForm, tuple[sql.Composable, int]] = {
    domain.WireForm.FIELDS: (
        sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(_api_value(f), sql.Identifier(f"wire_{f.name}"))
            for f in domain.TASK_SCHEMA
        ),
        len(domain.TASK_SCHEMA),
    ),
    domain.WireForm.NDJSON: (_json_line(), 1),
}
"""Each wire form's select list and how many columns it is (see `domain.WireForm`).

Its columns are named `wire_*`: an ORDER BY names the table's columns, which an output
column of the same name (`id` as text) would shadow."""
