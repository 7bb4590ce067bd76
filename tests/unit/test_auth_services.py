from __future__ import annotations

import pytest

from server import errors
from server.services import auth


async def _register(uow, hasher, email="Ann@Example.com", password="correct horse"):
    return await auth.register(uow(), hasher, email, password, " Ann ")


async def test_register_normalises_and_refuses_duplicates(uow, hasher) -> None:
    user = await _register(uow, hasher)
    assert (user.email, user.name, user.timezone) == ("ann@example.com", "Ann", "UTC")
    with pytest.raises(errors.AlreadyExists):
        await _register(uow, hasher, email="ANN@example.com")


async def test_register_names_every_bad_field(uow, hasher) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        await auth.register(uow(), hasher, "not-an-email", "short", "  ")
    assert sorted(v.field for v in caught.value.violations) == ["email", "name", "password"]


async def test_login_has_one_answer_for_every_failure(uow, hasher, tokens) -> None:
    await _register(uow, hasher)
    messages = set()
    for email, password in [("ann@example.com", "wrong password"), ("bob@example.com", "x" * 9)]:
        with pytest.raises(errors.Unauthenticated) as caught:
            await auth.login(uow(), hasher, tokens, email, password)
        messages.add((caught.value.message, caught.value.reason))
    assert len(messages) == 1


async def test_login_matches_email_case_insensitively(uow, hasher, tokens) -> None:
    await _register(uow, hasher)
    pair = await auth.login(uow(), hasher, tokens, "ANN@example.com", "correct horse")
    assert tokens.verify(pair.access_token, "access").user_id == pair.user.id


async def test_refresh_rotates_and_reuse_revokes_the_family(uow, hasher, tokens, store) -> None:
    await _register(uow, hasher)
    first = await auth.login(uow(), hasher, tokens, "ann@example.com", "correct horse")
    second = await auth.refresh(uow(), tokens, first.refresh_token)
    session = tokens.verify(second.access_token, "access").session_id
    assert await store.sessions.is_active(session)
    with pytest.raises(errors.Unauthenticated):
        await auth.refresh(uow(), tokens, first.refresh_token)
    assert not await store.sessions.is_active(session)
    with pytest.raises(errors.Unauthenticated):
        await auth.refresh(uow(), tokens, second.refresh_token)
