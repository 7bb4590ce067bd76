"""A second stack with TLS on and tiny limits: HTTPS and HSTS, gRPC over TLS, throttling.

Its limits (per user 2 requests at once then 2 a second over 2 processes; login,
register and refresh 6 per 4 s per address, 2 per account and address, 4 per account)
are small enough to hit in a few calls, and their windows short enough to see them
recover. Each test talks from its own loopback source address (127.0.0.x), which Envoy
reports as the client address, so the tests do not share per-address buckets.
"""

from __future__ import annotations

import dataclasses
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from playwright.async_api import Browser
from todo.v1 import auth_pb2, auth_pb2_grpc, user_pb2, user_pb2_grpc

from tests.e2e.browser import Origin, open_page
from tests.e2e.conftest import WORKERS, running_stack
from tests.e2e.helpers import ERROR_INFO, assert_error

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
PASSWORD = "correct horse battery"


@dataclasses.dataclass(frozen=True)
class Hardened:
    url: str
    grpc_target: str
    cert: Path

    def client(self, source: str) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.cert))
        transport = httpx.HTTPTransport(local_address=source, verify=context)
        return httpx.Client(base_url=self.url, transport=transport, timeout=10)

    def channel(self) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(self.cert.read_bytes())
        return grpc.secure_channel(self.grpc_target, credentials)


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = [
        *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
        *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        *("-keyout", str(key), "-out", str(cert)),
    ]
    subprocess.run(command, check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def hardened(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, app_origin: Origin
) -> Iterator[Hardened]:
    data = tmp_path_factory.mktemp("hardened")
    cert, key = _certificate(data)
    env = {
        "TODO_TLS_CERT_FILE": str(cert),
        "TODO_TLS_KEY_FILE": str(key),
        "TODO_CORS_ORIGINS": app_origin.url,
        "TODO_USER_RATE_LIMIT": "120",
        "TODO_USER_RATE_BURST": "4",
        "TODO_THROTTLE_PERIOD_S": "4",
        "TODO_THROTTLE_PER_ADDRESS": "6",
        "TODO_THROTTLE_PER_ACCOUNT_ADDRESS": "2",
        "TODO_THROTTLE_PER_ACCOUNT": "4",
        # The throttle tests count attempts against a 4 s window: their logins must not wait
        # for idle CPU on a shared machine (tests/e2e/test_login_flood.py tests the default).
        "TODO_HASH_PRIORITY": "normal",
    }

    def stack_at(base: int) -> Hardened:
        return Hardened(f"https://127.0.0.1:{base + WORKERS}", f"127.0.0.1:{base + WORKERS}", cert)

    def healthy(base: int) -> bool:
        with stack_at(base).client("127.0.0.1") as client:
            return client.get("/healthz").status_code == 200

    with running_stack(data, database_url, env, healthy) as base:
        yield stack_at(base)


def _register(client: httpx.Client) -> str:
    email = f"h-{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": "H"}
    created = client.post("/api/v1/auth/register", json=body)
    assert created.status_code == 201, created.text
    return email


def _login(client: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def _assert_429(response: httpx.Response, reason: str) -> int:
    """A throttled answer: 429, Retry-After, ErrorInfo and RetryInfo; returns the delay."""
    body = assert_error(response, 429, 8, reason=reason)
    delay = int(response.headers["retry-after"])
    assert delay >= 1
    retry = [d for d in body["details"] if d["@type"] == RETRY_INFO]
    assert retry == [{"@type": RETRY_INFO, "retry_delay": f"{delay}s"}], body
    return delay


def _grpc_retry_delay(error: grpc.RpcError) -> int:
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error  # never UNAVAILABLE
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds
    raise AssertionError("no RetryInfo")


def test_https_with_hsts_and_grpc_over_tls(hardened: Hardened) -> None:
    with hardened.client("127.0.0.20") as client:
        email = _register(client)
        token = _login(client, email).json()["access_token"]
        me = client.get("/api/v1/users/me", headers={"authorization": f"Bearer {token}"})
        refused = client.get("/api/v1/users/me")
    for response in (me, refused):
        assert response.headers["strict-transport-security"] == "max-age=31536000"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert me.status_code == 200 and refused.status_code == 401
    with pytest.raises(httpx.HTTPError):
        httpx.get(hardened.url.replace("https:", "http:") + "/healthz", timeout=2)
    with hardened.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        users = user_pb2_grpc.UserServiceStub(channel)
        md = (("authorization", f"Bearer {token}"),)
        assert users.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=md).email == email


