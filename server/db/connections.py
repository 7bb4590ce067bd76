"""Pooled connections for units of work: bounded waits, fast failure, no stale connections.

`Connections.getconn()` is what a unit of work calls instead of the pool's:

- while `Availability` says the database is down it fails at once (after one
  shared probe, so the first call after the database returns is served):
  errors.Unavailable, reason DATABASE_UNAVAILABLE;
- when every pooled connection is busy it waits at most `acquire_timeout_s`,
  then fails with errors.Unavailable, reason DATABASE_BUSY (and stops waiting
  early, DATABASE_UNAVAILABLE, if the database goes down meanwhile);
- it never hands out a connection the server has closed. After a restart
  every idle connection is dead, but PostgreSQL told each one so on its way
  down: such a socket is readable while an idle, healthy one never is. One
  `poll()` with no timeout (no round trip) finds them; they are closed and
  the pool replaces them.

`putconn()` gives a connection back; one that broke while in use makes the
availability probe run at once.
"""

from __future__ import annotations

import select
import time
from typing import Protocol

import psycopg
import psycopg_pool

from server import errors
from server.db import executor

DOWN = "database unavailable; retry shortly"
BUSY = "every database connection is busy; retry shortly"
WAIT_SLICE_S = 0.5
"""A caller waiting for a busy pool rechecks availability this often."""


def unavailable() -> errors.Unavailable:
    """The error for calls made while the database is down."""
    return errors.Unavailable(DOWN, reason="DATABASE_UNAVAILABLE")


def closed_by_server(connection: executor.Connection) -> bool:
    """Whether an idle connection was closed by the server (its socket is readable)."""
    if connection.closed:
        return True
    try:
        fd = connection.fileno()
    except psycopg.Error:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


class Pool(Protocol):
    """What is used of `psycopg_pool.AsyncConnectionPool` (see `server.db.pool`)."""

    async def getconn(self, timeout: float | None = None) -> executor.Connection:  # noqa: ASYNC109 (psycopg_pool's signature)
        """A pooled connection, or psycopg_pool.PoolTimeout after `timeout` seconds."""
        ...

    async def putconn(self, conn: executor.Connection) -> None:
        """Give a connection back (a closed one is discarded and replaced)."""
        ...


class Availability(Protocol):
    """What is used of `server.db.availability.Availability`."""

    @property
    def available(self) -> bool:
        """The last probe's answer."""
        ...

    async def confirm(self) -> bool:
        """Probe now (or join the probe in flight)."""
        ...

    def suspect(self) -> None:
        """Probe soon."""
        ...


class Connections:
    """The connection source of the units of work of one server process."""

    def __init__(self, pool: Pool, availability: Availability, acquire_timeout_s: float) -> None:
        self._pool = pool
        self._availability = availability
        self._timeout_s = acquire_timeout_s

    async def getconn(self) -> executor.Connection:
        """A live pooled connection; give it back with `putconn`.

        Raises:
            errors.Unavailable: the database is down (DATABASE_UNAVAILABLE) or no
                connection freed up in time (DATABASE_BUSY).
        """
        if not self._availability.available and not await self._availability.confirm():
            raise unavailable()
        deadline = time.monotonic() + self._timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                connection = await self._pool.getconn(timeout=min(WAIT_SLICE_S, remaining))
            except psycopg_pool.PoolTimeout:
                if not self._availability.available:
                    raise unavailable() from None
                if time.monotonic() >= deadline:
                    raise errors.Unavailable(BUSY, reason="DATABASE_BUSY") from None
                continue
            except psycopg.OperationalError as exc:
                raise unavailable() from exc
            if not closed_by_server(connection):
                return connection
            self._availability.suspect()
            await connection.close()
            await self._pool.putconn(connection)  # discarded and replaced by the pool

    async def putconn(self, connection: executor.Connection) -> None:
        """Give a connection back to the pool."""
        if connection.broken or connection.closed:
            self._availability.suspect()
        await self._pool.putconn(connection)
