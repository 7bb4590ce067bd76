"""The edge on the main (plain HTTP) stack: CORS, security headers, size limits, gzip."""

from __future__ import annotations

import grpc
import httpx
from todo.v1 import user_pb2, user_pb2_grpc

from tests.e2e.conftest import ALLOWED_ORIGIN, Account
from tests.e2e.helpers import assert_error

ME = "/api/v1/users/me"
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}


def _preflight(http: httpx.Client, origin: str) -> httpx.Response:
    return http.options(
        ME,
        headers={
            "origin": origin,
            "access-control-request-method": "PATCH",
            "access-control-request-headers": "authorization, content-type",
        },
    )


def test_cors_allows_the_configured_origin_only(http: httpx.Client, alice: Account) -> None:
    allowed = _preflight(http, ALLOWED_ORIGIN)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "PATCH" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in allowed.headers  # no cookies, ever
    other = _preflight(http, "https://evil.example")
    assert "access-control-allow-origin" not in other.headers
    got = http.get(ME, headers={**alice.headers, "origin": ALLOWED_ORIGIN})
    assert got.status_code == 200 and got.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "retry-after" in got.headers["access-control-expose-headers"]
    assert "ratelimit-remaining" in got.headers["access-control-expose-headers"]
    foreign = http.get(ME, headers={**alice.headers, "origin": "https://evil.example"})
    assert "access-control-allow-origin" not in foreign.headers


def test_clients_without_origin_are_unaffected(
    http: httpx.Client, channel: grpc.Channel, alice: Account
) -> None:
    assert http.get(ME, headers=alice.headers).status_code == 200
    patched = http.patch(ME, json={"name": "No Origin"}, headers=alice.headers)
    assert patched.status_code == 200  # no CSRF filter: an Origin-less POST/PATCH is fine
    users = user_pb2_grpc.UserServiceStub(channel)
    got = users.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=alice.metadata)
    assert got.name == "No Origin"


def test_security_headers_on_every_kind_of_response(http: httpx.Client, alice: Account) -> None:
    responses = [
        http.get(ME, headers=alice.headers),  # success
        http.get(ME),  # the server's 401
        http.get("/api/v1/nope"),  # Envoy's 404
        http.post("/api/v1/auth/login", json={"email": "x@example.com", "password": "12345678"}),
        http.post(f"{ME}/tasks", content=b"x" * (2 * 1024 * 1024), headers=alice.headers),
    ]
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.request.url, name)
        assert "strict-transport-security" not in response.headers  # plain HTTP: no HSTS
    assert responses[3].headers["cache-control"] == "no-store"


def test_a_2_mib_body_is_413_and_creates_nothing(http: httpx.Client, alice: Account) -> None:
    big = b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    headers = {**alice.headers, "content-type": "application/json"}
    assert_error(http.post(f"{ME}/tasks", content=big, headers=headers), 413, 8)
    assert_error(http.patch(ME, content=big, headers=headers), 413, 8)
    assert http.get(f"{ME}/tasks", headers=alice.headers).json()["tasks"] == []
    assert http.get(ME, headers=alice.headers).json()["name"] == "Test"


def test_oversized_headers_are_431(http: httpx.Client, alice: Account) -> None:
    response = http.get(ME, headers={**alice.headers, "x-padding": "p" * 40 * 1024})
    assert_error(response, 431, 8, reason="HEADERS_TOO_LARGE")


def test_large_json_is_gzipped_on_request_and_tokens_never(
    http: httpx.Client, alice: Account
) -> None:
    for i in range(12):
        http.post(f"{ME}/tasks", json={"title": f"task number {i} " * 5}, headers=alice.headers)
    raw = http.get(f"{ME}/tasks", headers={**alice.headers, "accept-encoding": "gzip"})
    assert raw.status_code == 200 and raw.headers["content-encoding"] == "gzip"
    assert len(raw.json()["tasks"]) == 12  # httpx decodes it
    assert "accept-encoding" in raw.headers["vary"].lower()
    plain = http.get(f"{ME}/tasks", headers={**alice.headers, "accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    small = http.get(ME, headers={**alice.headers, "accept-encoding": "gzip"})
    assert "content-encoding" not in small.headers  # under the threshold
    long_name = {"name": "N" * 100}
    assert http.patch(ME, json=long_name, headers=alice.headers).status_code == 200
    login = http.post(
        "/api/v1/auth/login",
        json={"email": alice.email, "password": alice.password},
        headers={"accept-encoding": "gzip"},
    )
    assert login.status_code == 200 and "content-encoding" not in login.headers
    assert int(login.headers["content-length"]) > 1024  # over the threshold, yet plain
