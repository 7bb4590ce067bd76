"""One LISTEN connection per server process, shared by everything that listens.

Subscribers register a channel and a callback before `start()`. On every
(re)connect the listener LISTENs on every channel first and only then runs
the `on_connect` hooks (a subscriber reloads or re-reads what it may have
missed), so no notification can fall between the two. While disconnected
`connected` is False and the listener retries every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import psycopg
from psycopg import sql

from server.db import executor

log = logging.getLogger(__name__)
RECONNECT_DELAY_S = 1.0
TICK_S = 30.0
"""`on_tick` hooks run at least this often (for housekeeping such as pruning)."""

Callback = Callable[[str], None]
Hook = Callable[[executor.Connection], Awaitable[None]]


class NotificationListener:
    """Dispatches PostgreSQL notifications to in-process callbacks."""

    def __init__(self, url: str) -> None:
        self._url = url
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
            for hook in self._on_connect:
                await hook(connection)
            self.connected = True
            while True:
                async for notify in connection.notifies(timeout=TICK_S):
                    callback = self._callbacks.get(notify.channel)
                    if callback is not None:
                        callback(notify.payload)
                for tick in self._on_tick:
                    tick()
