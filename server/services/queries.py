"""Listing parameters: `order_by` parsing and filter validation.

Both produce domain values or raise InvalidArgument naming the field; the
repository turns them into SQL from a fixed list of expressions, so nothing a
client sends becomes SQL text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from server import domain, errors

Q_MAX = 200
FILTER_TAGS_MAX = 20
_DIRECTIONS = {"asc": False, "desc": True}


def _invalid(field: str, rule: str, reason: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(errors.FieldViolation(field, rule), reason=reason)


def parse_order_by(raw: str) -> tuple[domain.Order, ...]:
    """Parse `created_at desc, title`; empty means the default (newest first)."""
    if not raw.strip():
        return domain.DEFAULT_ORDER
    terms: list[domain.Order] = []
    for term in raw.split(","):
        words = term.split()
        if not 1 <= len(words) <= 2 or (len(words) == 2 and words[1].lower() not in _DIRECTIONS):
            raise _invalid(
                "order_by",
                f"'{term.strip()[:40]}' is not '<field>' or '<field> desc'",
                "INVALID_ORDER_BY",
            )
        try:
            key = domain.SortKey(words[0])
        except ValueError:
            names = ", ".join(k.value for k in domain.SortKey)
            raise _invalid(
                "order_by", f"'{words[0][:40]}' is not one of {names}", "INVALID_ORDER_BY"
            ) from None
        if any(t.key is key for t in terms):
            raise _invalid("order_by", f"names {key.value} twice", "INVALID_ORDER_BY")
        terms.append(domain.Order(key, len(words) == 2 and _DIRECTIONS[words[1].lower()]))
    return tuple(terms)


def make_filter(
    *,
    completed: bool | None = None,
    priorities: Iterable[domain.Priority] = (),
    category: str | None = None,
    tags: Iterable[str] = (),
    due_after: dt.datetime | None = None,
    due_before: dt.datetime | None = None,
    overdue: bool | None = None,
    q: str = "",
) -> domain.TaskFilter:
    """Validate and normalise filter values (tags and category as they are stored)."""
    tag_set = sorted({tag.strip().lower() for tag in tags})
    if "" in tag_set or len(tag_set) > FILTER_TAGS_MAX:
        raise _invalid("tag", f"must be 1 to {FILTER_TAGS_MAX} non-empty tags", "INVALID_FILTER")
    if len(q) > Q_MAX:
        raise _invalid("q", f"must be at most {Q_MAX} characters", "INVALID_FILTER")
    return domain.TaskFilter(
        completed=completed,
        priorities=tuple(sorted(set(priorities))),
        category=None if category is None else category.strip(),
        tags=tuple(tag_set),
        due_after=due_after,
        due_before=due_before,
        overdue=overdue,
        q=q,
    )
