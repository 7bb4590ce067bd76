"""What the use cases need from storage, as Protocols.

`server.db.unit_of_work.UnitOfWork` implements them on PostgreSQL; the unit
tests implement them with in-memory fakes.
"""

from __future__ import annotations

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

    async def revoke(self, session_id: uuid.UUID) -> None:
        """Revoke a session: its access and refresh tokens stop working."""
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
        self, user_id: uuid.UUID, page_size: int, after: domain.PageCursor | None
    ) -> domain.TaskPage:
        """Up to page_size tasks, newest first (created_at desc, id desc), after the cursor."""
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


class UnitOfWork(Protocol):
    """One use case's access to storage.

    `async with uow:` opens a transaction; `await uow.commit()` commits it and
    leaving the block rolls back whatever was not committed. `uow.read_only()`
    gives the same repositories on an autocommit connection for use cases that
    only read.
    """

    users: UsersRepository
    sessions: SessionsRepository
    tasks: TasksRepository

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

    def read_only(self) -> ReadOnly:
        """A context for single-statement reads, without a transaction."""
        ...


class ReadOnly(Protocol):
    """`async with uow.read_only() as repos:` for reads."""

    async def __aenter__(self) -> UnitOfWork: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
