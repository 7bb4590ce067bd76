"""Accounts through Envoy: PATCH, password change and delete, on REST and native gRPC."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import grpc
import httpx
import psycopg
import pytest
from todo.v1 import auth_pb2, auth_pb2_grpc, user_pb2, user_pb2_grpc

from tests.e2e.conftest import Account, Stack, register_and_login
from tests.e2e.helpers import assert_error

ME = "/api/v1/users/me"


def _login(http: httpx.Client, account: Account, password: str | None = None) -> httpx.Response:
    body = {"email": account.email, "password": password or account.password}
    return http.post("/api/v1/auth/login", json=body)


def _second_session(http: httpx.Client, account: Account) -> Account:
    body = _login(http, account).json()
    return Account(
        account.user_id,
        account.email,
        account.password,
        body["access_token"],
        body["refresh_token"],
    )


def _dead_on_every_process(stack: Stack, metadata: tuple[tuple[str, str], ...]) -> None:
    """The token is refused by each server process within 1 s (the contract)."""
    for target in stack.worker_targets:
        with grpc.insecure_channel(target) as worker:
            users = user_pb2_grpc.UserServiceStub(worker)
            deadline = time.monotonic() + 1.0
            while True:
                try:
                    users.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=metadata)
                except grpc.RpcError as error:
                    # NOT_FOUND: the token still passed (the revocation has not reached
                    # this process yet) and the user is gone; keep polling until the deadline.
                    if error.code() is not grpc.StatusCode.NOT_FOUND:
                        assert error.code() is grpc.StatusCode.UNAUTHENTICATED, error
                        break
                assert time.monotonic() < deadline, f"token still accepted by {target}"
                time.sleep(0.01)


def _alive_on_every_process(stack: Stack, metadata: tuple[tuple[str, str], ...]) -> None:
    for target in stack.worker_targets:
        with grpc.insecure_channel(target) as worker:
            users = user_pb2_grpc.UserServiceStub(worker)
            users.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=metadata)


def _task_count(database_url: str, user_id: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM tasks WHERE user_id = %s", (user_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


# --- PATCH /api/v1/users/{user_id} ---------------------------------------------------------


def test_patch_changes_only_the_fields_sent(http: httpx.Client, alice: Account) -> None:
    before = http.get(ME, headers=alice.headers).json()
    response = http.patch(ME, json={"timezone": "Europe/Paris"}, headers=alice.headers)
    assert response.status_code == 200, response.text
    after = response.json()
    assert after["timezone"] == "Europe/Paris"
    assert {k: after[k] for k in ("id", "email", "name", "created_at")} == {
        k: before[k] for k in ("id", "email", "name", "created_at")
    }
    assert after["updated_at"] >= before["updated_at"]
    new_email = f"New-{uuid.uuid4().hex[:8]}@Example.com"
    renamed = http.patch(
        f"/api/v1/users/{alice.user_id}",
        json={"name": "  Alice  ", "email": new_email},
        headers=alice.headers,
    ).json()
    assert (renamed["name"], renamed["email"], renamed["timezone"]) == (
        "Alice",
        new_email.lower(),
        "Europe/Paris",
    )
    assert http.patch(ME, json={}, headers=alice.headers).json() == renamed
    relogin = http.post(
        "/api/v1/auth/login", json={"email": new_email.upper(), "password": alice.password}
    )
    assert relogin.status_code == 200


def test_patch_refuses_bad_fields_and_changes_nothing(http: httpx.Client, alice: Account) -> None:
    before = http.get(ME, headers=alice.headers).json()
    bad = http.patch(
        ME, json={"name": " ", "email": "nope", "timezone": "Mars/Olympus"}, headers=alice.headers
    )
    assert_error(bad, 400, 3, reason="INVALID_ACCOUNT", fields=["email", "name", "timezone"])
    half = http.patch(ME, json={"name": "Fine", "timezone": "UTC+5"}, headers=alice.headers)
    assert_error(half, 400, 3, fields=["timezone"])
    assert_error(http.patch(ME, json={"timezone": 5}, headers=alice.headers), 400, 3)
    assert http.get(ME, headers=alice.headers).json() == before


def test_patch_to_a_taken_email_is_409(http: httpx.Client, alice: Account, bob: Account) -> None:
    before = http.get(ME, headers=alice.headers).json()
    taken = http.patch(ME, json={"email": bob.email.upper()}, headers=alice.headers)
    assert_error(taken, 409, 6, reason="EMAIL_TAKEN")
    assert http.get(ME, headers=alice.headers).json() == before


def test_another_users_account_is_403_and_untouched(
    http: httpx.Client, alice: Account, bob: Account
) -> None:
    theirs = f"/api/v1/users/{bob.user_id}"
    before = http.get(ME, headers=bob.headers).json()
    assert_error(http.patch(theirs, json={"name": "x"}, headers=alice.headers), 403, 7)
    password = {"current_password": bob.password, "new_password": "taken over 1"}
    assert_error(http.post(f"{theirs}/password", json=password, headers=alice.headers), 403, 7)
    assert_error(http.delete(theirs, headers=alice.headers), 403, 7)
    assert_error(http.delete(f"/api/v1/users/{uuid.uuid4()}", headers=alice.headers), 403, 7)
    assert http.get(ME, headers=bob.headers).json() == before
    assert _login(http, bob).status_code == 200


# --- POST /api/v1/users/{user_id}/password ------------------------------------------------


def test_password_change_revokes_every_other_session_on_every_process(
    http: httpx.Client, stack: Stack
) -> None:
    account = register_and_login(http)
    other = _second_session(http, account)
    _alive_on_every_process(stack, other.metadata)
    body = {"current_password": account.password, "new_password": "a brand new secret"}
    changed = http.post(f"{ME}/password", json=body, headers=account.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["id"] == account.user_id
    _dead_on_every_process(stack, other.metadata)
    _alive_on_every_process(stack, account.metadata)  # the caller's session stays
    again = http.post("/api/v1/auth/refresh", json={"refresh_token": other.refresh_token})
    assert_error(again, 401, 16)
    assert http.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    ).is_success
    assert_error(_login(http, account), 401, 16)
    assert _login(http, account, "a brand new secret").status_code == 200


def test_wrong_current_password_is_400_and_changes_nothing(
    http: httpx.Client, stack: Stack
) -> None:
    account = register_and_login(http)
    other = _second_session(http, account)
    wrong = {"current_password": "not my password", "new_password": "a brand new secret"}
    response = http.post(f"{ME}/password", json=wrong, headers=account.headers)
    assert_error(response, 400, 3, reason="INCORRECT_PASSWORD", fields=["current_password"])
    short = {"current_password": account.password, "new_password": "short"}
    response = http.post(f"{ME}/password", json=short, headers=account.headers)
    assert_error(response, 400, 3, fields=["new_password"])
    missing = http.post(f"{ME}/password", json={}, headers=account.headers)
    assert_error(missing, 400, 3, fields=["current_password", "new_password"])
    _alive_on_every_process(stack, other.metadata)
    assert _login(http, account).status_code == 200


# --- DELETE /api/v1/users/{user_id} -------------------------------------------------------


def test_delete_user_everywhere(http: httpx.Client, stack: Stack, database_url: str) -> None:
    account = register_and_login(http)
    other = _second_session(http, account)
    for title in ("one", "two"):
        created = http.post(f"{ME}/tasks", json={"title": title}, headers=account.headers)
        assert created.status_code == 201
    assert _task_count(database_url, account.user_id) == 2

    deleted = http.delete(ME, headers=account.headers)
    assert deleted.status_code == 204 and deleted.content == b""

    _dead_on_every_process(stack, account.metadata)
    _dead_on_every_process(stack, other.metadata)
    assert_error(http.get(ME, headers=other.headers), 401, 16, reason="TOKEN_REVOKED")
    refresh = http.post("/api/v1/auth/refresh", json={"refresh_token": other.refresh_token})
    assert_error(refresh, 401, 16)
    assert_error(_login(http, account), 401, 16)
    assert _task_count(database_url, account.user_id) == 0
    again = http.post(
        "/api/v1/auth/register",
        json={"email": account.email, "password": "another password", "name": "Again"},
    )
    assert again.status_code == 201 and again.json()["id"] != account.user_id


# --- the same over native gRPC (through Envoy and straight to a process) ------------------


@pytest.fixture(params=["envoy", "direct"])
def ch(
    request: pytest.FixtureRequest, channel: grpc.Channel, direct_channel: grpc.Channel
) -> grpc.Channel:
    return channel if request.param == "envoy" else direct_channel


def _grpc_account(ch: grpc.Channel) -> tuple[str, tuple[tuple[str, str], ...]]:
    auth = auth_pb2_grpc.AuthServiceStub(ch)
    email = f"ga-{uuid.uuid4().hex[:10]}@example.com"
    auth.Register(auth_pb2.RegisterRequest(email=email, password="password1", name="G"))
    tokens = auth.Login(auth_pb2.LoginRequest(email=email, password="password1"))
    return email, (("authorization", f"Bearer {tokens.access_token}"),)


def _code(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


def test_grpc_account_lifecycle(ch: grpc.Channel) -> None:
    email, md = _grpc_account(ch)
    users = user_pb2_grpc.UserServiceStub(ch)
    updated = users.UpdateUser(user_pb2.UpdateUserRequest(user_id="me", name="Gee"), metadata=md)
    assert (updated.name, updated.email, updated.timezone) == ("Gee", email, "UTC")
    empty_name = user_pb2.UpdateUserRequest(user_id="me", name="")  # present, so checked
    assert (
        _code(lambda: users.UpdateUser(empty_name, metadata=md)) is grpc.StatusCode.INVALID_ARGUMENT
    )
    bad_zone = user_pb2.UpdateUserRequest(user_id="me", timezone="Nowhere/Land")
    assert (
        _code(lambda: users.UpdateUser(bad_zone, metadata=md)) is grpc.StatusCode.INVALID_ARGUMENT
    )
    wrong = user_pb2.ChangePasswordRequest(
        user_id="me", current_password="not it at all", new_password="password2"
    )
    assert (
        _code(lambda: users.ChangePassword(wrong, metadata=md)) is grpc.StatusCode.INVALID_ARGUMENT
    )
    right = user_pb2.ChangePasswordRequest(
        user_id="me", current_password="password1", new_password="password2"
    )
    assert users.ChangePassword(right, metadata=md).email == email
    users.DeleteUser(user_pb2.DeleteUserRequest(user_id="me"), metadata=md)
    gone = user_pb2.GetUserRequest(user_id="me")
    deadline = time.monotonic() + 1.0
    while True:  # this process may not have heard yet (within 1 s)
        code = _code(lambda: users.GetUser(gone, metadata=md))
        if code is grpc.StatusCode.UNAUTHENTICATED or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert code is grpc.StatusCode.UNAUTHENTICATED
