"""The unit of work: one pooled connection, one transaction, the repositories on it.

::

    async with uow:                      # a connection from the pool, in a transaction
        task = await uow.tasks.add(...)
        await uow.commit()
    # leaving rolls back whatever was not committed and returns the connection

    async with uow.autocommit() as repos:  # no transaction: each statement commits alone
        task = await repos.tasks.get(...)   # (reads, and writes that are one statement)

The transaction starts with the first statement (psycopg sends BEGIN then), so a
block that runs no statement costs no round trip, and statements after
`commit()` start a new transaction that is rolled back unless committed again.
Failures to get a connection or to talk to the server raise errors.Unavailable.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

import psycopg

from server.db import executor
from server.repositories import (
    changes,
    idempotency,
    rate_limits,
    sessions,
    task_batches,
    tasks,
    users,
)
from server.services import ports


class ConnectionSource(Protocol):
    """Where connections come from: a psycopg pool, or `server.db.connections.Connections`."""

    async def getconn(self) -> executor.Connection:
        """A connection; errors.Unavailable (or a psycopg error) when none can be had."""
        ...

    async def putconn(self, connection: executor.Connection) -> None:
        """Give the connection back."""
        ...


class UnitOfWork:
    """`ports.UnitOfWork` on a psycopg pool; one instance per use case, not shared."""

    users: ports.UsersRepository
    sessions: ports.SessionsRepository
    tasks: ports.TasksRepository
    changes: ports.ChangesRepository
    batches: ports.TaskBatchesRepository
    idempotency: ports.IdempotencyRepository
    rate_limits: ports.RateLimitsRepository

    def __init__(self, pool: ConnectionSource) -> None:
        self._pool = pool
        self._connection: executor.Connection | None = None

    async def __aenter__(self) -> Self:
        connection = await self._acquire()
        try:
            await connection.set_autocommit(False)  # idle connection: no round trip
        except BaseException:
            await self._release()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection = self._bound()
        try:
            await connection.rollback()  # no round trip if nothing is pending
            await connection.set_autocommit(True)
        except psycopg.Error:
            # The pool rolls back or discards the connection; don't hide the caller's error.
            logging.getLogger(__name__).warning("rollback failed", exc_info=True)
        finally:
            await self._release()

    async def commit(self) -> None:
        """Commit the work done since `async with` (or since the last commit).

        Raises:
            errors.Unavailable: the connection failed; whether it committed is unknown.
        """
        with executor.database_errors():
            await self._bound().commit()

    def autocommit(self) -> Autocommit:
        """A context giving this unit's repositories on an autocommit connection."""
        return Autocommit(self)

    async def _acquire(self) -> executor.Connection:
        if self._connection is not None:
            raise RuntimeError("this unit of work is already in use")
        with executor.database_errors():
            connection = await self._pool.getconn()
        self._connection = connection
        db = executor.Executor(connection)
        self.users = users.PgUsersRepository(db)
        self.sessions = sessions.PgSessionsRepository(db)
        self.tasks = tasks.PgTasksRepository(db)
        self.rate_limits = rate_limits.PgRateLimitsRepository(db)
        self.changes = changes.PgChangesRepository(db)
        self.batches = task_batches.PgTaskBatchesRepository(db)
        self.idempotency = idempotency.PgIdempotencyRepository(db)
        return connection

    async def _release(self) -> None:
        connection = self._bound()
        self._connection = None
        del self.users, self.sessions, self.tasks, self.rate_limits
        del self.changes, self.batches, self.idempotency
        await self._pool.putconn(connection)

    def _bound(self) -> executor.Connection:
        if self._connection is None:
            raise RuntimeError("use `async with uow:` first")
        return self._connection


class Autocommit:
    """`async with uow.autocommit() as repos:`: the repositories without a transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def __aenter__(self) -> UnitOfWork:
        await self._uow._acquire()
        return self._uow

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._uow._release()


if TYPE_CHECKING:  # mypy proves the Protocols are implemented
    _uow: type[ports.UnitOfWork] = UnitOfWork
    _users: type[ports.UsersRepository] = users.PgUsersRepository
    _sessions: type[ports.SessionsRepository] = sessions.PgSessionsRepository
    _tasks: type[ports.TasksRepository] = tasks.PgTasksRepository
    _changes: type[ports.ChangesRepository] = changes.PgChangesRepository
    _batches: type[ports.TaskBatchesRepository] = task_batches.PgTaskBatchesRepository
    _idempotency: type[ports.IdempotencyRepository] = idempotency.PgIdempotencyRepository
    _rate_limits: type[ports.RateLimitsRepository] = rate_limits.PgRateLimitsRepository
