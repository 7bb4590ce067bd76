"""Login sessions in the `sessions` table: one row per login, its current refresh token."""

from __future__ import annotations

import datetime as dt
import uuid

from server.db import executor

INSERT = """
INSERT INTO sessions (id, user_id, refresh_jti, expires_at) VALUES (%s, %s, %s, %s)
"""

ROTATE = """
UPDATE sessions SET refresh_jti = %s
WHERE id = %s AND refresh_jti = %s AND revoked_at IS NULL AND expires_at > now()
"""

REVOKE = """
WITH revoked AS (
    UPDATE sessions SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL RETURNING id
)
SELECT pg_notify('session_revoked', id::text) FROM revoked
"""
"""Revokes and tells every server process (LISTEN session_revoked) once committed."""

REVOKE_ALL = """
WITH revoked AS (
    UPDATE sessions SET revoked_at = now()
    WHERE user_id = %s AND revoked_at IS NULL AND id IS DISTINCT FROM %s
    RETURNING id
)
SELECT pg_notify('session_revoked', id::text) FROM revoked
"""
"""Revokes every live session of a user but one (or none), one notification each."""

RECENTLY_REVOKED = """
SELECT id FROM sessions
WHERE revoked_at IS NOT NULL AND revoked_at > now() - make_interval(secs => %s)
"""

IS_ACTIVE = "SELECT 1 FROM sessions WHERE id = %s AND revoked_at IS NULL AND expires_at > now()"


class PgSessionsRepository:
    """`ports.SessionsRepository` on PostgreSQL."""

    def __init__(self, db: executor.Executor) -> None:
        self._db = db

    async def add(
        self, session_id: uuid.UUID, user_id: uuid.UUID, refresh_jti: str, expires_at: dt.datetime
    ) -> None:
        """Record a new session whose current refresh token is `refresh_jti`."""
        await self._db.execute(INSERT, (session_id, user_id, refresh_jti, expires_at))

    async def rotate(self, session_id: uuid.UUID, old_jti: str, new_jti: str) -> bool:
        """Swap the refresh token if it is `old_jti` and the session is live; False otherwise."""
        return await self._db.execute(ROTATE, (new_jti, session_id, old_jti)) == 1

    async def revoke(self, session_id: uuid.UUID) -> bool:
        """Revoke the session; False (and a no-op) if it is unknown or revoked already."""
        return bool(await self._db.fetch_all(REVOKE, (session_id,)))

    async def revoke_all(self, user_id: uuid.UUID, keep: uuid.UUID | None = None) -> int:
        """Revoke every live session of the user except `keep`; returns how many."""
        return len(await self._db.fetch_all(REVOKE_ALL, (user_id, keep)))

    async def revoked_since(self, seconds: float) -> list[uuid.UUID]:
        """Sessions revoked in the last `seconds` (whose access tokens may still be unexpired)."""
        return [row[0] for row in await self._db.fetch_all(RECENTLY_REVOKED, (seconds,))]

    async def is_active(self, session_id: uuid.UUID) -> bool:
        """Whether the session exists, is live and unexpired (a primary-key lookup)."""
        return await self._db.fetch_one(IS_ACTIVE, (session_id,)) is not None
