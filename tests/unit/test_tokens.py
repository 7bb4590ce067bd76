from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import jwt
import pytest

from server import errors
from server.auth.tokens import TokenCodec
from server.config import Settings


def test_access_token_round_trip(tokens: TokenCodec) -> None:
    user, session = uuid.uuid4(), uuid.uuid4()
    issued = tokens.issue("access", user, session)
    claims = tokens.verify(issued.token, "access")
    assert (claims.user_id, claims.session_id) == (user, session)
    assert claims.token_id == issued.claims.token_id


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
        "exp": now + dt.timedelta(minutes=5),
        "typ": "access",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)},
        {"iss": "someone-else"},
        {"aud": "another-api"},
        {"sid": None},
        {"jti": None},
        {"sub": "not-a-uuid"},
    ],
    ids=["expired", "issuer", "audience", "no-sid", "no-jti", "bad-sub"],
)
def test_bad_claims_are_refused(settings: Settings, tokens: TokenCodec, overrides: dict) -> None:
    token = jwt.encode(_claims(settings, **overrides), settings.jwt_secret, algorithm="HS256")
    with pytest.raises(errors.Unauthenticated):
        tokens.verify(token, "access")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_alg_none_and_wrong_key_are_refused(settings: Settings, tokens: TokenCodec) -> None:
    unsigned = jwt.encode(_claims(settings), key=None, algorithm="none")  # type: ignore[arg-type]
    forged = jwt.encode(_claims(settings), "another-secret-" + "y" * 32, algorithm="HS256")
    hs512 = jwt.encode(_claims(settings), settings.jwt_secret, algorithm="HS512")
    for token in (unsigned, forged, hs512, "garbage", ""):
        with pytest.raises(errors.Unauthenticated):
            tokens.verify(token, "access")


def test_another_deployment_cannot_mint_tokens(settings: Settings) -> None:
    other = TokenCodec(dataclasses.replace(settings, jwt_secret="z" * 40))
    token = other.issue("access", uuid.uuid4(), uuid.uuid4()).token
    with pytest.raises(errors.Unauthenticated):
        TokenCodec(settings).verify(token, "access")
