"""Session liveness for the auth interceptor.

`SessionCheck` is what the interceptor asks; `DatabaseSessionCheck` answers
with one primary-key lookup. `server.db.revocations.SessionRevocations`
answers from memory and falls back to this one while it is not ready.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Protocol

from server.services.ports import UnitOfWork


class SessionCheck(Protocol):
    """Tells whether a login session (and so its tokens) is still valid."""

    async def is_active(self, session_id: uuid.UUID) -> bool:
        """False once the session was revoked."""
        ...


class DatabaseSessionCheck:
    """`SessionCheck` backed by the sessions table."""

    def __init__(self, uow: Callable[[], UnitOfWork]) -> None:
        self._uow = uow

    async def is_active(self, session_id: uuid.UUID) -> bool:
        """Whether the session exists, is not revoked and has not expired."""
        async with self._uow().autocommit() as reader:
            return await reader.sessions.is_active(session_id)
