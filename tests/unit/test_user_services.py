from __future__ import annotations

import datetime as dt
import uuid

import pytest

from server import domain, errors
from server.auth import passwords
from server.services import auth, users
from tests.unit.conftest import make_principal

CLIENT = "203.0.113.9"
PASSWORD = "correct horse"


async def _account(uow, hasher, throttle, email="ann@example.com") -> domain.User:
    return await auth.register(uow(), hasher, throttle, CLIENT, email, PASSWORD, "Ann")


async def _session(store, user: domain.User) -> domain.Principal:
    principal = make_principal(user.id)
    await store.sessions.add(
        principal.session_id, user.id, "jti", dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    )
    return principal


async def test_update_changes_only_the_fields_sent(uow, hasher, throttle, store) -> None:
    user = await _account(uow, hasher, throttle)
    me = await _session(store, user)
    patch = domain.UserPatch(name="  Annie ", timezone="Europe/Paris")
    updated = await users.update_user(uow(), me, "me", patch)
    assert (updated.name, updated.timezone, updated.email) == ("Annie", "Europe/Paris", user.email)
    assert updated.updated_at >= user.updated_at
    moved = await users.update_user(uow(), me, str(user.id), domain.UserPatch(email="ANN@New.org"))
    assert (moved.email, moved.name) == ("ann@new.org", "Annie")


async def test_update_with_nothing_changes_nothing(uow, hasher, throttle, store) -> None:
    user = await _account(uow, hasher, throttle)
    me = await _session(store, user)
    commits = store.commits
    assert await users.update_user(uow(), me, "me", domain.UserPatch()) == user
    assert store.commits == commits


async def test_update_names_every_bad_field_and_changes_nothing(
    uow, hasher, throttle, store
) -> None:
    user = await _account(uow, hasher, throttle)
    me = await _session(store, user)
    bad = domain.UserPatch(name=" ", email="nope", timezone="Mars/Olympus")
    with pytest.raises(errors.InvalidArgument) as caught:
        await users.update_user(uow(), me, "me", bad)
    assert sorted(v.field for v in caught.value.violations) == ["email", "name", "timezone"]
    assert caught.value.reason == "INVALID_ACCOUNT"
    assert await store.users.get(user.id) == user


@pytest.mark.parametrize("zone", ["", "localtime", "../../etc/passwd", "utc", "Europe"])
async def test_only_iana_time_zones_are_accepted(uow, hasher, throttle, store, zone) -> None:
    me = await _session(store, await _account(uow, hasher, throttle))
    with pytest.raises(errors.InvalidArgument):
        await users.update_user(uow(), me, "me", domain.UserPatch(timezone=zone))


async def test_update_to_a_taken_email_is_already_exists(uow, hasher, throttle, store) -> None:
    await _account(uow, hasher, throttle, "bob@example.com")
    me = await _session(store, await _account(uow, hasher, throttle))
    with pytest.raises(errors.AlreadyExists):
        await users.update_user(uow(), me, "me", domain.UserPatch(email="BOB@example.com"))


async def test_another_users_id_is_permission_denied(uow, hasher, throttle, store) -> None:
    bob = await _account(uow, hasher, throttle, "bob@example.com")
    me = await _session(store, await _account(uow, hasher, throttle))
    calls = [
        users.update_user(uow(), me, str(bob.id), domain.UserPatch(name="x")),
        users.change_password(
            uow(), hasher, throttle, me, CLIENT, str(bob.id), PASSWORD, "new password"
        ),
        users.delete_user(uow(), me, str(bob.id)),
        users.delete_user(uow(), me, str(uuid.uuid4())),
    ]
    for call in calls:
        with pytest.raises(errors.PermissionDenied):
            await call
    assert await store.users.get(bob.id) == bob


async def test_change_password_keeps_only_the_callers_session(
    uow, hasher, tokens, throttle, store
) -> None:
    user = await _account(uow, hasher, throttle)
    me = await _session(store, user)
    other = await _session(store, user)
    await users.change_password(uow(), hasher, throttle, me, CLIENT, "me", PASSWORD, "new password")
    assert await store.sessions.is_active(me.session_id)
    assert not await store.sessions.is_active(other.session_id)
    with pytest.raises(errors.Unauthenticated):
        await auth.login(uow(), hasher, tokens, throttle, "10.0.0.1", user.email, PASSWORD)
    await auth.login(uow(), hasher, tokens, throttle, "10.0.0.1", user.email, "new password")


