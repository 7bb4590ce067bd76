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

REVOKE = "UPDATE sessions SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL"

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

    async def revoke(self, session_id: uuid.UUID) -> None:
        """Revoke the session (a no-op if it is unknown or revoked already)."""
        await self._db.execute(REVOKE, (session_id,))

    async def is_active(self, session_id: uuid.UUID) -> bool:
        """Whether the session exists, is live and unexpired (a primary-key lookup)."""
        return await self._db.fetch_one(IS_ACTIVE, (session_id,)) is not None
