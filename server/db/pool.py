"""The psycopg connection pool of one server process."""

from __future__ import annotations

from typing import TypeAlias

import psycopg_pool

from server.config import Settings
from server.db import executor

Pool: TypeAlias = psycopg_pool.AsyncConnectionPool[executor.Connection]
"""A pool of autocommit connections returning tuple rows."""

ACQUIRE_TIMEOUT_S = 5.0
"""How long a caller waits for a free connection before errors.Unavailable."""

RECONNECT_TIMEOUT_S = 0.5
"""How long the pool retries a connection it failed to open before giving the slot up.

psycopg_pool retries with exponential backoff (1 s, 2 s, 4 s, ...) for 5 minutes
by default, so after an outage of a few seconds a caller could wait seconds for
the next attempt although PostgreSQL was back. Given up quickly, the slot is
opened again on demand, as soon as a caller needs it."""


async def ping(pool: Pool) -> None:
    """Check that a pooled connection answers (the health probe).

    Raises:
        errors.Unavailable: no connection could be had, or it failed.
    """
    with executor.database_errors():
        async with pool.connection() as connection:
            await connection.execute("SELECT 1")


async def _reset(connection: executor.Connection) -> None:
    """Put a returned connection back in autocommit mode (no round trip)."""
    if not connection.autocommit:
        await connection.set_autocommit(True)


def make_pool(url: str, settings: Settings, *, timeout: float = ACQUIRE_TIMEOUT_S) -> Pool:
    """Build (but do not open) the pool; `await pool.open()` in the process that uses it.

    Connections are in autocommit mode: single-statement reads need no
    transaction, and the unit of work opens one for writes.

    Args:
        url: a libpq URI or conninfo string (see `server.db.database`).
        settings: supplies `db_pool_min` and `db_pool_max`.
        timeout: seconds to wait for a connection before psycopg_pool.PoolTimeout.

    Returns:
        A closed pool; open it with `await pool.open(wait=True)` and close it on shutdown.
    """
    return psycopg_pool.AsyncConnectionPool(
        url,
        connection_class=executor.Connection,
        kwargs={"autocommit": True},
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        open=False,
        reset=_reset,
        timeout=timeout,
        reconnect_timeout=RECONNECT_TIMEOUT_S,
        name="todo",
    )
