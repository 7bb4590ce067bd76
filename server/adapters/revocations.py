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

import logging
import time
import uuid

from server.auth.sessions import SessionCheck
from server.db import executor
from server.db.listener import NotificationListener
from server.observability import metrics
from server.repositories.sessions import PgSessionsRepository

log = logging.getLogger(__name__)
CHANNEL = "session_revoked"


class SessionRevocations:
    """`SessionCheck` from an in-memory set kept current by LISTEN/NOTIFY."""

    def __init__(
        self, listener: NotificationListener, window_s: float, fallback: SessionCheck
    ) -> None:
        self._window_s = window_s
        self._fallback = fallback
        self._revoked: dict[uuid.UUID, float] = {}
        self._ready = False
        listener.subscribe(
            CHANNEL,
            self._add,
            on_connect=self._reload,
            on_disconnect=self._lost,
            on_tick=self._prune,
        )

    @property
    def size(self) -> int:
        """How many recently revoked sessions are held in memory."""
        return len(self._revoked)

    @property
    def ready(self) -> bool:
        """Whether answers come from memory (the listener is connected and loaded)."""
        return self._ready

    async def is_active(self, session_id: uuid.UUID) -> bool:
        """False if the session was revoked; asks the database while not ready."""
        if not self._ready:
            return await self._fallback.is_active(session_id)
        return session_id not in self._revoked

    async def _reload(self, connection: executor.Connection) -> None:
        recent = await PgSessionsRepository(executor.Executor(connection)).revoked_since(
            self._window_s
        )
        now = time.monotonic()
        self._revoked = dict.fromkeys(recent, now)
        self._ready = True
        metrics.REVOCATION_RELOADS.inc()
        log.info("revocations loaded (%d recent)", len(recent))

    def _lost(self) -> None:
        self._ready = False
        log.warning("revocation feed lost; checking sessions in the database until it is back")

    def revoked_here(self, session_id: uuid.UUID) -> None:
        """Take a revocation this process just committed, without waiting for its NOTIFY."""
        self._revoked[session_id] = time.monotonic()

    def _add(self, payload: str) -> None:
        try:
            self._revoked[uuid.UUID(payload)] = time.monotonic()
        except ValueError:
            log.warning("ignoring malformed %s payload", CHANNEL)

    def _prune(self) -> None:
        horizon = time.monotonic() - self._window_s
        self._revoked = {sid: at for sid, at in self._revoked.items() if at >= horizon}
