"""The real stack for end-to-end tests: `python -m server` (2 workers + Envoy).

The stack runs against the test database (see tests/conftest.py) on free
ports, exactly as `make run` starts it, and is stopped with SIGTERM at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from tests.e2e import browser, edge_only
from tests.e2e.browser import Origin

REPO = Path(__file__).resolve().parents[2]
WORKERS = 2
# The browser fixtures (tests/e2e/browser.py), available to every e2e test.
chromium = browser.chromium
app_origin = browser.app_origin
foreign_origin = browser.foreign_origin


PREVIOUS_JWT_SECRET = "the-key-before-the-last-rotation-0123456789"
"""The main stack accepts tokens signed with this key too (by their kid)."""
ALLOWED_ORIGIN = "https://app.example.com"
"""The one CORS origin the main stack allows (besides the browser tests' app origin)."""
EXTRA_CORS_HEADER = "x-tenant"
"""A request header the main stack allows by TODO_CORS_ALLOW_HEADERS (not a built-in one)."""


@dataclasses.dataclass(frozen=True)
class Stack:
    rest: str
    grpc_target: str
    worker_targets: list[str]
    log: Path


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _free_ports(count: int) -> int:
    """A base port with `count` consecutive free ports after it.

    Drawn below Linux's ephemeral range (32768-60999): a port picked there can be taken by
    any outgoing connection on this busy machine before the stack binds it.
    """
    for _ in range(200):
        base = random.randrange(20000, 32000 - count)
        if all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free ports")


@contextlib.contextmanager
def running_stack(
    data: Path, database_url: str, env: dict[str, str], healthy: Callable[[int], bool]
) -> Iterator[int]:
    """Run `python -m server` with WORKERS processes on free ports until the block ends.

    Yields the base port: workers listen on base..base+WORKERS-1, Envoy on base+WORKERS,
    its admin on base+WORKERS+1, the metrics endpoint on base+WORKERS+2.
    `healthy(base)` is polled until it is True (or the stack exits, or 90 s pass).
    """
    base = _free_ports(WORKERS + 3)
    full_env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}:{REPO / 'generated'}",
        "DATABASE_URL": database_url,
        "TODO_DATA_DIR": str(data),
        "TODO_WORKERS": str(WORKERS),
        "TODO_GRPC_PORT": str(base),
        "TODO_ENVOY_PORT": str(base + WORKERS),
        "TODO_ENVOY_ADMIN_PORT": str(base + WORKERS + 1),
        "TODO_METRICS_PORT": str(base + WORKERS + 2),
        "TODO_BCRYPT_ROUNDS": "4",
        "TODO_LOG_LEVEL": "WARNING",
        **env,
    }
    log = data / "stack.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "server"], cwd=REPO, env=full_env, stdout=out, stderr=out
        )
    try:
        _wait(lambda: healthy(base), process, log)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait(healthy: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"stack exited early:\n{log.read_text()[-4000:]}")
        try:
            if healthy():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"stack not healthy in time:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def stack(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, app_origin: Origin
) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("stack")
    env = {
        "TODO_ACCESS_TOKEN_TTL_S": "600",
        "TODO_WATCH_HEARTBEAT_S": "1",
        "TODO_JWT_PREVIOUS_SECRET": PREVIOUS_JWT_SECRET,
        "TODO_CORS_ORIGINS": f"{ALLOWED_ORIGIN},{app_origin.url}",
        "TODO_CORS_ALLOW_HEADERS": EXTRA_CORS_HEADER,
        # Every test here comes from one address: limits far above what the suite does.
        # tests/e2e/test_hardened_edge.py starts a second stack with tiny limits and TLS.
        "TODO_USER_RATE_LIMIT": "1000000",
        "TODO_USER_RATE_BURST": "100000",
        "TODO_THROTTLE_PER_ADDRESS": "0",
        "TODO_THROTTLE_PER_ACCOUNT_ADDRESS": "1000",
        "TODO_THROTTLE_PER_ACCOUNT": "1000",
    }

    def healthy(base: int) -> bool:
        url = f"http://127.0.0.1:{base + WORKERS}/healthz"
        return httpx.get(url, timeout=1).status_code == 200

    with running_stack(data, database_url, env, healthy) as base:
        yield Stack(
            rest=f"http://127.0.0.1:{base + WORKERS}",
            grpc_target=f"127.0.0.1:{base + WORKERS}",
            worker_targets=[f"127.0.0.1:{base + i}" for i in range(WORKERS)],
            log=data / "stack.log",
        )


@dataclasses.dataclass
class Account:
    user_id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.access_token}"}

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.access_token}"),)


@pytest.fixture(scope="session")
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.rest, timeout=10) as client:
        yield client


def register_and_login(http: httpx.Client) -> Account:
    email = f"user-{uuid.uuid4().hex[:12]}@example.com"
    password = "correct horse battery"
    created = http.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": "Test"}
    )
    assert created.status_code == 201, created.text
    login = http.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    body = login.json()
    return Account(
        created.json()["id"], email, password, body["access_token"], body["refresh_token"]
    )


@pytest.fixture
def alice(http: httpx.Client) -> Account:
    return register_and_login(http)


@pytest.fixture
def bob(http: httpx.Client) -> Account:
    return register_and_login(http)


@pytest.fixture(scope="session")
def channel(stack: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(stack.grpc_target) as ch:
        yield ch


@pytest.fixture(scope="session")
def direct_channel(stack: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(stack.worker_targets[0]) as ch:
        yield ch


@pytest.fixture(scope="session")
def lone_edge(tmp_path_factory: pytest.TempPathFactory, app_origin: Origin) -> Iterator[str]:
    """Envoy with no server process behind it (tests/e2e/edge_only.py); yields its URL."""
    data = tmp_path_factory.mktemp("lone-edge")
    with edge_only.running_edge(data, _free_ports(3), (ALLOWED_ORIGIN, app_origin.url)) as url:
        yield url
