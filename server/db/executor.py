"""Statement execution on one psycopg connection, with database failures mapped.

Repositories run every statement through an `Executor`, so a lost connection,
a pool timeout or a server shutting down surfaces as `errors.Unavailable` and
never as a psycopg error carrying SQL text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, TypeAlias

import psycopg
from psycopg import abc, rows

from server import errors

Connection: TypeAlias = psycopg.AsyncConnection[rows.TupleRow]
"""The connection type of the pool: autocommit by default, rows as tuples."""

UNAVAILABLE_MESSAGE = "database unavailable"


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """Turn psycopg's operational errors (pool timeouts included) into domain errors.

    Raises:
        errors.Aborted: a deadlock or serialization failure; the transaction is lost.
        errors.Unavailable: the connection or the server failed.
    """
    try:
        yield
    except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
        raise errors.Aborted(
            "the request conflicted with a concurrent change; retry it", reason="CONFLICT"
        ) from exc
    except psycopg.OperationalError as exc:
        raise errors.Unavailable(UNAVAILABLE_MESSAGE, reason="DATABASE_UNAVAILABLE") from exc


class Executor:
    """Runs statements on one connection; owned by a unit of work."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def fetch_one(
        self, query: abc.QueryNoTemplate, params: abc.Params | None = None
    ) -> tuple[Any, ...] | None:
        """Run a statement and return its first row, or None."""
        with database_errors():
            cursor = await self._connection.execute(query, params)
            return await cursor.fetchone()

    async def fetch_all(
        self, query: abc.QueryNoTemplate, params: abc.Params | None = None
    ) -> list[tuple[Any, ...]]:
        """Run a statement and return all its rows."""
        with database_errors():
            cursor = await self._connection.execute(query, params)
            return await cursor.fetchall()

    async def execute(self, query: abc.QueryNoTemplate, params: abc.Params | None = None) -> int:
        """Run a statement and return the number of rows it touched."""
        with database_errors():
            cursor = await self._connection.execute(query, params)
            return cursor.rowcount
