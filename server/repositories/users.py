"""Accounts in the `users` table."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

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

SELECT_PASSWORD_HASH = "SELECT password_hash FROM users WHERE id = %s"

UPDATE = f"""
UPDATE users SET
    name = coalesce(%(name)s, name),
    email = coalesce(%(email)s, email),
    timezone = coalesce(%(timezone)s, timezone),
    updated_at = now()
WHERE id = %(id)s
RETURNING {_COLUMNS}
"""

SET_PASSWORD = f"""
UPDATE users SET password_hash = %s, updated_at = now()
WHERE id = %s AND password_hash = %s
RETURNING {_COLUMNS}
"""
"""Compare-and-set: a password changed since it was checked is not overwritten."""

DELETE = "DELETE FROM users WHERE id = %s"
"""Tasks go with the user (ON DELETE CASCADE); sessions stay, revoked, with user_id NULL."""

EMAIL_CONSTRAINT = "uq_users_email"


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
        row = await self._db.fetch_one(INSERT, (domain.normalize_email(email), password_hash, name))
        if row is None:
            raise errors.AlreadyExists("email is already registered", reason="EMAIL_TAKEN")
        return _to_user(row)

    async def get(self, user_id: uuid.UUID) -> domain.User | None:
        """The user with this id, or None."""
        row = await self._db.fetch_one(SELECT_BY_ID, (user_id,))
        return None if row is None else _to_user(row)

    async def get_credentials(self, email: str) -> domain.Credentials | None:
        """The user with this email (compared lowercased) and their password hash, or None."""
        row = await self._db.fetch_one(SELECT_CREDENTIALS, (domain.normalize_email(email),))
        if row is None:
            return None
        return domain.Credentials(user=_to_user(row), password_hash=row[6])

    async def get_password_hash(self, user_id: uuid.UUID) -> str | None:
        """The stored password hash of this user, or None if there is no such user."""
        row = await self._db.fetch_one(SELECT_PASSWORD_HASH, (user_id,))
        return None if row is None else str(row[0])

    async def update(self, user_id: uuid.UUID, patch: domain.UserPatch) -> domain.User | None:
        """Change the fields the patch sets (email lowercased); None if there is no such user.

        Raises:
            errors.AlreadyExists: the new email belongs to another account (reason
                EMAIL_TAKEN). The transaction is then unusable; the use case ends with it.
        """
        email = None if patch.email is None else domain.normalize_email(patch.email)
        params = {"id": user_id, "name": patch.name, "email": email, "timezone": patch.timezone}
        try:
            row = await self._db.fetch_one(UPDATE, params)
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name != EMAIL_CONSTRAINT:
                raise
            raise errors.AlreadyExists(
                "email is already registered", reason="EMAIL_TAKEN"
            ) from None
        return None if row is None else _to_user(row)

    async def set_password(
        self, user_id: uuid.UUID, expected_hash: str, new_hash: str
    ) -> domain.User | None:
        """Replace the hash if it is still `expected_hash`; None otherwise (or no such user)."""
        row = await self._db.fetch_one(SET_PASSWORD, (new_hash, user_id, expected_hash))
        return None if row is None else _to_user(row)

    async def delete(self, user_id: uuid.UUID) -> bool:
        """Delete the user and their tasks; False if there is no such user."""
        return await self._db.execute(DELETE, (user_id,)) == 1