def test_an_attacker_is_throttled_the_owner_is_not_and_it_recovers(hardened: Hardened) -> None:
    with hardened.client("127.0.0.21") as owner_client:
        email = _register(owner_client)
    with hardened.client("127.0.0.22") as attacker:
        for _ in range(2):
            assert_error(_login(attacker, email, "guess guess guess"), 401, 16)
        delay = _assert_429(_login(attacker, email, PASSWORD), "TOO_MANY_ATTEMPTS")
        # A spoofed x-forwarded-for does not help: Envoy's own entry, the last, is used.
        spoofed = attacker.post(
            "/api/v1/auth/login",
            json={"email": email, "password": PASSWORD},
            headers={"x-forwarded-for": "203.0.113.99"},
        )
        _assert_429(spoofed, "TOO_MANY_ATTEMPTS")
        with hardened.client("127.0.0.23") as owner:
            assert _login(owner, email).status_code == 200  # the owner, elsewhere, gets in
        time.sleep(delay)
        assert _login(attacker, email).status_code == 200  # the window has moved on


def test_per_address_throttle_and_recovery(hardened: Hardened) -> None:
    with hardened.client("127.0.0.24") as client:
        for _ in range(6):
            unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
            assert_error(_login(client, unknown, "whatever1"), 401, 16)
        delay = _assert_429(_login(client, "someone@example.com", "whatever1"), "TOO_MANY_ATTEMPTS")
        register = client.post(
            "/api/v1/auth/register",
            json={
                "email": f"n-{uuid.uuid4().hex[:8]}@example.com",
                "password": PASSWORD,
                "name": "N",
            },
        )
        _assert_429(register, "TOO_MANY_ATTEMPTS")
        refresh = client.post("/api/v1/auth/refresh", json={"refresh_token": "x.y.z"})
        _assert_429(refresh, "TOO_MANY_ATTEMPTS")
        time.sleep(delay)
        assert_error(_login(client, "someone@example.com", "whatever1"), 401, 16)


def test_login_throttle_over_grpc_is_resource_exhausted(hardened: Hardened) -> None:
    with hardened.client("127.0.0.25") as client:
        email = _register(client)
    with hardened.channel() as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        wrong = auth_pb2.LoginRequest(email=email, password="guess guess guess")
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as caught:
                auth.Login(wrong)
            assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as caught:
            auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
        assert _grpc_retry_delay(caught.value) >= 1
        trailers = dict(caught.value.trailing_metadata() or ())  # type: ignore[attr-defined,arg-type]
        assert int(trailers["retry-after"]) >= 1


def test_per_user_limit_on_both_wires_then_recovery(hardened: Hardened) -> None:
    with hardened.client("127.0.0.26") as client:
        email = _register(client)
        token = _login(client, email).json()["access_token"]
        headers = {"authorization": f"Bearer {token}"}
        answers = [client.get("/api/v1/users/me", headers=headers) for _ in range(8)]
        allowed = [r for r in answers if r.status_code == 200]
        refused = [r for r in answers if r.status_code != 200]
        assert 2 <= len(allowed) <= 5 and refused, [r.status_code for r in answers]
        for response in allowed:
            assert response.headers["ratelimit-limit"] == "4"
            assert 0 <= int(response.headers["ratelimit-remaining"]) <= 4
            assert int(response.headers["ratelimit-reset"]) >= 1
        delay = _assert_429(refused[-1], "RATE_LIMITED")
        assert refused[-1].headers["ratelimit-remaining"] == "0"
        with hardened.channel() as channel:
            users = user_pb2_grpc.UserServiceStub(channel)
            md = (("authorization", f"Bearer {token}"),)
            codes = []
            for _ in range(6):
                try:
                    users.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=md)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    assert _grpc_retry_delay(error) >= 1
                    codes.append(error.code())
            assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
        time.sleep(delay + 0.2)
        assert client.get("/api/v1/users/me", headers=headers).status_code == 200


