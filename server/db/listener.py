"""One LISTEN connection per server process, shared by everything that listens.

Subscribers register a channel and a callback before `start()`. On every
(re)connect the listener LISTENs on every channel first and only then runs
the `on_connect` hooks (a subscriber reloads or re-reads what it may have
missed), so no notification can fall between the two. While disconnected
`connected` is False and the listener retries every second.

Once listening, the connection carries `application_name` = `name` (prefix
`LISTENER_PREFIX`), so `pg_stat_activity` lists the listeners of every
process on every host; a callback can `send()` a notification of its own
(an acknowledgement) on the listener's connection once it has returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

import psycopg
from psycopg import sql

from server.db import executor

log = logging.getLogger(__name__)
RECONNECT_DELAY_S = 1.0
TICK_S = 30.0
"""`on_tick` hooks run at least this often (for housekeeping such as pruning)."""
LISTENER_PREFIX = "todo-listener "
"""Start of every ready listener connection's `application_name`."""
SEND = "SELECT pg_notify(%s, %s)"
SET_NAME = "SELECT set_config('application_name', %s, false)"
READY_LISTENERS = """
SELECT application_name FROM pg_stat_activity
WHERE datname = current_database() AND starts_with(application_name, %s)
"""

Callback = Callable[[str], None]
Hook = Callable[[executor.Connection], Awaitable[None]]


class NotificationListener:
    """Dispatches PostgreSQL notifications to in-process callbacks."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.name = LISTENER_PREFIX + uuid.uuid4().hex
        """This process's listener identity (its connection's `application_name`)."""
        self._outbox: list[tuple[str, str]] = []
        self._callbacks: dict[str, Callback] = {}
        self._on_connect: list[Hook] = []
        self._on_disconnect: list[Callable[[], None]] = []
        self._on_tick: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.connected = False

    def subscribe(
        self,
        channel: str,
        callback: Callback,
        *,
        on_connect: Hook | None = None,
        on_disconnect: Callable[[], None] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        """Call `callback(payload)` for each notification on `channel` (before start())."""
        self._callbacks[channel] = callback
        if on_connect is not None:
            self._on_connect.append(on_connect)
        if on_disconnect is not None:
            self._on_disconnect.append(on_disconnect)
        if on_tick is not None:
            self._on_tick.append(on_tick)

    def send(self, channel: str, payload: str) -> None:
        """Queue `pg_notify(channel, payload)` on the listener connection (sent right away).

        Dropped if the connection is lost first: a reconnecting listener is not
        listed as ready, so nobody waits for what it would have sent.
        """
        self._outbox.append((channel, payload))

    def start(self) -> None:
        """Connect and listen in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="listener")

    async def stop(self) -> None:
        """Stop listening (quietly: subscribers are going away too)."""
        self.connected = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as exc:
                if self.connected:
                    log.warning("notification listener lost: %s; reconnecting", exc)
                self._set_disconnected()
                await asyncio.sleep(RECONNECT_DELAY_S)

    def _set_disconnected(self) -> None:
        was = self.connected
        self.connected = False
        if was:
            for hook in self._on_disconnect:
                hook()

    async def _listen(self) -> None:
        async with await executor.Connection.connect(self._url, autocommit=True) as connection:
            for channel in self._callbacks:
                await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            # Listed (for revocation barriers) once listening and before the hooks
            # reload: whatever commits before a barrier lists this listener is then
            # either notified to it or found by its reload.
            await connection.execute(SET_NAME, (self.name,))
            self._outbox.clear()
            for hook in self._on_connect:
                await hook(connection)
            self.connected = True
            next_tick = time.monotonic() + TICK_S
            while True:
                # One batch at a time (a transaction's notifications arrive together and
                # stay whole): notifies() holds the connection until it returns, and the
                # acknowledgements callbacks queued go out right after their batch.
                wait_s = max(0.0, next_tick - time.monotonic())
                async for notify in connection.notifies(timeout=wait_s, stop_after=1):
                    callback = self._callbacks.get(notify.channel)
                    if callback is not None:
                        callback(notify.payload)
                await self._flush(connection)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + TICK_S
                    for tick in self._on_tick:
                        tick()

    async def _flush(self, connection: executor.Connection) -> None:
        """Send the queued notifications (those received meanwhile wait in psycopg's backlog)."""
        while self._outbox:
            channel, payload = self._outbox.pop(0)
            await connection.execute(SEND, (channel, payload))


async def ready_listeners(connection: executor.Connection) -> list[str]:
    """The names of the listeners on this database (listening), from every process and host."""
    cursor = await connection.execute(READY_LISTENERS, (LISTENER_PREFIX,))
    return [row[0] for row in await cursor.fetchall()]
