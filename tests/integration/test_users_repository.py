from __future__ import annotations

import datetime as dt
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


async def test_update_changes_only_the_given_fields(
    users_repo: PgUsersRepository, user: domain.User
) -> None:
    updated = await users_repo.update(user.id, domain.UserPatch(timezone="Asia/Tokyo"))

    assert updated is not None
    assert (updated.timezone, updated.name, updated.email) == ("Asia/Tokyo", user.name, user.email)
    assert updated.updated_at >= user.updated_at and updated.created_at == user.created_at
    moved = await users_repo.update(user.id, domain.UserPatch(name="N", email="New@Example.com"))
    assert moved is not None and (moved.name, moved.email) == ("N", "new@example.com")
    assert await users_repo.get(user.id) == moved
    assert await users_repo.update(uuid.uuid4(), domain.UserPatch(name="x")) is None


async def test_update_to_a_taken_email_is_already_exists(
    users_repo: PgUsersRepository, user: domain.User
) -> None:
    other = await users_repo.add(f"other-{uuid.uuid4().hex}@example.com", "hash", "Other")
    with pytest.raises(errors.AlreadyExists) as caught:
        await users_repo.update(user.id, domain.UserPatch(email=other.email.upper()))
    assert caught.value.reason == "EMAIL_TAKEN"


async def test_update_to_ones_own_email_is_fine(
    users_repo: PgUsersRepository, user: domain.User
) -> None:
    same = await users_repo.update(user.id, domain.UserPatch(email=user.email.upper()))
    assert same is not None and same.email == user.email


async def test_set_password_is_compare_and_set(
    users_repo: PgUsersRepository, user: domain.User
) -> None:
    assert await users_repo.get_password_hash(user.id) == "hash"
    assert await users_repo.set_password(user.id, "stale", "new-hash") is None
    assert await users_repo.get_password_hash(user.id) == "hash"
    changed = await users_repo.set_password(user.id, "hash", "new-hash")
    assert changed is not None and changed.id == user.id
    assert await users_repo.get_password_hash(user.id) == "new-hash"
    assert await users_repo.get_password_hash(uuid.uuid4()) is None


async def test_delete_removes_the_user_and_their_tasks_keeps_revoked_sessions(
    users_repo: PgUsersRepository, user: domain.User, conn
) -> None:
    from server.db import executor
    from server.repositories.sessions import PgSessionsRepository
    from server.repositories.tasks import PgTasksRepository

    sessions = PgSessionsRepository(executor.Executor(conn))
    tasks = PgTasksRepository(executor.Executor(conn))
    session_id = uuid.uuid4()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    await sessions.add(session_id, user.id, "jti", later)
    task = await tasks.add(user.id, domain.TaskFields(title="goes with the user"))

    assert await sessions.revoke_all(user.id) == 1
    assert await users_repo.delete(user.id)

    assert await users_repo.get(user.id) is None
    assert await tasks.get(user.id, task.id) is None
    assert not await sessions.is_active(session_id)
    assert session_id in await sessions.revoked_since(60)  # a reconnecting listener finds it
    assert not await users_repo.delete(user.id)
    again = await users_repo.add(user.email, "hash-2", "Again")  # the email is free
    assert again.id != user.id
