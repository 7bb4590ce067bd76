from __future__ import annotations

import pytest

from server import errors
from server.auth import passwords
from server.services import auth

CLIENT = "203.0.113.7"


async def _register(uow, hasher, throttle, email="Ann@Example.com", password="correct horse"):
    return await auth.register(uow(), hasher, throttle, CLIENT, email, password, " Ann ")


async def _login(uow, hasher, tokens, throttle, email, password, client=CLIENT):
    return await auth.login(uow(), hasher, tokens, throttle, client, email, password)


async def test_register_normalises_and_refuses_duplicates(uow, hasher, throttle) -> None:
    user = await _register(uow, hasher, throttle)
    assert (user.email, user.name, user.timezone) == ("ann@example.com", "Ann", "UTC")
    with pytest.raises(errors.AlreadyExists):
        await _register(uow, hasher, throttle, email="ANN@example.com")


async def test_register_names_every_bad_field(uow, hasher, throttle) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        await auth.register(uow(), hasher, throttle, CLIENT, "not-an-email", "short", "  ")
    assert sorted(v.field for v in caught.value.violations) == ["email", "name", "password"]


async def test_login_has_one_answer_for_every_failure(uow, hasher, tokens, throttle) -> None:
    await _register(uow, hasher, throttle)
    messages = set()
    for email, password in [("ann@example.com", "wrong password"), ("bob@example.com", "x" * 9)]:
        with pytest.raises(errors.Unauthenticated) as caught:
            await _login(uow, hasher, tokens, throttle, email, password)
        messages.add((caught.value.message, caught.value.reason))
    assert len(messages) == 1


async def test_login_matches_email_case_insensitively(uow, hasher, tokens, throttle) -> None:
    await _register(uow, hasher, throttle)
    pair = await _login(uow, hasher, tokens, throttle, "ANN@example.com", "correct horse")
    assert tokens.verify(pair.access_token, "access").user_id == pair.user.id


async def test_refresh_rotates_and_reuse_revokes_the_family(
    uow, hasher, tokens, throttle, store
) -> None:
    await _register(uow, hasher, throttle)
    first = await _login(uow, hasher, tokens, throttle, "ann@example.com", "correct horse")
    second = await auth.refresh(uow(), tokens, throttle, CLIENT, first.refresh_token)
    session = tokens.verify(second.access_token, "access").session_id
    assert await store.sessions.is_active(session)
    with pytest.raises(errors.Unauthenticated):
        await auth.refresh(uow(), tokens, throttle, CLIENT, first.refresh_token)
    assert not await store.sessions.is_active(session)
    with pytest.raises(errors.Unauthenticated):
        await auth.refresh(uow(), tokens, throttle, CLIENT, second.refresh_token)


async def test_login_is_throttled_per_account_and_address(
    uow, hasher, tokens, throttle, store
) -> None:
    await auth.register(
        uow(), hasher, throttle, "198.51.100.1", "ann@example.com", "correct horse", "Ann"
    )
    for _ in range(3):  # the fixture allows 3 per (account, address)
        with pytest.raises(errors.Unauthenticated):
            await _login(uow, hasher, tokens, throttle, "ann@example.com", "wrong password")
    with pytest.raises(errors.ResourceExhausted) as caught:
        await _login(uow, hasher, tokens, throttle, "ann@example.com", "correct horse")
    assert caught.value.reason == "TOO_MANY_ATTEMPTS"
    assert caught.value.retry_after_s == 20  # one more every 60 s / 3
    # The owner, elsewhere, still gets in: the attacker's refused tries did not count.
    pair = await _login(
        uow, hasher, tokens, throttle, "ann@example.com", "correct horse", "10.9.9.9"
    )
    assert pair.user.email == "ann@example.com"
    # The attacker's window drains by itself.
    store.rate_limits.clock += 20
    await _login(uow, hasher, tokens, throttle, "ann@example.com", "correct horse")


async def test_the_per_account_limit_spans_addresses(uow, hasher, tokens, throttle) -> None:
    await _register(uow, hasher, throttle)
    for i in range(4):  # one address each; with register's attempt, 5 in all
        await _login(
            uow, hasher, tokens, throttle, "ann@example.com", "correct horse", f"10.0.0.{i}"
        )
    with pytest.raises(errors.ResourceExhausted):
        await _login(uow, hasher, tokens, throttle, "ann@example.com", "correct horse", "10.1.1.1")


async def test_throttled_login_checks_no_password(uow, tokens, throttle, store) -> None:
    class Hasher:
        def refuse_if_busy(self) -> None:
            pass

        async def verify(self, normalized, stored):
            raise AssertionError("a throttled attempt must not reach bcrypt")

    for _ in range(3):
        with pytest.raises(errors.Unauthenticated):
            await auth.login(uow(), _Refusing(), tokens, throttle, CLIENT, "x@example.com", "p" * 8)  # type: ignore[arg-type]
    with pytest.raises(errors.ResourceExhausted):
        await auth.login(uow(), Hasher(), tokens, throttle, CLIENT, "x@example.com", "p" * 8)  # type: ignore[arg-type]


class _Refusing:
    def refuse_if_busy(self) -> None:
        pass

    async def verify(self, normalized, stored):
        return False


class _Busy:
    """A hasher whose pool is full: every hash is refused."""

    def refuse_if_busy(self) -> None:
        raise passwords.busy()

    async def verify(self, normalized, stored):
        raise AssertionError("a refused attempt must not reach bcrypt")

    async def hash(self, normalized):
        raise AssertionError("a refused attempt must not reach bcrypt")


@pytest.mark.parametrize("password", ["correct horse", "wrong password", "short"])
async def test_busy_hashing_refuses_logins_alike_before_the_throttle_counts(
    uow, hasher, tokens, throttle, store, password
) -> None:
    await _register(uow, hasher, throttle)
    counted = list(store.rate_limits.hits)
    with pytest.raises(errors.ResourceExhausted) as caught:
        await _login(uow, _Busy(), tokens, throttle, "ann@example.com", password)
    assert (caught.value.reason, caught.value.retry_after_s) == ("PASSWORD_CHECKS_BUSY", 1)
    assert caught.value.message == passwords.busy().message
    assert store.rate_limits.hits == counted  # a refused attempt tested nothing


async def test_busy_hashing_refuses_registration_before_the_throttle_counts(
    uow, throttle, store
) -> None:
    with pytest.raises(errors.ResourceExhausted) as caught:
        await _register(uow, _Busy(), throttle)
    assert caught.value.reason == "PASSWORD_CHECKS_BUSY"
    assert store.rate_limits.hits == []


async def test_forged_refresh_tokens_count_against_the_address(uow, tokens, store) -> None:
    from server.services.throttle import Limits, Throttle

    tight = Throttle(Limits(period_s=60, per_address=2, per_account_address=0, per_account=0))
    for _ in range(2):
        with pytest.raises(errors.Unauthenticated):
            await auth.refresh(uow(), tokens, tight, CLIENT, "forged")
    with pytest.raises(errors.ResourceExhausted):
        await auth.refresh(uow(), tokens, tight, CLIENT, "forged")
