"""A login flood against a stack whose password hashing is small enough to saturate.

Each server process hashes one password at a time with one more waiting at most 300 ms
(`TODO_HASH_CONCURRENCY=1`, `TODO_HASH_QUEUE=1`), at bcrypt cost 10, and the credential
throttles are off, as if the flood came from thousands of addresses. Excess attempts must
be refused fast with 429 PASSWORD_CHECKS_BUSY and Retry-After, identically for a right and
a wrong password, while a user who retries as told still logs in. Envoy lets through only
what the processes can take (2 x (1 + 1) Register and Login calls) and refuses the rest
itself, with the answer a process would give, on REST, gRPC and gRPC-web alike.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import psutil
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from todo.v1 import auth_pb2, auth_pb2_grpc

from server.auth import hash_quota
from tests.e2e.conftest import WORKERS, running_stack
from tests.e2e.helpers import assert_error

PASSWORD = "correct horse battery"
FLOODERS = 8
REFUSAL_MEDIAN_S = 0.75
"""Refusals must be fast: the queue wait is at most 300 ms (generous for a shared box)."""
LOGIN_BOUND_S = 60.0
"""A patient user gets in within this while the flood runs. Generous: hashing runs only on
CPU nothing else wants, and on a shared machine other tenants may want nearly all of it."""


@pytest.fixture(scope="module")
def flooded(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("flood")
    env = {
        "TODO_BCRYPT_ROUNDS": "10",
        "TODO_HASH_CONCURRENCY": "1",
        "TODO_HASH_QUEUE": "1",
        "TODO_HASH_MAX_WAIT_MS": "300",
        "TODO_THROTTLE_PER_ADDRESS": "0",
        "TODO_THROTTLE_PER_ACCOUNT_ADDRESS": "0",
        "TODO_THROTTLE_PER_ACCOUNT": "0",
    }

    def healthy(base: int) -> bool:
        url = f"http://127.0.0.1:{base + WORKERS}/healthz"
        return httpx.get(url, timeout=1).status_code == 200

    with running_stack(data, database_url, env, healthy) as base:
        yield f"http://127.0.0.1:{base + WORKERS}"


def _login(http: httpx.Client, email: str, password: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = http.post("/api/v1/auth/login", json={"email": email, "password": password})
    return response, time.monotonic() - started


class Flood:
    """Connections that keep trying wrong passwords, pausing only as Retry-After asks."""

    def __init__(self, url: str, email: str) -> None:
        self.url = url
        self.email = email
        self.stop = threading.Event()
        self.refusal_times: list[float] = []
        self.answers: list[int] = []
        self.pool = concurrent.futures.ThreadPoolExecutor(FLOODERS)
        self.futures = [self.pool.submit(self._flood) for _ in range(FLOODERS)]

    def _flood(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stop.is_set():
                response, elapsed = _login(http, self.email, f"wrong-{uuid.uuid4().hex}")
                self.answers.append(response.status_code)
                if response.status_code == 429:
                    self.refusal_times.append(elapsed)
                    self.stop.wait(int(response.headers["retry-after"]))

    def end(self) -> None:
        self.stop.set()
        for future in self.futures:
            future.result()
        self.pool.shutdown()


def _register(http: httpx.Client) -> str:
    email = f"flood-{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": "Flood"}
    for _ in range(50):  # the registration hashes too, so it may be refused: retry
        created = http.post("/api/v1/auth/register", json=body)
        if created.status_code != 429:
            break
        time.sleep(int(created.headers["retry-after"]))
    assert created.status_code == 201, created.text
    return email


def test_a_flood_is_refused_fast_and_alike_while_a_patient_user_gets_in(flooded: str) -> None:
    with httpx.Client(base_url=flooded, timeout=30) as http:
        victim = _register(http)
        user = _register(http)
        flood = Flood(flooded, victim)
        try:
            time.sleep(1.0)
            burst = _burst(flooded, user)
            got_in_after = _patient_login(http, user)
        finally:
            flood.end()
    refused = [(r, pw) for r, pw in zip(burst, _passwords(), strict=True) if r.status_code == 429]
    assert len(refused) >= len(burst) // 2, [r.status_code for r in burst]
    assert {pw == PASSWORD for _, pw in refused} == {True, False}, "both kinds refused"
    assert len({_refusal(r) for r, _ in refused}) == 1  # right or wrong password: one answer
    assert flood.refusal_times, flood.answers
    assert statistics.median(flood.refusal_times) < REFUSAL_MEDIAN_S, flood.refusal_times
    assert 401 in flood.answers  # the flood still gets its share of password checks
    assert got_in_after < LOGIN_BOUND_S


def test_envoy_refuses_the_excess_as_a_server_process_would(flooded: str) -> None:
    """Past what the processes can take at once, Envoy refuses Register and Login itself
    (todo_hashing's circuit breaker), on REST and native gRPC alike, with the very answer a
    server process gives when it refuses one, and counts each refusal."""
    base = int(flooded.rsplit(":", 1)[1]) - WORKERS
    edge = f"127.0.0.1:{base + WORKERS}"
    with httpx.Client(base_url=flooded, timeout=30) as http:
        email = _register(http)
    counted_before = _envoy_refusals(base)
    by_envoy = [r for r in _burst(flooded, email) if r.headers.get("x-envoy-overloaded")]
    by_envoy_grpc = [e for e in _grpc_burst(edge, email) if _overloaded(e)]
    assert by_envoy, "no REST refusal from Envoy"
    assert by_envoy_grpc, "no gRPC refusal from Envoy"
    assert _envoy_refusals(base) - counted_before >= len(by_envoy) + len(by_envoy_grpc)

    with _flooding_the_processes(base, email):  # past Envoy: the processes refuse
        by_server = _retry_until(lambda: _login_via(flooded, email), _refused_by_server)
        by_server_grpc = _retry_until(
            lambda: _grpc_password_call(edge, email, 0), _refused_by_server
        )
    assert isinstance(by_server, httpx.Response)
    assert isinstance(by_server_grpc, grpc.RpcError)
    assert {_refusal(r) for r in by_envoy} == {_refusal(by_server)}
    assert {_grpc_refusal(e) for e in by_envoy_grpc} == {_grpc_refusal(by_server_grpc)}
    # gRPC-web (browsers): a trailers-only reply with the same status, details and metadata
    _, message, details, retry_after = _grpc_refusal(by_server_grpc)
    by_envoy_web = [r for r in _grpc_web_burst(flooded) if r.headers.get("x-envoy-overloaded")]
    assert by_envoy_web, "no gRPC-web refusal from Envoy"
    for refusal in by_envoy_web:
        assert refusal.status_code == 200 and refusal.content == b"", refusal
        assert refusal.headers["grpc-status"] == "8"
        assert refusal.headers["grpc-message"] == message
        sent = refusal.headers["grpc-status-details-bin"]
        assert base64.b64decode(sent + "=" * (-len(sent) % 4)) == details
        assert refusal.headers["retry-after"] == retry_after


def _grpc_web_burst(url: str) -> list[httpx.Response]:
    """Logins at once as a gRPC-web client sends them, more than the stack hashes at a time."""

    def attempt(i: int) -> httpx.Response:
        request = auth_pb2.LoginRequest(email="web@example.com", password=f"wrong-{i}-pw")
        message = request.SerializeToString()
        frame = b"\x00" + len(message).to_bytes(4, "big") + message
        headers = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}
        with httpx.Client(base_url=url, timeout=30) as http:
            return http.post("/todo.v1.AuthService/Login", content=frame, headers=headers)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        return list(pool.map(attempt, range(16)))


def _envoy_refusals(base: int) -> int:
    """Envoy's count of the calls todo_hashing's circuit breaker refused."""
    admin = f"http://127.0.0.1:{base + WORKERS + 1}"
    stat = "cluster.todo_hashing.upstream_rq_active_overflow"
    text = httpx.get(f"{admin}/stats", params={"filter": f"^{stat}$"}, timeout=5).text
    return int(text.split(":")[1])


def _grpc_password_call(target: str, email: str, i: int) -> object:
    """A Login (even i) or a Register (odd i) over native gRPC: the reply or the RpcError."""
    with grpc.insecure_channel(target) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        try:
            if i % 2:
                fresh = f"flood-{uuid.uuid4().hex[:12]}@example.com"
                return stub.Register(
                    auth_pb2.RegisterRequest(email=fresh, password=PASSWORD, name="Flood")
                )
            return stub.Login(auth_pb2.LoginRequest(email=email, password=f"wrong-{i}-pw"))
        except grpc.RpcError as error:
            return error


def _grpc_burst(target: str, email: str) -> list[grpc.RpcError]:
    """Logins and registrations at once over gRPC, more than the stack hashes at a time."""
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: _grpc_password_call(target, email, i), range(16)))
    return [a for a in answers if isinstance(a, grpc.RpcError)]


def _overloaded(error: grpc.RpcError) -> bool:
    """Whether Envoy gave this answer itself (it marks a circuit breaker's refusal)."""
    return any(m.key == "x-envoy-overloaded" for m in error.trailing_metadata() or ())


def _grpc_refusal(error: grpc.RpcError) -> tuple[object, ...]:
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
    metadata = {m.key: m.value for m in error.trailing_metadata() or ()}
    status = rpc_status.from_call(error)
    assert status is not None  # from_call has checked it against code and message
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info.reason == "PASSWORD_CHECKS_BUSY"
    details = metadata["grpc-status-details-bin"]
    return error.code(), error.details(), details, metadata["retry-after"]


def _login_via(url: str, email: str) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=30) as http:
        return _login(http, email, "wrong password!")[0]


def _refused_by_server(answer: object) -> bool:
    if isinstance(answer, httpx.Response):
        return answer.status_code == 429 and "x-envoy-overloaded" not in answer.headers
    return (
        isinstance(answer, grpc.RpcError)
        and answer.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        and not _overloaded(answer)
    )


def _retry_until(attempt: Callable[[], object], done: Callable[[object], bool]) -> object:
    for _ in range(100):
        answer = attempt()
        if done(answer):
            return answer
        time.sleep(0.05)
    pytest.fail(f"no answer as wanted in 100 attempts; the last: {answer!r}")


@contextlib.contextmanager
def _flooding_the_processes(base: int, email: str) -> Iterator[None]:
    """Wrong-password logins sent to every server process directly, not through Envoy, by
    more connections than a process hashes and queues, until the block ends."""
    stop = threading.Event()

    def flood(target: str) -> None:
        with grpc.insecure_channel(target) as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            while not stop.is_set():
                with contextlib.suppress(grpc.RpcError):
                    stub.Login(auth_pb2.LoginRequest(email=email, password="wrong password!"))

    targets = [f"127.0.0.1:{base + i}" for i in range(WORKERS)] * 4
    with concurrent.futures.ThreadPoolExecutor(len(targets)) as pool:
        futures = [pool.submit(flood, target) for target in targets]
        try:
            time.sleep(0.5)
            yield
        finally:
            stop.set()
            for future in futures:
                future.result()


def _passwords() -> list[str]:
    """Half right, half wrong (and one too short: refused the same way)."""
    return [PASSWORD, "wrong password!", PASSWORD, "short", *([PASSWORD, "wrong password!"] * 6)]


def _burst(url: str, email: str) -> list[httpx.Response]:
    """Right and wrong passwords at once, more than the stack hashes at a time."""

    def attempt(password: str) -> httpx.Response:
        with httpx.Client(base_url=url, timeout=30) as http:
            return _login(http, email, password)[0]

    with concurrent.futures.ThreadPoolExecutor(len(_passwords())) as pool:
        return list(pool.map(attempt, _passwords()))


def _refusal(response: httpx.Response) -> tuple[str, str]:
    """A 429 PASSWORD_CHECKS_BUSY as (body, Retry-After), the body's JSON in canonical form:
    Envoy's refusals and the server processes' must be one answer."""
    body = assert_error(response, 429, 8, "PASSWORD_CHECKS_BUSY")
    retry_after = response.headers["retry-after"]
    assert int(retry_after) >= 1
    return json.dumps(body, sort_keys=True), retry_after


def _patient_login(http: httpx.Client, email: str) -> float:
    """Log in as a client should: wait as Retry-After asks. Returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < LOGIN_BOUND_S:
        response, _ = _login(http, email, PASSWORD)
        if response.status_code == 200:
            assert response.json()["access_token"]
            return time.monotonic() - started
        assert response.status_code == 429, response.text
        time.sleep(int(response.headers["retry-after"]))
    pytest.fail(f"no login within {LOGIN_BOUND_S} s during the flood")


@pytest.mark.skipif(os.geteuid() != 0, reason="the hashing quota needs a writable cpu cgroup")
def test_hashing_runs_in_the_launchers_idle_group_under_a_measured_quota(flooded: str) -> None:
    with httpx.Client(base_url=flooded, timeout=30) as http:
        _register(http)  # hashes: every worker that served it has its hashing process
    workers = _workers(flooded)
    launcher = workers[0].parent()
    assert launcher is not None
    mount = hash_quota.cpu_cgroup()
    assert mount is not None
    group = mount[0] / f"{hash_quota.PREFIX}{launcher.pid}"
    hashers = [child for worker in workers for child in worker.children()]
    assert hashers, "no hashing process"
    for hasher in hashers:
        assert f"/{group.name}\n" in Path(f"/proc/{hasher.pid}/cgroup").read_text()
    for worker in workers:  # the server processes themselves stay out of it
        assert f"/{group.name}\n" not in Path(f"/proc/{worker.pid}/cgroup").read_text()
    raw = (
        (group / "cpu.max").read_text().split()[0]
        if mount[1]
        else (group / "cpu.cfs_quota_us").read_text().strip()
    )
    cores = int(raw) / hash_quota.PERIOD_US  # "max" or -1 would fail here: no quota set
    assert hash_quota.MIN_CORES <= cores <= (os.cpu_count() or 1) / (1 - 0.1)
    if (group / "cpu.idle").exists():  # Linux 5.15+: any woken request preempts a hasher
        assert (group / "cpu.idle").read_text().strip() == "1"


def _workers(url: str) -> list[psutil.Process]:
    """The stack's server processes, found by the ports they listen on."""
    base = int(url.rsplit(":", 1)[1]) - WORKERS
    return [
        psutil.Process(c.pid)
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and base <= c.laddr.port < base + WORKERS and c.pid
    ]


SATURATED_LOGIN_BOUND_S = 20.0
"""A login while other work keeps every core busy: seconds at the lowest weight (2-5 s at
bcrypt cost 12 on the 2-core test box); an idle group there gets no CPU at all (504)."""


@pytest.mark.skipif(os.geteuid() != 0, reason="the hashing quota needs a writable cpu cgroup")
def test_a_login_still_ends_while_other_work_takes_every_core(flooded: str) -> None:
    with httpx.Client(base_url=flooded, timeout=60) as http:
        email = _register(http)
        busy = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
            for _ in range(2 * (os.cpu_count() or 1) + 2)
        ]
        try:
            time.sleep(6.0)  # the quota controller probes every 5 s and sees no idle CPU
            hashers = [child for worker in _workers(flooded) for child in worker.children()]
            pinned = {frozenset(os.sched_getaffinity(h.pid)) for h in hashers}
            got_in = _patient_login(http, email)
        finally:
            for process in busy:
                process.kill()
                process.wait()
    assert got_in < SATURATED_LOGIN_BOUND_S
    # Its least quota needs one CPU: the hashers are kept on the launcher's last one.
    assert hashers and pinned == {frozenset({max(os.sched_getaffinity(0))})}, pinned
