"""Input rules for tasks and accounts; each returns the normalised value.

Lengths count Unicode code points. Titles, names, categories and tags are
trimmed; tags are lowercased, de-duplicated (before the limit is counted) and
sorted; emails are lowercased. Time zones are IANA names known to `zoneinfo`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import zoneinfo
from collections.abc import Iterable

from server import domain, errors

TITLE_MAX = 200
DESCRIPTION_MAX = 10_000
CATEGORY_MAX = 50
TAG_MAX = 50
TAGS_MAX = 20
NAME_MAX = 100
EMAIL_MAX = 254
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

Violations = list[errors.FieldViolation]


_PRIORITY_UNSPECIFIED = 0
"""The API's "no priority given" (`todo.v1.PRIORITY_UNSPECIFIED`)."""


def priority(value: int) -> domain.Priority:
    """A proto Priority as the domain's; unspecified means MEDIUM."""
    if value == _PRIORITY_UNSPECIFIED:
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


def filter_priorities(values: Iterable[int]) -> list[domain.Priority]:
    """Priorities named in a filter; PRIORITY_UNSPECIFIED or an unknown number is refused."""
    try:
        return [domain.Priority(v) for v in values]
    except ValueError:
        raise errors.InvalidArgument(
            errors.FieldViolation("priority", "must name PRIORITY_LOW, _MEDIUM, _HIGH or _URGENT"),
            reason="INVALID_FILTER",
        ) from None


def update_mask(names: set[str]) -> frozenset[str]:
    """The task fields an update mask names (snake_case); InvalidArgument if none or unknown."""
    unknown = sorted(names - domain.TASK_FIELDS)
    if unknown or not names:
        rule = f"names unknown fields: {', '.join(unknown)}" if unknown else "must name a field"
        raise errors.InvalidArgument(
            errors.FieldViolation("update_mask", rule), reason="INVALID_UPDATE_MASK"
        )
    return frozenset(names)


def _check(ok: bool, field: str, rule: str, out: Violations) -> None:
    if not ok:
        out.append(errors.FieldViolation(field, rule))


def task_fields(
    fields: domain.TaskFields, present: Iterable[str] | None = None, *, prefix: str = ""
) -> domain.TaskFields:
    """Validate and normalise the task fields named in `present` (all when None).

    Raises InvalidArgument (reason INVALID_TASK) naming every bad field.
    """
    names = domain.TASK_FIELDS if present is None else frozenset(present)
    bad: Violations = []
    title = fields.title.strip()
    if "title" in names:
        _check(title != "", prefix + "title", "must not be empty", bad)
        _check(
            len(title) <= TITLE_MAX,
            prefix + "title",
            f"must be at most {TITLE_MAX} characters",
            bad,
        )
    if "description" in names:
        _check(
            len(fields.description) <= DESCRIPTION_MAX,
            prefix + "description",
            f"must be at most {DESCRIPTION_MAX} characters",
            bad,
        )
    category = fields.category.strip()
    if "category" in names:
        _check(
            len(category) <= CATEGORY_MAX,
            prefix + "category",
            f"must be at most {CATEGORY_MAX} characters",
            bad,
        )
    tags = _tags(fields.tags, prefix + "tags", bad) if "tags" in names else fields.tags
    if bad:
        raise errors.InvalidArgument(bad, reason="INVALID_TASK")
    return dataclasses.replace(fields, title=title, category=category, tags=tags)


def _tags(raw: Iterable[str], field: str, bad: Violations) -> tuple[str, ...]:
    tags = sorted({tag.strip().lower() for tag in raw})
    if any(tag == "" for tag in tags):
        bad.append(errors.FieldViolation(field, "must not contain empty tags"))
    if any(len(tag) > TAG_MAX for tag in tags):
        bad.append(errors.FieldViolation(field, f"each tag must be at most {TAG_MAX} characters"))
    if len(tags) > TAGS_MAX:
        bad.append(errors.FieldViolation(field, f"must hold at most {TAGS_MAX} distinct tags"))
    return tuple(tags)


def email(raw: str, bad: Violations) -> str:
    """Lowercase and check an email address, adding a violation if it is invalid."""
    value = domain.normalize_email(raw)
    if not value:
        bad.append(errors.FieldViolation("email", "must not be empty"))
    elif len(value) > EMAIL_MAX or not _EMAIL.match(value):
        bad.append(errors.FieldViolation("email", "must be a valid email address"))
    return value


def name(raw: str, bad: Violations) -> str:
    """Trim and check a display name, adding a violation if it is invalid."""
    value = raw.strip()
    if not value:
        bad.append(errors.FieldViolation("name", "must not be empty"))
    elif len(value) > NAME_MAX:
        bad.append(errors.FieldViolation("name", f"must be at most {NAME_MAX} characters"))
    return value


def timezone(raw: str, bad: Violations) -> str:
    """Check an IANA time zone name (`Europe/Paris`, `UTC`), adding a violation if unknown."""
    value = raw.strip()
    if value not in _timezones():
        bad.append(
            errors.FieldViolation("timezone", "must be an IANA time zone name like Europe/Paris")
        )
    return value


@functools.cache
def _timezones() -> frozenset[str]:
    """The IANA names zoneinfo can load, without the host's aliases for its own zone."""
    return frozenset(zoneinfo.available_timezones() - {"localtime", "posixrules", "Factory"})
