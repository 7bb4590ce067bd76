"""Accounts in the `users` table."""

from __future__ import annotations

import uuid
from typing import Any

from server import domain, errors
from server.db import executor

_COLUMNS = "id, email, name, timezone, created_at, updated_at"

INSERT = f"""
INSERT INTO users (email, password_hash, name) VALUES (%s, %s, %s)
ON CONFLICT (email) DO NOTHING
RETURNING {_COLUMNS}
"""

SELECT_BY_ID = f"SELECT {_COLUMNS} FROM users WHERE id = %s"

SELECT_CREDENTIALS = f"SELECT {_COLUMNS}, password_hash FROM users WHERE email = %s"


def _to_user(row: tuple[Any, ...]) -> domain.User:
    return domain.User(
        id=row[0],
        email=row[1],
        name=row[2],
        timezone=row[3],
        created_at=row[4],
        updated_at=row[5],
    )


class PgUsersRepository:
    """`ports.UsersRepository` on PostgreSQL; emails are compared lowercased."""

    def __init__(self, db: executor.Executor) -> None:
        self._db = db

    async def add(self, email: str, password_hash: str, name: str) -> domain.User:
        """Insert a user with the email lowercased.

        `ON CONFLICT DO NOTHING` keeps the transaction usable when the email is taken.

        Raises:
            errors.AlreadyExists: the email is registered already (reason EMAIL_TAKEN).
        """
        row = await self._db.fetch_one(INSERT, (email.lower(), password_hash, name))
        if row is None:
            raise errors.AlreadyExists("email is already registered", reason="EMAIL_TAKEN")
        return _to_user(row)

    async def get(self, user_id: uuid.UUID) -> domain.User | None:
        """The user with this id, or None."""
        row = await self._db.fetch_one(SELECT_BY_ID, (user_id,))
        return None if row is None else _to_user(row)

    async def get_credentials(self, email: str) -> domain.Credentials | None:
        """The user with this email (compared lowercased) and their password hash, or None."""
        row = await self._db.fetch_one(SELECT_CREDENTIALS, (email.lower(),))
        if row is None:
            return None
        return domain.Credentials(user=_to_user(row), password_hash=row[6])
