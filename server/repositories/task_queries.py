"""SQL for filtered, ordered, keyset-paginated task queries.

Every expression comes from the fixed tables below; client values only ever
travel as bound parameters. A sort key expands to one or more sort columns:
`due_at` becomes `(due_at IS NULL), due_at` so tasks without a due date come
last in both directions, and `title` sorts by `lower(title)`. The id is the
final tie-breaker. A page starts after a cursor holding the previous page's
last sort-column values (selected as extra columns, so they are exactly what
PostgreSQL compared).
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from psycopg import sql

from server import domain


@dataclasses.dataclass(frozen=True)
class SortColumn:
    """One ORDER BY expression and its direction."""

    expression: sql.Composable
    descending: bool
    nullable: bool = False


_DUE_AT_IS_NULL = sql.SQL("(due_at IS NULL)")
_DUE_AT = sql.Identifier("due_at")
_LOWER_TITLE = sql.SQL("lower(title)")
_ID = sql.Identifier("id")
_KEY_COLUMNS = {key: sql.Identifier(key.value) for key in domain.SortKey}


def sort_columns(order: tuple[domain.Order, ...]) -> list[SortColumn]:
    """The ORDER BY columns of an order, the id last (in the last term's direction)."""
    columns: list[SortColumn] = []
    for term in order:
        if term.key is domain.SortKey.DUE_AT:
            columns.append(SortColumn(_DUE_AT_IS_NULL, descending=False))
            columns.append(SortColumn(_DUE_AT, term.descending, nullable=True))
        elif term.key is domain.SortKey.TITLE:
            columns.append(SortColumn(_LOWER_TITLE, term.descending))
        else:
            columns.append(SortColumn(_KEY_COLUMNS[term.key], term.descending))
    columns.append(SortColumn(_ID, order[-1].descending))
    return columns


OWNER_CONDITION = sql.SQL("user_id = %(user_id)s")
"""The owner condition, always the first."""
_COMPLETED = sql.SQL("completed = %(f_completed)s")
_PRIORITIES = sql.SQL("priority = ANY(%(f_priorities)s::smallint[])")
_CATEGORY = sql.SQL("category = %(f_category)s")
TAGS_CONDITION = sql.SQL("tags @> %(f_tags)s::text[]")
"""The tags condition (all of the filter's tags)."""
_DUE_AFTER = sql.SQL("due_at >= %(f_due_after)s")
_DUE_BEFORE = sql.SQL("due_at < %(f_due_before)s")
_OVERDUE = sql.SQL("NOT completed AND due_at < now()")
_NOT_OVERDUE = sql.SQL("(completed OR due_at IS NULL OR due_at >= now())")
Q_CONDITION = sql.SQL("(title ILIKE %(f_q)s OR description ILIKE %(f_q)s)")
"""The `q` condition; filter_conditions puts it last."""


def filter_conditions(
    user_id: uuid.UUID, f: domain.TaskFilter
) -> tuple[list[sql.Composable], dict[str, Any]]:
    """WHERE conditions (ANDed) and their parameters for the owner and a filter."""
    conditions: list[sql.Composable] = [OWNER_CONDITION]
    params: dict[str, Any] = {"user_id": user_id}
    if f.completed is not None:
        conditions.append(_COMPLETED)
        params["f_completed"] = f.completed
    if f.priorities:
        conditions.append(_PRIORITIES)
        params["f_priorities"] = [int(p) for p in f.priorities]
    if f.category is not None:
        conditions.append(_CATEGORY)
        params["f_category"] = f.category
    if f.tags:
        conditions.append(TAGS_CONDITION)
        params["f_tags"] = list(f.tags)
    if f.due_after is not None:
        conditions.append(_DUE_AFTER)
        params["f_due_after"] = f.due_after
    if f.due_before is not None:
        conditions.append(_DUE_BEFORE)
        params["f_due_before"] = f.due_before
    if f.overdue is True:
        conditions.append(_OVERDUE)
    elif f.overdue is False:
        conditions.append(_NOT_OVERDUE)
    if f.q:
        conditions.append(Q_CONDITION)
        params["f_q"] = "%" + _escape_like(f.q) + "%"
    return conditions, params


def where(conditions: list[sql.Composable]) -> sql.Composable:
    """The conditions ANDed."""
    return sql.SQL(" AND ").join(conditions)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_LESS, _GREATER = sql.SQL("<"), sql.SQL(">")
_ASC, _DESC = sql.SQL("ASC"), sql.SQL("DESC")


def after_condition(
    columns: list[SortColumn], cursor: domain.PageCursor
) -> tuple[sql.Composable, dict[str, Any]]:
    """The keyset condition `row comes after the cursor` for these sort columns."""
    values = [*cursor.keys, cursor.task_id]
    if len(values) != len(columns):
        raise ValueError("cursor does not match the order")
    params = {f"k{i}": value for i, value in enumerate(values)}
    keys = [sql.Placeholder(f"k{i}") for i in range(len(columns))]
    same_direction = len({c.descending for c in columns}) == 1
    if same_direction and not any(c.nullable for c in columns):  # index-friendly row comparison
        return sql.SQL("({}) {} ({})").format(
            sql.SQL(", ").join(c.expression for c in columns),
            _LESS if columns[0].descending else _GREATER,
            sql.SQL(", ").join(keys),
        ), params
    alternatives: list[sql.Composable] = []
    for i, column in enumerate(columns):
        if values[i] is None:  # nothing sorts strictly after NULL within its group
            continue
        equal = [_equals(c, keys[j], values[j]) for j, c in enumerate(columns[:i])]
        op = _LESS if column.descending else _GREATER
        alternatives.append(
            sql.SQL(" AND ").join(
                [*equal, sql.SQL("{} {} {}").format(column.expression, op, keys[i])]
            )
        )
    return sql.SQL("({})").format(sql.SQL(" OR ").join(alternatives or [sql.SQL("false")])), params


def _equals(column: SortColumn, key: sql.Composable, value: object) -> sql.Composable:
    if value is None:
        return sql.SQL("{} IS NULL").format(column.expression)
    return sql.SQL("{} = {}").format(column.expression, key)


def order_clause(columns: list[SortColumn], prefix: str | None = None) -> sql.Composable:
    """ORDER BY terms for the sort columns (with `prefix`: that alias's s0, s1, ... instead)."""
    return sql.SQL(", ").join(
        sql.SQL("{} {}").format(
            c.expression if prefix is None else sql.Identifier(prefix, f"s{i}"),
            _DESC if c.descending else _ASC,
        )
        for i, c in enumerate(columns)
    )
