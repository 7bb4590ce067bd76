"""Session revocations in memory, pushed to every server process by PostgreSQL.

Revoking a session (logout, refresh-token reuse) runs `pg_notify
('session_revoked', id)` in the revoking transaction, so PostgreSQL delivers
it to every listener when, and only when, it commits. Each server process
keeps one LISTEN connection and a set of the sessions revoked within the
last access-token lifetime (older ones cannot have a live access token),
so authenticating a call costs no query.

On every (re)connect the listener first LISTENs, then reloads the recent
revocations in full, so a notification lost while disconnected cannot leave
a revoked token usable. Until the listener is ready, and whenever it is
down, `is_active` asks the database instead: slower, never wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

import psycopg

from server.auth.sessions import SessionCheck
from server.db import executor
from server.repositories.sessions import PgSessionsRepository

log = logging.getLogger(__name__)
CHANNEL = "session_revoked"
RECONNECT_DELAY_S = 1.0
PRUNE_EVERY_S = 30.0


class SessionRevocations:
    """`SessionCheck` from an in-memory set kept current by LISTEN/NOTIFY."""

    def __init__(self, url: str, window_s: float, fallback: SessionCheck) -> None:
        self._url = url
        self._window_s = window_s
        self._fallback = fallback
        self._revoked: dict[uuid.UUID, float] = {}
        self._ready = False
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """Whether answers come from memory (the listener is connected and loaded)."""
        return self._ready

    async def is_active(self, session_id: uuid.UUID) -> bool:
        """False if the session was revoked; asks the database while not ready."""
        if not self._ready:
            return await self._fallback.is_active(session_id)
        return session_id not in self._revoked

    def start(self) -> None:
        """Start listening in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="revocations")

    async def stop(self) -> None:
        """Stop listening."""
        self._ready = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as exc:
                if self._ready:
                    log.warning("revocation listener lost (%s); checking the database", exc)
                self._ready = False
                await asyncio.sleep(RECONNECT_DELAY_S)

    async def _listen(self) -> None:
        async with await executor.Connection.connect(self._url, autocommit=True) as connection:
            await connection.execute(f"LISTEN {CHANNEL}")
            recent = await PgSessionsRepository(executor.Executor(connection)).revoked_since(
                self._window_s
            )
            now = time.monotonic()
            self._revoked = dict.fromkeys(recent, now)
            self._ready = True
            log.info("revocation listener ready (%d recent revocations)", len(recent))
            while True:
                async for notify in connection.notifies(timeout=PRUNE_EVERY_S):
                    self._add(notify.payload)
                self._prune()

    def _add(self, payload: str) -> None:
        try:
            self._revoked[uuid.UUID(payload)] = time.monotonic()
        except ValueError:
            log.warning("ignoring malformed %s payload", CHANNEL)

    def _prune(self) -> None:
        horizon = time.monotonic() - self._window_s
        self._revoked = {sid: at for sid, at in self._revoked.items() if at >= horizon}
