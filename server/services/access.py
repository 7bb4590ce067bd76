"""Who may touch what: resolving `{user_id}` and task ids for the caller."""

from __future__ import annotations

import uuid

from server import domain, errors

ME = "me"


def owner_id(principal: domain.Principal, user_id: str) -> uuid.UUID:
    """The caller's id if `user_id` names the caller (`me` or their id).

    Raises PermissionDenied for any other value, existing user or not, before
    any database work.
    """
    if user_id == ME:
        return principal.user_id
    try:
        if uuid.UUID(user_id) == principal.user_id:
            return principal.user_id
    except ValueError:
        pass
    raise errors.PermissionDenied(
        "you may only access your own data (use 'me' as the user id)",
        reason="NOT_RESOURCE_OWNER",
    )


def task_id(raw: str) -> uuid.UUID:
    """Parse a task id; an id that cannot exist is NOT_FOUND, like a missing one."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise task_not_found() from None


def task_not_found() -> errors.NotFound:
    """The error for a task that is missing or not the caller's."""
    return errors.NotFound("task not found", reason="TASK_NOT_FOUND")
