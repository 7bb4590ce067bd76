"""Session liveness for the auth interceptor.

`SessionCheck` is what the interceptor asks. Its implementations are adapters
on the database: `server.adapters.session_check.DatabaseSessionCheck` answers
with one primary-key lookup, `server.adapters.revocations.SessionRevocations`
from memory (falling back to the former while it is not ready).
"""

from __future__ import annotations

import uuid
from typing import Protocol


class SessionCheck(Protocol):
    """Tells whether a login session (and so its tokens) is still valid."""

    async def is_active(self, session_id: uuid.UUID) -> bool:
        """False once the session was revoked."""
        ...
