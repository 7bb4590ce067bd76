from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from typing import Any, cast

import jwt
import pytest

from server import errors
from server.auth.tokens import LEEWAY_S, TokenCodec, VerifiedCache, key_id
from server.config import Settings


def test_access_token_round_trip(tokens: TokenCodec) -> None:
    user, session = uuid.uuid4(), uuid.uuid4()
    issued = tokens.issue("access", user, session)
    claims = tokens.verify(issued.token, "access")
    assert (claims.user_id, claims.session_id) == (user, session)
    assert claims.token_id == issued.claims.token_id


def test_issued_tokens_name_their_key_and_carry_nbf(settings: Settings, tokens: TokenCodec) -> None:
    token = tokens.issue("access", uuid.uuid4(), uuid.uuid4()).token
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "typ": "JWT", "kid": key_id(settings.jwt_secret)}
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["nbf"] == payload["iat"]
    assert settings.jwt_secret[:8] not in header["kid"]


def test_refresh_token_is_not_an_access_token(tokens: TokenCodec) -> None:
    refresh = tokens.issue("refresh", uuid.uuid4(), uuid.uuid4()).token
    with pytest.raises(errors.Unauthenticated) as caught:
        tokens.verify(refresh, "access")
    assert caught.value.reason == "WRONG_TOKEN_TYPE"


def _claims(settings: Settings, **overrides: object) -> dict[str, object]:
    now = dt.datetime.now(dt.UTC)
    claims: dict[str, object] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "jti": "j",
        "iat": now,
        "nbf": now,
        "exp": now + dt.timedelta(minutes=5),
        "typ": "access",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, object], key: str, kid: str | None = "", alg: str = "HS256") -> str:
    headers = {} if kid is None else {"kid": kid or key_id(key)}
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def test_a_well_formed_foreign_token_passes(settings: Settings, tokens: TokenCodec) -> None:
    """The baseline for the refusals below: the same construction, unaltered, is accepted."""
    tokens.verify(_sign(_claims(settings), settings.jwt_secret), "access")


SOON = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)  # computed at collection: far enough ahead
# to still be in the future (beyond the leeway) however long the suite runs before this test


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)}, "TOKEN_EXPIRED"),
        ({"iss": "someone-else"}, "INVALID_TOKEN"),
        ({"aud": "another-api"}, "INVALID_TOKEN"),
        ({"sid": None}, "INVALID_TOKEN"),
        ({"jti": None}, "INVALID_TOKEN"),
        ({"nbf": None}, "INVALID_TOKEN"),
        ({"sub": "not-a-uuid"}, "INVALID_TOKEN"),
        ({"nbf": SOON}, "TOKEN_NOT_YET_VALID"),
        ({"typ": "id"}, "WRONG_TOKEN_TYPE"),
    ],
    ids=["expired", "issuer", "audience", "no-sid", "no-jti", "no-nbf", "bad-sub", "nbf", "typ"],
)
def test_bad_claims_are_refused(
    settings: Settings, tokens: TokenCodec, overrides: dict, reason: str
) -> None:
    token = _sign(_claims(settings, **overrides), settings.jwt_secret)
    with pytest.raises(errors.Unauthenticated) as caught:
        tokens.verify(token, "access")
    assert caught.value.reason == reason


def test_nbf_allows_a_small_clock_skew(settings: Settings, tokens: TokenCodec) -> None:
    skewed = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=LEEWAY_S - 2)
    tokens.verify(_sign(_claims(settings, nbf=skewed), settings.jwt_secret), "access")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_alg_none_and_wrong_key_are_refused(settings: Settings, tokens: TokenCodec) -> None:
    kid = key_id(settings.jwt_secret)
    unsigned = jwt.encode(_claims(settings), key=None, algorithm="none", headers={"kid": kid})  # type: ignore[arg-type]
    forged = _sign(_claims(settings), "another-secret-" + "y" * 32, kid=kid)
    hs512 = _sign(_claims(settings), settings.jwt_secret, alg="HS512")
    for token in (unsigned, forged, hs512, "garbage", ""):
        with pytest.raises(errors.Unauthenticated):
            tokens.verify(token, "access")


