from __future__ import annotations

import datetime as dt
import uuid

from server import domain
from server.repositories.sessions import PgSessionsRepository

LATER = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
EARLIER = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)


async def _session(
    repo: PgSessionsRepository, user: domain.User, expires_at: dt.datetime
) -> uuid.UUID:
    session_id = uuid.uuid4()
    await repo.add(session_id, user.id, "jti-1", expires_at)
    return session_id


async def test_new_session_is_active(
    sessions_repo: PgSessionsRepository, user: domain.User
) -> None:
    session_id = await _session(sessions_repo, user, LATER)

    assert await sessions_repo.is_active(session_id)
    assert not await sessions_repo.is_active(uuid.uuid4())


async def test_rotate_swaps_the_refresh_token_once(
    sessions_repo: PgSessionsRepository, user: domain.User
) -> None:
    session_id = await _session(sessions_repo, user, LATER)

    assert await sessions_repo.rotate(session_id, "jti-1", "jti-2")
    assert not await sessions_repo.rotate(session_id, "jti-1", "jti-3")  # reused old token
    assert await sessions_repo.rotate(session_id, "jti-2", "jti-3")
    assert not await sessions_repo.rotate(uuid.uuid4(), "jti-3", "jti-4")
    assert await sessions_repo.is_active(session_id)


async def test_revoked_session_is_inactive_and_cannot_rotate(
    sessions_repo: PgSessionsRepository, user: domain.User
) -> None:
    session_id = await _session(sessions_repo, user, LATER)

    await sessions_repo.revoke(session_id)
    await sessions_repo.revoke(session_id)  # idempotent
    await sessions_repo.revoke(uuid.uuid4())  # unknown: no error

    assert not await sessions_repo.is_active(session_id)
    assert not await sessions_repo.rotate(session_id, "jti-1", "jti-2")


async def test_expired_session_is_inactive_and_cannot_rotate(
    sessions_repo: PgSessionsRepository, user: domain.User
) -> None:
    session_id = await _session(sessions_repo, user, EARLIER)

    assert not await sessions_repo.is_active(session_id)
    assert not await sessions_repo.rotate(session_id, "jti-1", "jti-2")


async def test_revoke_all_keeps_one(sessions_repo: PgSessionsRepository, user: domain.User) -> None:
    keep, first, second = [await _session(sessions_repo, user, LATER) for _ in range(3)]

    assert await sessions_repo.revoke_all(user.id, keep=keep) == 2
    assert await sessions_repo.revoke_all(user.id, keep=keep) == 0  # already revoked

    assert await sessions_repo.is_active(keep)
    assert not await sessions_repo.is_active(first)
    assert not await sessions_repo.is_active(second)
    assert {first, second} <= set(await sessions_repo.revoked_since(60))
    assert await sessions_repo.revoke_all(user.id) == 1  # without keep: every one
    assert not await sessions_repo.is_active(keep)
