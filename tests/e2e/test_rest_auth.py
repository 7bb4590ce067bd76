"""Auth and user routes over REST through Envoy, including hostile tokens."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import jwt

from server.auth.tokens import key_id
from tests.e2e.conftest import Account, Stack, register_and_login
from tests.e2e.helpers import assert_error, every_process, refused_on_every_process

DEV_SECRET = "dev-only-secret-change-me-0123456789abcdef"  # the stack runs with the default


def test_register_and_login_shapes(http: httpx.Client) -> None:
    email = f"Mixed-{uuid.uuid4().hex[:8]}@Example.com"
    created = http.post(
        "/api/v1/auth/register", json={"email": email, "password": "p" * 8, "name": " N "}
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert set(user) == {"id", "email", "name", "timezone", "created_at", "updated_at"}
    assert (user["email"], user["name"], user["timezone"]) == (email.lower(), "N", "UTC")
    assert created.headers["cache-control"] == "no-store"
    login = http.post("/api/v1/auth/login", json={"email": email.upper(), "password": "p" * 8})
    body = login.json()
    assert login.status_code == 200 and login.headers["cache-control"] == "no-store"
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600
    assert body["user"] == user and body["access_token"] and body["refresh_token"]
    duplicate = http.post(
        "/api/v1/auth/register", json={"email": email, "password": "p" * 8, "name": "N"}
    )
    assert_error(duplicate, 409, 6, reason="EMAIL_TAKEN")


def test_register_names_bad_fields(http: httpx.Client) -> None:
    response = http.post(
        "/api/v1/auth/register", json={"email": "nope", "password": "short", "name": ""}
    )
    assert_error(response, 400, 3, fields=["email", "name", "password"])


def test_login_failures_look_the_same(http: httpx.Client, alice: Account) -> None:
    wrong = http.post(
        "/api/v1/auth/login", json={"email": alice.email, "password": "wrong password"}
    )
    unknown = http.post(
        "/api/v1/auth/login", json={"email": "x" + alice.email, "password": "wrong password"}
    )
    assert assert_error(wrong, 401, 16) == assert_error(unknown, 401, 16)


def test_get_user(http: httpx.Client, alice: Account, bob: Account) -> None:
    me = http.get("/api/v1/users/me", headers=alice.headers)
    assert me.status_code == 200 and me.json()["id"] == alice.user_id
    assert http.get(f"/api/v1/users/{alice.user_id}", headers=alice.headers).json() == me.json()
    assert_error(http.get(f"/api/v1/users/{bob.user_id}", headers=alice.headers), 403, 7)


def _token(key: str = DEV_SECRET, **claims: object) -> str:
    now = dt.datetime.now(dt.UTC)
    payload = {
        "iss": "todo-service",
        "aud": "todo-api",
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "jti": "x",
        "iat": now,
        "nbf": now,
        "exp": now + dt.timedelta(minutes=5),
        "typ": "access",
        **claims,
    }
    return jwt.encode(payload, key, algorithm="HS256", headers={"kid": key_id(DEV_SECRET)})


def test_hostile_tokens_are_401(http: httpx.Client, alice: Account) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    unsigned = jwt.encode({"sub": alice.user_id, "typ": "access"}, key=None, algorithm="none")  # type: ignore[arg-type]
    header, payload, _ = alice.access_token.split(".")
    candidates = {
        "missing": {},
        "not bearer": {"authorization": f"Basic {alice.access_token}"},
        "garbage": {"authorization": "Bearer garbage"},
        "expired": {"authorization": f"Bearer {_token(sub=alice.user_id, exp=past, iat=past)}"},
        "alg none": {"authorization": f"Bearer {unsigned}"},
        "wrong signature": {"authorization": f"Bearer {header}.{payload}.c2lnbmF0dXJl"},
        "refresh as access": {"authorization": f"Bearer {alice.refresh_token}"},
        "other key": {"authorization": f"Bearer {_token(sub=alice.user_id, key='k' * 40)}"},
        "other audience": {"authorization": f"Bearer {_token(sub=alice.user_id, aud='other')}"},
    }
    for name, headers in candidates.items():
        response = http.get("/api/v1/users/me/tasks", headers=headers)
        assert response.status_code == 401, (name, response.text)
        assert_error(response, 401, 16)


def test_logout_revokes_access_and_refresh(http: httpx.Client, stack: Stack) -> None:
    account = register_and_login(http)
    with every_process(stack.worker_targets) as workers:
        out = http.post("/api/v1/auth/logout", headers=account.headers)
        assert out.status_code == 204 and out.content == b""
        refused_on_every_process(workers, account.access_token)
    assert_error(
        http.get("/api/v1/users/me", headers=account.headers), 401, 16, reason="TOKEN_REVOKED"
    )
    again = http.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert_error(again, 401, 16)


def test_refresh_rotates_once(http: httpx.Client, stack: Stack) -> None:
    account = register_and_login(http)
    first = http.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert first.status_code == 200, first.text
    new_access = first.json()["access_token"]
    assert (
        http.get("/api/v1/users/me", headers={"authorization": f"Bearer {new_access}"}).status_code
        == 200
    )
    with every_process(stack.worker_targets) as workers:
        reuse = http.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
        assert_error(reuse, 401, 16)
        refused_on_every_process(workers, new_access)  # the whole family is revoked
    revoked = http.get("/api/v1/users/me", headers={"authorization": f"Bearer {new_access}"})
    assert_error(revoked, 401, 16)