def test_a_throttled_password_change_changes_nothing(hardened: Hardened) -> None:
    with hardened.client("127.0.0.27") as client:
        email = _register(client)
        token = _login(client, email).json()["access_token"]
        headers = {"authorization": f"Bearer {token}"}
        wrong = {"current_password": "guess guess guess", "new_password": "taken over 123"}
        right = {"current_password": PASSWORD, "new_password": "taken over 123"}
        time.sleep(1.0)  # let the per-user bucket refill: this test is about the throttle
        for _ in range(2):
            response = client.post("/api/v1/users/me/password", json=wrong, headers=headers)
            assert_error(response, 400, 3, fields=["current_password"])
        throttled = client.post("/api/v1/users/me/password", json=right, headers=headers)
        _assert_429(throttled, "TOO_MANY_ATTEMPTS")
        body = throttled.json()
        assert [d["reason"] for d in body["details"] if d["@type"] == ERROR_INFO]
    with hardened.client("127.0.0.28") as elsewhere:
        assert _login(elsewhere, email).status_code == 200  # the password did not change
        assert_error(_login(elsewhere, email, "taken over 123"), 401, 16)


SPA_OVER_TLS = """async (base) => {
  const call = async (method, path, init = {}) => {
    const r = await fetch(base + path, {method, mode: "cors", ...init});
    return {status: r.status, json: await r.json().catch(() => null),
            headers: Object.fromEntries(r.headers.entries())};
  };
  const email = `spa-${crypto.randomUUID().slice(0, 12)}@example.com`;
  const password = "correct horse battery";
  const json = {"content-type": "application/json"};
  const register = await call("POST", "/api/v1/auth/register",
                              {headers: json, body: JSON.stringify({email, password, name: "S"})});
  const login = await call("POST", "/api/v1/auth/login",
                           {headers: json, body: JSON.stringify({email, password})});
  const auth = {authorization: "Bearer " + login.json.access_token};
  const calls = [];
  for (let i = 0; i < 8; i++) calls.push(await call("GET", "/api/v1/users/me", {headers: auth}));
  const notFound = await call("GET", "/nope");
  return {register, login, calls, notFound};
}"""


async def test_an_spa_over_production_tls_reads_every_answer_and_429(
    hardened: Hardened, chromium: Browser, app_origin: Origin
) -> None:
    """Production-like TLS (h2): the same SPA calls work, and the per-user limit's 429 is honest."""
    base = hardened.url.replace("127.0.0.1", "localhost")
    async with open_page(chromium, app_origin, ignore_https_errors=True) as page:
        out = await page.evaluate(SPA_OVER_TLS, base)
    assert (out["register"]["status"], out["login"]["status"]) == (201, 200), out
    statuses = [c["status"] for c in out["calls"]]
    assert 200 in statuses and 429 in statuses, statuses
    for answer in out["calls"]:
        headers = answer["headers"]
        assert headers["x-request-id"] and headers["ratelimit-limit"] == "4"
        remaining = int(headers["ratelimit-remaining"])
        if answer["status"] == 429:
            assert remaining == 0, headers  # never "1" on a refusal
            assert int(headers["retry-after"]) >= 1
            assert answer["json"]["details"][0]["reason"] == "RATE_LIMITED"
    assert out["notFound"]["status"] == 404 and out["notFound"]["headers"]["x-request-id"]
