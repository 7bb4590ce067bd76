"""Task use cases: ownership, limits and transactions; no wire types.

Each function takes a fresh unit of work, the caller and the raw `{user_id}`
and returns domain objects; a broken rule raises an `errors` type.
"""

from __future__ import annotations

import datetime as dt

from server import domain, errors
from server.services import access, validation
from server.services.page_tokens import PageTokens
from server.services.ports import UnitOfWork

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
DEFAULT_REMINDER_WINDOW = dt.timedelta(days=1)
MAX_REMINDER_WINDOW = dt.timedelta(days=366)
MAX_REMINDERS = 1000
"""At most this many reminders are returned, the earliest first."""


async def create_task(
    uow: UnitOfWork, principal: domain.Principal, user_id: str, fields: domain.TaskFields
) -> domain.Task:
    """Add a task for the caller."""
    owner = access.owner_id(principal, user_id)
    fields = validation.task_fields(fields)
    async with uow.autocommit() as writer:  # one atomic statement: no BEGIN/COMMIT trips
        return await writer.tasks.add(owner, fields)


async def get_task(
    uow: UnitOfWork, principal: domain.Principal, user_id: str, task_id: str
) -> domain.Task:
    """One of the caller's tasks."""
    owner = access.owner_id(principal, user_id)
    tid = access.task_id(task_id)
    async with uow.autocommit() as reader:
        task = await reader.tasks.get(owner, tid)
    if task is None:
        raise access.task_not_found()
    return task


async def list_tasks(
    uow: UnitOfWork,
    page_tokens: PageTokens,
    principal: domain.Principal,
    user_id: str,
    query: domain.TaskQuery,
    page_size: int,
    page_token: str,
) -> tuple[domain.TaskPage, str]:
    """A page of the caller's matching tasks and the next page's token ("" at the end)."""
    owner = access.owner_id(principal, user_id)
    size = page_size_or_default(page_size)
    fingerprint = query.fingerprint()
    cursor = page_tokens.decode(owner, fingerprint, page_token) if page_token else None
    async with uow.autocommit() as reader:
        page = await reader.tasks.list_page(owner, query, size, cursor)
    next_token = (
        page_tokens.encode(owner, fingerprint, page.next_cursor) if page.next_cursor else ""
    )
    return page, next_token


async def get_stats(
    uow: UnitOfWork, principal: domain.Principal, user_id: str, task_filter: domain.TaskFilter
) -> domain.TaskStats:
    """Counts over the caller's matching tasks."""
    owner = access.owner_id(principal, user_id)
    async with uow.autocommit() as reader:
        return await reader.tasks.stats(owner, task_filter)


async def list_tags(
    uow: UnitOfWork, principal: domain.Principal, user_id: str
) -> list[tuple[str, int]]:
    """The caller's tags in use, by name, with their task counts."""
    owner = access.owner_id(principal, user_id)
    async with uow.autocommit() as reader:
        return await reader.tasks.tags(owner)


async def list_reminders(
    uow: UnitOfWork, principal: domain.Principal, user_id: str, window: dt.timedelta | None
) -> list[domain.Reminder]:
    """The caller's open tasks to be reminded of within `window` (default 24 h)."""
    owner = access.owner_id(principal, user_id)
    window = DEFAULT_REMINDER_WINDOW if window is None else window
    if not dt.timedelta(0) < window <= MAX_REMINDER_WINDOW:
        raise errors.InvalidArgument(
            errors.FieldViolation("window", "must be more than 0s and at most 366 days"),
            reason="INVALID_WINDOW",
        )
    async with uow.autocommit() as reader:
        return await reader.tasks.reminders(owner, window, MAX_REMINDERS)


def page_size_or_default(page_size: int) -> int:
    """0 means the default, more than the maximum means the maximum, negative is refused."""
    if page_size < 0:
        raise errors.InvalidArgument(
            errors.FieldViolation("page_size", "must not be negative"), reason="INVALID_PAGE_SIZE"
        )
    return min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


async def update_task(
    uow: UnitOfWork,
    principal: domain.Principal,
    user_id: str,
    task_id: str,
    patch: domain.TaskPatch,
    etag: str | None = None,
) -> domain.Task:
    """Change the fields named by the patch (PUT sends them all); refuse a stale etag."""
    owner = access.owner_id(principal, user_id)
    tid = access.task_id(task_id)
    fields = validation.task_fields(patch.fields, patch.present)
    version = version_from_etag(etag)
    async with uow.autocommit() as writer:  # one atomic statement; the lookup only explains
        task = await writer.tasks.update(
            owner, tid, domain.TaskPatch(fields, patch.present), version
        )
        if task is None:
            if version is not None and await writer.tasks.get(owner, tid) is not None:
                raise errors.Aborted(
                    "the task has changed since you read it (stale etag)", reason="ETAG_MISMATCH"
                )
            raise access.task_not_found()
    return task


async def complete_task(
    uow: UnitOfWork, principal: domain.Principal, user_id: str, task_id: str, completed: bool
) -> domain.Task:
    """Complete (or reopen) a task."""
    patch = domain.TaskPatch(
        domain.TaskFields(title="", completed=completed), frozenset({"completed"})
    )
    return await update_task(uow, principal, user_id, task_id, patch)


async def delete_task(
    uow: UnitOfWork, principal: domain.Principal, user_id: str, task_id: str
) -> None:
    """Delete one of the caller's tasks."""
    owner = access.owner_id(principal, user_id)
    tid = access.task_id(task_id)
    async with uow.autocommit() as writer:  # one atomic statement
        if not await writer.tasks.delete(owner, tid):
            raise access.task_not_found()


def version_from_etag(etag: str | None, field: str = "etag") -> int | None:
    """The version an etag stands for (None when absent); InvalidArgument naming `field` if bad."""
    if etag is None:
        return None
    digits = etag[1:]
    if etag.startswith("v") and digits.isascii() and digits.isdigit() and len(digits) <= 9:
        return int(digits)
    raise errors.InvalidArgument(
        errors.FieldViolation(field, "is not an etag returned by this API"), reason="INVALID_ETAG"
    )
