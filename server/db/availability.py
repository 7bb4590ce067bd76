"""Whether PostgreSQL answers right now, known without waiting out a pool timeout.

One `Availability` per server process probes the database on a connection
of its own (not a pooled one, so a busy pool never looks like an outage):
every `interval_s` while it answers, every `down_interval_s` while it does
not, and at once when something `suspect()`s it (a pooled connection came
back broken). Probes are shared: however many callers `confirm()` at the
same moment, one probe runs. Each change is logged once and handed to the
`on_change` callbacks (health reports NOT_SERVING while the database is down).

While the database is down, `server.db.connections` refuses calls at once
(UNAVAILABLE, reason DATABASE_UNAVAILABLE) after one shared probe instead
of letting each wait for a pooled connection, so the first call after the
database returns is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable

import psycopg

from server.db import executor

log = logging.getLogger(__name__)
Listener = Callable[[bool], Awaitable[None]]


class Availability:
    """The database's reachability, probed in the background and on demand."""

    def __init__(
        self,
        url: str,
        *,
        interval_s: float = 2.0,
        down_interval_s: float = 0.25,
        timeout_s: float = 1.0,
    ) -> None:
        """Probe the database at `url`.

        Args:
            url: a libpq URI or conninfo string.
            interval_s: seconds between probes while the database answers.
            down_interval_s: seconds between probes while it does not.
            timeout_s: a probe that takes longer counts as a failure.
        """
        self._url = url
        self._interval_s = interval_s
        self._down_interval_s = down_interval_s
        self._timeout_s = timeout_s
        self._available = True
        self._probing: asyncio.Future[bool] | None = None
        self._probe_started = -math.inf
        self._connection: executor.Connection | None = None
        self._listeners: list[Listener] = []
        self._wake = asyncio.Event()

    @property
    def available(self) -> bool:
        """The last probe's answer (True until the first probe says otherwise)."""
        return self._available

    def on_change(self, listener: Listener) -> None:
        """Await `listener(available)` whenever the answer changes."""
        self._listeners.append(listener)

    def suspect(self) -> None:
        """Probe now rather than at the next interval (a connection just broke)."""
        self._wake.set()

    async def confirm(self) -> bool:
        """Probe and return whether the database answers.

        Callers share probes, but never trust a "no" from a probe that began before
        they called (PostgreSQL may have come back meanwhile): they then wait for the
        next one, which all callers that arrived meanwhile share too.
        """
        called = time.monotonic()
        while True:
            if self._probing is None:
                self._probe_started = time.monotonic()
                self._probing = asyncio.ensure_future(self._probe_and_publish())
            started = self._probe_started
            # Shielded: a caller that gives up (its deadline passed) must not cancel the probe.
            answered = await asyncio.shield(self._probing)
            if answered or started >= called:
                return answered

    async def close(self) -> None:
        """Stop a probe in flight and close the probe connection."""
        probing = self._probing
        if probing is not None:
            probing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probing
        await self._close_connection()

    async def run(self) -> None:
        """Probe until cancelled (run as a background task; then `close()`)."""
        while True:
            await self.confirm()
            self._wake.clear()
            interval = self._interval_s if self._available else self._down_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)

    async def _probe_and_publish(self) -> bool:
        try:
            answered = await self._probe()
        finally:
            self._probing = None
        if answered != self._available:
            self._available = answered
            if answered:
                log.info("database answers again")
            else:
                log.warning("database unreachable: calls fail fast until it answers")
            for listener in self._listeners:
                await listener(answered)
        return answered

    async def _probe(self) -> bool:
        """SELECT 1 on the probe connection; if that one had gone stale, once on a fresh one."""
        reused = self._connection is not None
        if await self._select_one():
            return True
        await self._close_connection()
        return reused and await self._select_one()

    async def _select_one(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                if self._connection is None:
                    self._connection = await executor.Connection.connect(
                        self._url,
                        autocommit=True,
                        connect_timeout=max(1, math.ceil(self._timeout_s)),
                    )
                await self._connection.execute("SELECT 1")
            return True
        except (psycopg.Error, OSError, TimeoutError):
            return False

    async def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await connection.close()