async def test_wrong_current_password_is_400_and_changes_nothing(
    uow, hasher, throttle, store
) -> None:
    user = await _account(uow, hasher, throttle)
    me = await _session(store, user)
    other = await _session(store, user)
    stored = await store.users.get_password_hash(user.id)
    for wrong in ("wrong password", "short"):
        with pytest.raises(errors.InvalidArgument) as caught:
            await users.change_password(
                uow(), hasher, throttle, me, CLIENT, "me", wrong, "new password"
            )
        assert [v.field for v in caught.value.violations] == ["current_password"]
        assert caught.value.reason == "INCORRECT_PASSWORD"
    assert await store.users.get_password_hash(user.id) == stored
    assert await store.sessions.is_active(other.session_id)


async def test_change_password_names_every_bad_field(uow, hasher, throttle, store) -> None:
    me = await _session(store, await _account(uow, hasher, throttle))
    with pytest.raises(errors.InvalidArgument) as caught:
        await users.change_password(uow(), hasher, throttle, me, CLIENT, "me", "", "short")
    assert sorted(v.field for v in caught.value.violations) == [
        "current_password",
        "new_password",
    ]


async def test_change_password_is_throttled(uow, hasher, throttle, store) -> None:
    me = await _session(store, await _account(uow, hasher, throttle))
    for _ in range(3):
        with pytest.raises(errors.InvalidArgument):
            await users.change_password(
                uow(), hasher, throttle, me, CLIENT, "me", "guess guess", "new password"
            )
    with pytest.raises(errors.ResourceExhausted):
        await users.change_password(
            uow(), hasher, throttle, me, CLIENT, "me", PASSWORD, "new password"
        )


async def test_a_concurrent_password_change_is_aborted(uow, hasher, throttle, store) -> None:
    user = await _account(uow, hasher, throttle)
    me = await _session(store, user)
    real_set = store.users.set_password

    async def changed_meanwhile(user_id, expected_hash, new_hash):
        return await real_set(user_id, "someone else's hash", new_hash)

    store.users.set_password = changed_meanwhile
    with pytest.raises(errors.Aborted):
        await users.change_password(
            uow(), hasher, throttle, me, CLIENT, "me", PASSWORD, "new password"
        )


async def test_delete_removes_the_user_their_tasks_and_sessions(
    uow, hasher, throttle, store
) -> None:
    user = await _account(uow, hasher, throttle)
    me = await _session(store, user)
    other = await _session(store, user)
    await store.tasks.add(user.id, domain.TaskFields(title="mine"))
    await users.delete_user(uow(), me, "me")
    assert await store.users.get(user.id) is None
    assert not await store.sessions.is_active(me.session_id)
    assert not await store.sessions.is_active(other.session_id)
    with pytest.raises(errors.NotFound):
        await users.delete_user(uow(), me, "me")
    with pytest.raises(errors.NotFound):
        await users.get_user(uow(), me, "me")
    again = await _account(uow, hasher, throttle)  # the email is free again
    assert again.id != user.id


async def test_busy_hashing_refuses_a_password_change_and_changes_nothing(
    uow, hasher, throttle, store
) -> None:
    user = await _account(uow, hasher, throttle)
    me = await _session(store, user)
    stored = await store.users.get_password_hash(user.id)
    counted = list(store.rate_limits.hits)

    class Busy:
        def refuse_if_busy(self) -> None:
            raise passwords.busy()

    with pytest.raises(errors.ResourceExhausted) as caught:
        await users.change_password(
            uow(),
            Busy(),  # type: ignore[arg-type]
            throttle,
            me,
            CLIENT,
            "me",
            PASSWORD,
            "new password",
        )
    assert caught.value.reason == "PASSWORD_CHECKS_BUSY"
    assert store.rate_limits.hits == counted
    assert await store.users.get_password_hash(user.id) == stored
