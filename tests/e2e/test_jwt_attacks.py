"""Every RFC 8725 attack on the access token, on both wires, through Envoy.

Each forged token is built from a real session (a real user and session id), so the only
thing wrong with it is the one property under test; the untampered baseline is accepted.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable

import grpc
import httpx
import jwt
import pytest
from todo.v1 import user_pb2, user_pb2_grpc

from server.auth.tokens import key_id
from tests.e2e.conftest import PREVIOUS_JWT_SECRET, Account
from tests.e2e.helpers import assert_error

CURRENT_SECRET = "dev-only-secret-change-me-0123456789abcdef"  # the stack runs with the default
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(account: Account, **overrides: object) -> dict[str, object]:
    real = jwt.decode(account.access_token, options={"verify_signature": False})
    now = dt.datetime.now(dt.UTC)
    claims: dict[str, object] = {
        **real,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + dt.timedelta(minutes=5),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict, key: str = CURRENT_SECRET, kid: str | None = "", alg: str = "HS256"):
    headers = {} if kid is None else {"kid": kid or key_id(key)}
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def _unsigned(claims: dict) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": key_id(CURRENT_SECRET)}
    body = json.dumps(claims, default=lambda t: int(t.timestamp())).encode()
    return f"{_b64(json.dumps(header).encode())}.{_b64(body)}."


HOUR = dt.timedelta(hours=1)
Forge = Callable[[Account], str]
ATTACKS: dict[str, Forge] = {
    "alg none": lambda a: _unsigned(_claims(a)),
    "alg HS512": lambda a: _sign(_claims(a), alg="HS512"),
    "alg HS384": lambda a: _sign(_claims(a), alg="HS384"),
    "wrong key, right kid": lambda a: _sign(_claims(a), "k" * 40, kid=key_id(CURRENT_SECRET)),
    "wrong key, own kid": lambda a: _sign(_claims(a), "k" * 40),
    "expired": lambda a: _sign(
        _claims(a, iat=dt.datetime.now(dt.UTC) - HOUR, exp=dt.datetime.now(dt.UTC) - HOUR / 2)
    ),
    "nbf in the future": lambda a: _sign(_claims(a, nbf=dt.datetime.now(dt.UTC) + HOUR / 6)),
    "no nbf": lambda a: _sign(_claims(a, nbf=None)),
    "wrong iss": lambda a: _sign(_claims(a, iss="someone-else")),
    "wrong aud": lambda a: _sign(_claims(a, aud="another-api")),
    "refresh typ": lambda a: _sign(_claims(a, typ="refresh")),
    "unknown typ": lambda a: _sign(_claims(a, typ="id")),
    "unknown kid": lambda a: _sign(_claims(a), kid="0123456789abcdef"),
    "no kid": lambda a: _sign(_claims(a), kid=None),
    "tampered payload": lambda a: ".".join(
        [
            a.access_token.split(".")[0],
            _b64(json.dumps({**_claims(a), "sub": str(uuid.uuid4())}, default=str).encode()),
            a.access_token.split(".")[2],
        ]
    ),
}


def test_the_untampered_baseline_and_the_previous_key_are_accepted(
    http: httpx.Client, alice: Account
) -> None:
    for token in (
        _sign(_claims(alice)),
        _sign(_claims(alice), PREVIOUS_JWT_SECRET),  # rotated out, still accepted by its kid
    ):
        response = http.get("/api/v1/users/me", headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        assert response.json()["id"] == alice.user_id


@pytest.mark.parametrize("attack", ATTACKS)
def test_rest_refuses(http: httpx.Client, alice: Account, attack: str) -> None:
    token = ATTACKS[attack](alice)
    response = http.get("/api/v1/users/me", headers={"authorization": f"Bearer {token}"})
    assert_error(response, 401, 16)


@pytest.mark.parametrize("attack", ATTACKS)
def test_grpc_refuses(channel: grpc.Channel, alice: Account, attack: str) -> None:
    users = user_pb2_grpc.UserServiceStub(channel)
    md = (("authorization", f"Bearer {ATTACKS[attack](alice)}"),)
    with pytest.raises(grpc.RpcError) as caught:
        users.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=md)
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_grpc_accepts_the_previous_key(channel: grpc.Channel, alice: Account) -> None:
    users = user_pb2_grpc.UserServiceStub(channel)
    md = (("authorization", f"Bearer {_sign(_claims(alice), PREVIOUS_JWT_SECRET)}"),)
    assert users.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=md).id == alice.user_id


def test_reasons_tell_expired_not_yet_valid_and_unknown_key_apart(
    http: httpx.Client, alice: Account
) -> None:
    expected = {
        "expired": "TOKEN_EXPIRED",
        "nbf in the future": "TOKEN_NOT_YET_VALID",
        "unknown kid": "UNKNOWN_KEY",
        "refresh typ": "WRONG_TOKEN_TYPE",
        "wrong aud": "INVALID_TOKEN",
    }
    for attack, reason in expected.items():
        headers = {"authorization": f"Bearer {ATTACKS[attack](alice)}"}
        assert_error(http.get("/api/v1/users/me", headers=headers), 401, 16, reason=reason)


def test_a_forged_token_changes_nothing(http: httpx.Client, alice: Account) -> None:
    token = ATTACKS["wrong key, right kid"](alice)
    headers = {"authorization": f"Bearer {token}"}
    assert_error(http.patch("/api/v1/users/me", json={"name": "Mallory"}, headers=headers), 401, 16)
    assert_error(http.delete("/api/v1/users/me", headers=headers), 401, 16)
    me = http.get("/api/v1/users/me", headers=alice.headers)
    assert me.status_code == 200 and me.json()["name"] == "Test"