def test_unknown_or_missing_kid_is_refused(settings: Settings, tokens: TokenCodec) -> None:
    for kid in ("0123456789abcdef", None):
        with pytest.raises(errors.Unauthenticated) as caught:
            tokens.verify(_sign(_claims(settings), settings.jwt_secret, kid=kid), "access")
        assert caught.value.reason == "UNKNOWN_KEY"


def test_another_deployment_cannot_mint_tokens(settings: Settings) -> None:
    other = TokenCodec(dataclasses.replace(settings, jwt_secret="z" * 40))
    token = other.issue("access", uuid.uuid4(), uuid.uuid4()).token
    with pytest.raises(errors.Unauthenticated):
        TokenCodec(settings).verify(token, "access")


def test_rotation_accepts_the_previous_key_until_it_is_dropped(settings: Settings) -> None:
    old = TokenCodec(settings)
    old_token = old.issue("refresh", uuid.uuid4(), uuid.uuid4()).token
    rotated_settings = dataclasses.replace(
        settings, jwt_secret="n" * 40, jwt_previous_secret=settings.jwt_secret
    )
    rotated = TokenCodec(rotated_settings)
    rotated.verify(old_token, "refresh")  # still accepted, by its kid
    new_token = rotated.issue("refresh", uuid.uuid4(), uuid.uuid4()).token
    assert jwt.get_unverified_header(new_token)["kid"] == key_id("n" * 40)
    with pytest.raises(errors.Unauthenticated):
        old.verify(new_token, "refresh")  # the old deployment does not know the new key
    dropped = TokenCodec(dataclasses.replace(rotated_settings, jwt_previous_secret=None))
    with pytest.raises(errors.Unauthenticated) as caught:
        dropped.verify(old_token, "refresh")
    assert caught.value.reason == "UNKNOWN_KEY"


def test_a_token_cannot_pick_the_other_key_by_kid(settings: Settings) -> None:
    """Signed with the previous key but naming the current one: the signature fails."""
    rotated = dataclasses.replace(
        settings, jwt_secret="n" * 40, jwt_previous_secret=settings.jwt_secret
    )
    token = _sign(_claims(settings), settings.jwt_secret, kid=key_id("n" * 40))
    with pytest.raises(errors.Unauthenticated) as caught:
        TokenCodec(rotated).verify(token, "access")
    assert caught.value.reason == "INVALID_TOKEN"


def test_a_remembered_token_is_checked_against_the_clock_on_every_call(
    tokens: TokenCodec, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = tokens.issue("access", uuid.uuid4(), uuid.uuid4())
    tokens.verify(issued.token, "access")  # now remembered
    expires = issued.claims.expires_at.timestamp()
    monkeypatch.setattr(time, "time", lambda: expires + LEEWAY_S - 1)
    assert tokens.verify(issued.token, "access").user_id == issued.claims.user_id
    monkeypatch.setattr(time, "time", lambda: expires + LEEWAY_S + 1)
    with pytest.raises(errors.Unauthenticated) as caught:
        tokens.verify(issued.token, "access")
    assert caught.value.reason == "TOKEN_EXPIRED"


def test_a_remembered_token_is_not_decoded_again_but_its_type_is_checked(
    tokens: TokenCodec, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = tokens.issue("access", uuid.uuid4(), uuid.uuid4())
    tokens.verify(issued.token, "access")

    def no_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(jwt, "decode", no_decode)
    assert tokens.verify(issued.token, "access").session_id == issued.claims.session_id
    with pytest.raises(errors.Unauthenticated) as caught:
        tokens.verify(issued.token, "refresh")
    assert caught.value.reason == "WRONG_TOKEN_TYPE"


def test_a_refused_token_is_not_remembered(tokens: TokenCodec) -> None:
    token = tokens.issue("access", uuid.uuid4(), uuid.uuid4()).token
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for _ in range(2):
        with pytest.raises(errors.Unauthenticated) as caught:
            tokens.verify(forged, "access")
        assert caught.value.reason == "INVALID_TOKEN"


def test_the_cache_of_verified_tokens_is_bounded() -> None:
    cache = VerifiedCache(size=2)
    entry = cast(Any, object())
    for token in ("a", "b", "c"):
        cache.put(token, entry)
    assert cache.get("a") is None
    assert cache.get("b") is entry and cache.get("c") is entry
