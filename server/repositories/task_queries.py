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

from server import domain


@dataclasses.dataclass(frozen=True)
class SortColumn:
    """One ORDER BY expression and its direction."""

    expression: str
    descending: bool
    nullable: bool = False


def sort_columns(order: tuple[domain.Order, ...]) -> list[SortColumn]:
    """The ORDER BY columns of an order, the id last (in the last term's direction)."""
    columns: list[SortColumn] = []
    for term in order:
        if term.key is domain.SortKey.DUE_AT:
            columns.append(SortColumn("(due_at IS NULL)", descending=False))
            columns.append(SortColumn("due_at", term.descending, nullable=True))
        elif term.key is domain.SortKey.TITLE:
            columns.append(SortColumn("lower(title)", term.descending))
        else:
            columns.append(SortColumn(term.key.value, term.descending))
    columns.append(SortColumn("id", order[-1].descending))
    return columns


def filter_conditions(user_id: uuid.UUID, f: domain.TaskFilter) -> tuple[list[str], dict[str, Any]]:
    """WHERE conditions (ANDed) and their parameters for the owner and a filter."""
    conditions = ["user_id = %(user_id)s"]
    params: dict[str, Any] = {"user_id": user_id}
    if f.completed is not None:
        conditions.append("completed = %(f_completed)s")
        params["f_completed"] = f.completed
    if f.priorities:
        conditions.append("priority = ANY(%(f_priorities)s::smallint[])")
        params["f_priorities"] = [int(p) for p in f.priorities]
    if f.category is not None:
        conditions.append("category = %(f_category)s")
        params["f_category"] = f.category
    if f.tags:
        conditions.append("tags @> %(f_tags)s::text[]")
        params["f_tags"] = list(f.tags)
    if f.due_after is not None:
        conditions.append("due_at >= %(f_due_after)s")
        params["f_due_after"] = f.due_after
    if f.due_before is not None:
        conditions.append("due_at < %(f_due_before)s")
        params["f_due_before"] = f.due_before
    if f.overdue is True:
        conditions.append("NOT completed AND due_at < now()")
    elif f.overdue is False:
        conditions.append("(completed OR due_at IS NULL OR due_at >= now())")
    if f.q:
        conditions.append("(title ILIKE %(f_q)s OR description ILIKE %(f_q)s)")
        params["f_q"] = "%" + _escape_like(f.q) + "%"
    return conditions, params


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def after_condition(
    columns: list[SortColumn], cursor: domain.PageCursor
) -> tuple[str, dict[str, Any]]:
    """The keyset condition `row comes after the cursor` for these sort columns."""
    values = [*cursor.keys, cursor.task_id]
    if len(values) != len(columns):
        raise ValueError("cursor does not match the order")
    params = {f"k{i}": value for i, value in enumerate(values)}
    same_direction = len({c.descending for c in columns}) == 1
    if same_direction and not any(c.nullable for c in columns):  # index-friendly row comparison
        op = "<" if columns[0].descending else ">"
        names = ", ".join(c.expression for c in columns)
        placeholders = ", ".join(f"%(k{i})s" for i in range(len(columns)))
        return f"({names}) {op} ({placeholders})", params
    alternatives = []
    for i, column in enumerate(columns):
        if values[i] is None:  # nothing sorts strictly after NULL within its group
            continue
        equal = [_equals(c, j, values[j]) for j, c in enumerate(columns[:i])]
        op = "<" if column.descending else ">"
        alternatives.append(" AND ".join([*equal, f"{column.expression} {op} %(k{i})s"]))
    return "(" + " OR ".join(alternatives or ["false"]) + ")", params


def _equals(column: SortColumn, index: int, value: object) -> str:
    if value is None:
        return f"{column.expression} IS NULL"
    return f"{column.expression} = %(k{index})s"


def order_clause(columns: list[SortColumn]) -> str:
    """ORDER BY text for the sort columns."""
    return ", ".join(f"{c.expression} {'DESC' if c.descending else 'ASC'}" for c in columns)
