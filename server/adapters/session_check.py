"""`SessionCheck` with one primary-key lookup in the sessions table."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from server.services.ports import UnitOfWork


class DatabaseSessionCheck:
    """`SessionCheck` backed by the sessions table."""

    def __init__(self, uow: Callable[[], UnitOfWork]) -> None:
        self._uow = uow

    async def is_active(self, session_id: uuid.UUID) -> bool:
        """Whether the session exists, is not revoked and has not expired."""
        async with self._uow().autocommit() as reader:
            return await reader.sessions.is_active(session_id)
