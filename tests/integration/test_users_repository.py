from __future__ import annotations

import uuid

import pytest

from server import domain, errors
from server.repositories.users import PgUsersRepository


async def test_add_returns_the_stored_user(users_repo: PgUsersRepository) -> None:
    created = await users_repo.add("Ada@Example.COM", "hash-1", "Ada")

    assert created.email == "ada@example.com"
    assert created.name == "Ada"
    assert created.timezone == "UTC"
    assert created.created_at == created.updated_at
    assert created.created_at.tzinfo is not None
    assert await users_repo.get(created.id) == created


async def test_get_unknown_user_is_none(users_repo: PgUsersRepository) -> None:
    assert await users_repo.get(uuid.uuid4()) is None


async def test_duplicate_email_is_already_exists(
    users_repo: PgUsersRepository, user: domain.User
) -> None:
    with pytest.raises(errors.AlreadyExists) as caught:
        await users_repo.add(user.email.upper(), "other-hash", "Someone Else")

    assert caught.value.reason == "EMAIL_TAKEN"
    assert caught.value.message == "email is already registered"
    # ON CONFLICT DO NOTHING: the transaction is still usable.
    assert await users_repo.get(user.id) == user


async def test_get_credentials_matches_email_case_insensitively(
    users_repo: PgUsersRepository, user: domain.User
) -> None:
    credentials = await users_repo.get_credentials(user.email.upper())

    assert credentials == domain.Credentials(user=user, password_hash="hash")
    assert await users_repo.get_credentials("nobody@example.com") is None
