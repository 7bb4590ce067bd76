"""Batch use cases: 1 to 500 items, all or nothing, optionally idempotent.

Every item is validated before any work, and every bad item is named
(`tasks[3].title`). The batch runs in one transaction: if any task is
missing, foreign or has a stale etag, nothing is written. With a
`request_id`, the first answer is stored in the same transaction and
replayed for a repeat with the same body; a different body is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from server import domain, errors, fingerprints
from server.services import access, validation
from server.services.ports import UnitOfWork
from server.services.tasks import version_from_etag

MAX_ITEMS = 500
REQUEST_ID_MAX = 100


async def batch_create(
    uow: UnitOfWork,
    principal: domain.Principal,
    user_id: str,
    items: Sequence[domain.TaskFields],
    request_id: str,
) -> list[domain.Task]:
    """Create every task, or none."""
    owner = access.owner_id(principal, user_id)
    _check_size(items, "tasks")
    valid = _validated(items, [None] * len(items))
    key = _request_key(request_id, "batchCreate", valid)
    async with uow:
        if (replay := await _replay(uow, owner, key)) is not None:
            return replay
        written = await uow.batches.add_many(owner, valid)
        return await _finish(uow, owner, key, written)


async def batch_update(
    uow: UnitOfWork,
    principal: domain.Principal,
    user_id: str,
    items: Sequence[tuple[str, domain.TaskPatch, str | None]],
    request_id: str,
) -> list[domain.Task]:
    """Patch every task, or none; items are (task id, patch, etag or None)."""
    owner = access.owner_id(principal, user_id)
    _check_size(items, "tasks")
    ids = _distinct_ids([task_id for task_id, _, _ in items], "tasks", ".id")
    versions = [version_from_etag(etag, f"tasks[{i}].etag") for i, (_, _, etag) in enumerate(items)]
    fields = _validated([patch.fields for _, patch, _ in items], [p.present for _, p, _ in items])
    updates = [
        domain.TaskUpdate(task_id, domain.TaskPatch(f, patch.present), version)
        for task_id, f, (_, patch, _), version in zip(ids, fields, items, versions, strict=True)
    ]
    key = _request_key(request_id, "batchUpdate", updates)
    async with uow:
        if (replay := await _replay(uow, owner, key)) is not None:
            return replay
        written = await uow.batches.update_many(owner, updates)
        if len(written) < len(updates):
            current = await uow.batches.versions(owner, ids)
            if len(current) < len(ids):
                raise access.task_not_found()
            raise errors.Aborted(
                "a task has changed since you read it (stale etag); nothing was written",
                reason="ETAG_MISMATCH",
            )
        return await _finish(uow, owner, key, written)


async def batch_complete(
    uow: UnitOfWork,
    principal: domain.Principal,
    user_id: str,
    task_ids: Sequence[str],
    completed: bool,
    request_id: str,
) -> list[domain.Task]:
    """Complete (or reopen) every task, or none."""
    owner = access.owner_id(principal, user_id)
    _check_size(task_ids, "task_ids")
    ids = _distinct_ids(task_ids, "task_ids", "")
    key = _request_key(request_id, "batchComplete", (ids, completed))
    async with uow:
        if (replay := await _replay(uow, owner, key)) is not None:
            return replay
        written = await uow.batches.set_completed_many(owner, ids, completed)
        if len(written) < len(ids):
            raise access.task_not_found()
        return await _finish(uow, owner, key, written)


async def batch_delete(
    uow: UnitOfWork,
    principal: domain.Principal,
    user_id: str,
    task_ids: Sequence[str],
    request_id: str,
) -> None:
    """Delete every task, or none."""
    owner = access.owner_id(principal, user_id)
    _check_size(task_ids, "task_ids")
    ids = _distinct_ids(task_ids, "task_ids", "")
    key = _request_key(request_id, "batchDelete", ids)
    async with uow:
        if await _replay(uow, owner, key) is not None:
            return
        if await uow.batches.delete_many(owner, ids) < len(ids):
            raise access.task_not_found()
        await _finish(uow, owner, key, [])


_Key = tuple[str, str, bytes] | None
"""(route, request_id, hash of the request) when the call is idempotent."""


def _request_key(request_id: str, route: str, body: object) -> _Key:
    if not request_id:
        return None
    if len(request_id) > REQUEST_ID_MAX or not request_id.isprintable():
        raise errors.InvalidArgument(
            errors.FieldViolation(
                "request_id", f"must be 1 to {REQUEST_ID_MAX} printable characters"
            ),
            reason="INVALID_REQUEST_ID",
        )
    return route, request_id, fingerprints.digest(body)


async def _replay(uow: UnitOfWork, owner: uuid.UUID, key: _Key) -> list[domain.Task] | None:
    if key is None:
        return None
    route, request_id, digest = key
    claimed = await uow.idempotency.claim(owner, route, request_id, digest)
    if claimed is None:
        return None
    first_hash, answer = claimed
    if first_hash != digest:
        raise errors.InvalidArgument(
            errors.FieldViolation("request_id", "was already used for a different request"),
            reason="REQUEST_ID_REUSED",
        )
    return answer


async def _finish(
    uow: UnitOfWork, owner: uuid.UUID, key: _Key, written: list[domain.Task]
) -> list[domain.Task]:
    if key is not None:
        await uow.idempotency.complete(owner, key[0], key[1], written)
    await uow.commit()
    return written


def _check_size(items: Sequence[object], field: str) -> None:
    if not 1 <= len(items) <= MAX_ITEMS:
        raise errors.InvalidArgument(
            errors.FieldViolation(field, f"must hold 1 to {MAX_ITEMS} items, not {len(items)}"),
            reason="INVALID_BATCH_SIZE",
        )


def _distinct_ids(raw: Sequence[str], field: str, suffix: str) -> list[uuid.UUID]:
    ids = [access.task_id(value) for value in raw]
    seen: set[uuid.UUID] = set()
    for i, task_id in enumerate(ids):
        if task_id in seen:
            raise errors.InvalidArgument(
                errors.FieldViolation(f"{field}[{i}]{suffix}", "names a task already in the batch"),
                reason="DUPLICATE_TASK_ID",
            )
        seen.add(task_id)
    return ids


def _validated(
    items: Sequence[domain.TaskFields], present: Sequence[frozenset[str] | None]
) -> list[domain.TaskFields]:
    valid, bad = [], []
    for i, (fields, names) in enumerate(zip(items, present, strict=True)):
        try:
            valid.append(validation.task_fields(fields, names, prefix=f"tasks[{i}]."))
        except errors.InvalidArgument as exc:
            bad.extend(exc.violations)
    if bad:
        raise errors.InvalidArgument(bad, reason="INVALID_TASK")
    return valid
