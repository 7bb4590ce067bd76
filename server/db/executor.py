"""Statement execution on one psycopg connection, with database failures mapped.

Repositories run every statement through an `Executor`, so a lost connection,
a pool timeout or a server shutting down surfaces as `errors.Unavailable` and
never as a psycopg error carrying SQL text.

Each statement is timed (`todo_db_statement_duration_seconds`) and, when tracing is
on, gets a span, both named after the repository method that ran it (the caller's
`co_qualname`, e.g. `PgTasksRepository.get`): a bounded name, never the SQL or its values.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any, TypeAlias

import psycopg
from psycopg import abc, rows

from server import errors
from server.observability import metrics, tracing

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


def _statement_name() -> str:
    """The repository method that called the Executor method that called this."""
    return sys._getframe(2).f_code.co_qualname


@contextlib.contextmanager
def _observed(name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        with tracing.span("db " + name, {"db.system": "postgresql", "db.operation.name": name}):
            yield
    finally:
        metrics.statement_histogram(name).observe(time.perf_counter() - started)


class Executor:
    """Runs statements on one connection; owned by a unit of work."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def fetch_one(
        self,
        query: abc.QueryNoTemplate,
        params: abc.Params | None = None,
        *,
        prepare: bool | None = None,
    ) -> tuple[Any, ...] | None:
        """Run a statement and return its first row, or None (`prepare`: see fetch_all)."""
        with _observed(_statement_name()), database_errors():
            cursor = await self._connection.execute(query, params, prepare=prepare)
            return await cursor.fetchone()

    async def fetch_all(
        self,
        query: abc.QueryNoTemplate,
        params: abc.Params | None = None,
        *,
        prepare: bool | None = None,
        binary: bool = False,
    ) -> list[tuple[Any, ...]]:
        """Run a statement and return all its rows.

        `prepare=False` never prepares it: PostgreSQL plans it for its values each time. A
        statement psycopg has prepared (after 5 runs on a connection) gets PostgreSQL's generic
        plan after 5 more when that looks cheaper, and for some shapes it is far slower (a `q`
        count: a bitmap of every match, sorted, instead of a walk that stops at the cap).
        `binary=True`: the rows in PostgreSQL's binary format (less to parse per value).
        """
        with _observed(_statement_name()), database_errors():
            cursor = await self._connection.execute(query, params, prepare=prepare, binary=binary)
            return await cursor.fetchall()

    async def execute(self, query: abc.QueryNoTemplate, params: abc.Params | None = None) -> int:
        """Run a statement and return the number of rows it touched."""
        with _observed(_statement_name()), database_errors():
            cursor = await self._connection.execute(query, params)
            return cursor.rowcount
