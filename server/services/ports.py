"""What the use cases need from storage, as Protocols.

`server.adapters.unit_of_work.UnitOfWork` implements them on PostgreSQL; the unit
tests implement them with in-memory fakes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from types import TracebackType
from typing import Protocol, Self

from server import domain


class UsersRepository(Protocol):
    """Accounts."""

    async def add(self, email: str, password_hash: str, name: str) -> domain.User:
        """Insert a user; raises errors.AlreadyExists if the email is taken."""
        ...

    async def get(self, user_id: uuid.UUID) -> domain.User | None:
        """The user with this id, or None."""
        ...

    async def get_credentials(self, email: str) -> domain.Credentials | None:
        """The user with this (lowercased) email and their password hash, or None."""
        ...

    async def get_password_hash(self, user_id: uuid.UUID) -> str | None:
        """The stored password hash of this user, or None if there is no such user."""
        ...

    async def update(self, user_id: uuid.UUID, patch: domain.UserPatch) -> domain.User | None:
        """Change the fields the patch sets; None if there is no such user.

        Raises errors.AlreadyExists if the new email belongs to another account.
        """
        ...

    async def set_password(
        self, user_id: uuid.UUID, expected_hash: str, new_hash: str
    ) -> domain.User | None:
        """Replace the password hash if it is still `expected_hash`; None otherwise."""
        ...

    async def delete(self, user_id: uuid.UUID) -> bool:
        """Delete the user and their tasks; False if there is no such user."""
        ...


class SessionsRepository(Protocol):
    """Login sessions: one per login, the family of its refresh tokens."""

    async def add(
        self, session_id: uuid.UUID, user_id: uuid.UUID, refresh_jti: str, expires_at: dt.datetime
    ) -> None:
        """Record a new session whose current refresh token is `refresh_jti`."""
        ...

    async def rotate(self, session_id: uuid.UUID, old_jti: str, new_jti: str) -> bool:
        """Swap the current refresh token if it is `old_jti` and the session is live.

        Returns False (and changes nothing) otherwise.
        """
        ...

    async def revoke(self, session_id: uuid.UUID) -> bool:
        """Revoke a session: its access and refresh tokens stop working.

        Returns whether it was live (False: unknown or revoked already).
        """
        ...

    async def revoke_all(self, user_id: uuid.UUID, keep: uuid.UUID | None = None) -> int:
        """Revoke every live session of the user except `keep`; returns how many."""
        ...

    async def is_active(self, session_id: uuid.UUID) -> bool:
        """Whether the session exists, is not revoked and has not expired."""
        ...

    async def revoked_since(self, seconds: float) -> list[uuid.UUID]:
        """The sessions revoked in the last `seconds`."""
        ...


class TasksRepository(Protocol):
    """Tasks; every query is filtered by owner and id together."""

    async def add(self, user_id: uuid.UUID, fields: domain.TaskFields) -> domain.Task:
        """Insert a task and return it as stored."""
        ...

    async def get(self, user_id: uuid.UUID, task_id: uuid.UUID) -> domain.Task | None:
        """The user's task with this id, or None."""
        ...

    async def list_page(
        self,
        user_id: uuid.UUID,
        query: domain.TaskQuery,
        page_size: int,
        after: domain.PageCursor | None,
        *,
        count: bool = True,
    ) -> domain.TaskPage:
        """Up to page_size matching tasks in the query's order, after the cursor.

        Without a cursor (and unless `count` is False), also counts the matches;
        later pages reuse the cursor's count.
        """
        ...

    async def stream_chunk(
        self,
        user_id: uuid.UUID,
        query: domain.TaskQuery,
        size: int,
        after: domain.PageCursor | None,
        form: domain.WireForm,
    ) -> domain.TaskChunk:
        """Up to `size` matching tasks in the query's order, after the cursor, in `form`."""
        ...

    async def stats(self, user_id: uuid.UUID, task_filter: domain.TaskFilter) -> domain.TaskStats:
        """Counts over the user's tasks that match the filter."""
        ...

    async def tags(self, user_id: uuid.UUID) -> list[tuple[str, int]]:
        """Every tag the user's tasks carry, by name, with how many carry it."""
        ...

    async def reminders(
        self, user_id: uuid.UUID, window: dt.timedelta, limit: int
    ) -> list[domain.Reminder]:
        """Open tasks whose remind_at is in [now, now + window), earliest first."""
        ...

    async def update(
        self,
        user_id: uuid.UUID,
        task_id: uuid.UUID,
        patch: domain.TaskPatch,
        expected_version: int | None,
    ) -> domain.Task | None:
        """Change the present fields; None if no such task or the version differs.

        `completed_at` follows `completed`: set to now when it becomes true,
        cleared when it becomes false. `version` grows by one.
        """
        ...

    async def delete(self, user_id: uuid.UUID, task_id: uuid.UUID) -> bool:
        """Delete the task; False if the user has no such task."""
        ...


class RateLimitsRepository(Protocol):
    """Throttle buckets shared by every server process (see repositories/rate_limits.py)."""

    async def hit(self, key: str, limit: int, period_s: float) -> float:
        """Count a hit on `key` if it allows `limit` per `period_s`.

        Returns 0.0 if allowed (and counted), else the seconds until it allows another.
        """
        ...

    async def prune(self) -> int:
        """Forget buckets that have drained; returns how many."""
        ...


class ChangesRepository(Protocol):
    """The task change outbox (written by the task writes themselves)."""

    async def read(self, user_id: uuid.UUID, after_seq: int, limit: int) -> list[domain.TaskChange]:
        """The user's changes after `after_seq`, oldest first, at most `limit`."""
        ...

    async def bounds(self, user_id: uuid.UUID) -> tuple[int, int | None] | None:
        """(latest seq, oldest retained seq or None); None if the user does not exist."""
        ...

    async def prune(self, older_than_s: float) -> int:
        """Delete changes older than `older_than_s` seconds; returns how many."""
        ...


class TaskBatchesRepository(Protocol):
    """Batch writes; each returns only what it wrote, in request order."""

    async def add_many(
        self, user_id: uuid.UUID, items: list[domain.TaskFields]
    ) -> list[domain.Task]:
        """Insert every task."""
        ...

    async def update_many(
        self, user_id: uuid.UUID, items: list[domain.TaskUpdate]
    ) -> list[domain.Task]:
        """Apply each patch; missing tasks and stale versions are left out."""
        ...

    async def set_completed_many(
        self, user_id: uuid.UUID, ids: list[uuid.UUID], completed: bool
    ) -> list[domain.Task]:
        """Complete or reopen the user's tasks among `ids`."""
        ...

    async def delete_many(self, user_id: uuid.UUID, ids: list[uuid.UUID]) -> int:
        """Delete the user's tasks among `ids`; returns how many."""
        ...

    async def versions(self, user_id: uuid.UUID, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        """The current version of each of the user's tasks among `ids`."""
        ...


class IdempotencyRepository(Protocol):
    """First answers of batch calls, by (user, route, request_id)."""

    async def claim(
        self, user_id: uuid.UUID, route: str, request_id: str, request_hash: bytes
    ) -> tuple[bytes, list[domain.Task]] | None:
        """Claim the key; None if new, else (the first request's hash, its answer)."""
        ...

    async def complete(
        self, user_id: uuid.UUID, route: str, request_id: str, answer: list[domain.Task]
    ) -> None:
        """Store the answer of a claimed key."""
        ...

    async def prune(self, older_than_s: float) -> int:
        """Forget keys older than `older_than_s` seconds."""
        ...


class Subscription(Protocol):
    """A watch stream's doorbell (see server/adapters/change_feed.py)."""

    closed: bool

    def reset(self) -> None:
        """Forget earlier rings; called before reading the outbox."""
        ...

    async def wait(self, timeout_s: float) -> bool:
        """Wait for a ring; False on timeout."""
        ...


class ChangeFeed(Protocol):
    """Tells watch streams when their user's changes commit, in any server process."""

    def subscribe(self, user_id: uuid.UUID) -> contextlib.AbstractContextManager[Subscription]:
        """A subscription for the duration of the block."""
        ...


class UnitOfWork(Protocol):
    """One use case's access to storage.

    `async with uow:` opens a transaction; `await uow.commit()` commits it and
    leaving the block rolls back whatever was not committed. `uow.autocommit()`
    gives the same repositories on an autocommit connection, for use cases
    whose every statement stands alone: reads, and writes made of one
    statement (atomic by itself), which then cost one round trip instead of
    three (BEGIN, statement, COMMIT).
    """

    users: UsersRepository
    sessions: SessionsRepository
    tasks: TasksRepository
    rate_limits: RateLimitsRepository
    changes: ChangesRepository
    batches: TaskBatchesRepository
    idempotency: IdempotencyRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None:
        """Commit the transaction opened by `async with`."""
        ...

    def autocommit(self) -> Autocommit:
        """A context without an explicit transaction: each statement commits alone."""
        ...


class Autocommit(Protocol):
    """`async with uow.autocommit() as repos:`: each statement is its own transaction."""

    async def __aenter__(self) -> UnitOfWork: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
