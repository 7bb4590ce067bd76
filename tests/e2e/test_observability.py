"""Observability end to end, checked by real consumers.

One stack with JSON logs, the metrics endpoint, and traces exported to an in-test OTLP
TraceService; a real Prometheus scrapes it. Every id is followed from the client through
Envoy's access log, the server's lines and the exported spans.
"""

from __future__ import annotations

import dataclasses
import secrets
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
import pytest
from todo.v1 import task_service_pb2, task_service_pb2_grpc

from server import edge
from server.config import Settings
from server.observability import exposition
from tests.e2e.conftest import WORKERS, Account, register_and_login, running_stack
from tests.e2e.observability_support import (
    Prometheus,
    Span,
    TraceReceiver,
    eventually,
    free_port,
    json_lines,
    otlp_receiver,
    scrape,
    total,
)

pytestmark = pytest.mark.e2e
ORIGIN = "https://app.example.com"
GET_TASK = "/todo.v1.TaskService/GetTask"


@dataclasses.dataclass(frozen=True)
class ObsStack:
    rest: str
    grpc_target: str
    base: int
    metrics_port: int
    admin_port: int
    data: Path
    spans: TraceReceiver

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def server_lines(self) -> list[dict[str, Any]]:
        return json_lines(self.data / "stack.log")

    def envoy_lines(self) -> list[dict[str, Any]]:
        return json_lines(self.data / "envoy-access.log")

    def metrics(self) -> dict[Any, float]:
        return scrape(self.metrics_url)


@pytest.fixture(scope="module")
def obs(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObsStack]:
    data = tmp_path_factory.mktemp("obs")
    metrics_port = free_port()
    with otlp_receiver() as (receiver, otlp_port):
        env = {
            "TODO_LOG_FORMAT": "json",
            "TODO_LOG_LEVEL": "INFO",
            "TODO_METRICS_PORT": str(metrics_port),
            "TODO_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
            "TODO_TRACE_SAMPLE_PERCENT": "100",
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # the SDK's batch exporter: export quickly
            "TODO_CORS_ORIGINS": ORIGIN,
            "TODO_USER_RATE_LIMIT": "1000000",
            "TODO_USER_RATE_BURST": "100000",
            "TODO_THROTTLE_PER_ADDRESS": "0",
            "TODO_THROTTLE_PER_ACCOUNT_ADDRESS": "5",
            "TODO_THROTTLE_PER_ACCOUNT": "1000",
        }

        def healthy(base: int) -> bool:
            return httpx.get(f"http://127.0.0.1:{base + WORKERS}/healthz", timeout=1).is_success

        with running_stack(data, database_url, env, healthy) as base:
            yield ObsStack(
                rest=f"http://127.0.0.1:{base + WORKERS}",
                grpc_target=f"127.0.0.1:{base + WORKERS}",
                base=base,
                metrics_port=metrics_port,
                admin_port=base + WORKERS + 1,
                data=data,
                spans=receiver,
            )


@pytest.fixture(scope="module")
def client(obs: ObsStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=obs.rest, timeout=15) as http:
        yield http


@pytest.fixture
def user(client: httpx.Client) -> Account:
    return register_and_login(client)


def _task(client: httpx.Client, user: Account, title: str = "observed task") -> str:
    created = client.post("/api/v1/users/me/tasks", json={"title": title}, headers=user.headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def _check_one_trace(obs: ObsStack, trace_id: str, request_id: str, rpc: str) -> None:
    """Envoy's line, the server's lines and the spans share the trace id and request id."""
    envoy = eventually(
        lambda: [ln for ln in obs.envoy_lines() if ln.get("request_id") == request_id],
        what="Envoy access line",
    )
    assert envoy[0]["trace_id"] == trace_id
    assert envoy[0]["logger"] == "envoy.access" and envoy[0]["upstream_host"]
    server = [ln for ln in obs.server_lines() if ln.get("request_id") == request_id]
    assert server, "no server line with the request id"
    assert {ln["trace_id"] for ln in server} == {trace_id}
    access = [ln for ln in server if ln["logger"] == "todo.access"]
    assert len(access) == 1 and access[0]["rpc"] == rpc and access[0]["code"] == "OK"
    assert access[0]["user_id"] and access[0]["duration_ms"] > 0

    def spans() -> list[Span] | None:
        found = obs.spans.spans(trace_id)
        names = {s.name for s in found}
        wanted = {rpc.lstrip("/"), "usecase GetTask", "db PgTasksRepository.get"}
        envoy_spans = [s for s in found if s.service == "todo-envoy"]
        return found if wanted <= names and envoy_spans else None

    found = eventually(spans, 45, "spans from Envoy and the server")
    rpc_span = next(s for s in found if s.name == rpc.lstrip("/"))
    assert rpc_span.service == "todo-server"
    assert rpc_span.attributes["request_id"] == request_id
    envoy_ids = {s.span_id for s in found if s.service == "todo-envoy"}
    assert rpc_span.parent_span_id in envoy_ids, "the server span continues Envoy's"
    usecase = next(s for s in found if s.name == "usecase GetTask")
    assert usecase.parent_span_id == rpc_span.span_id
    statement = next(s for s in found if s.name == "db PgTasksRepository.get")
    assert statement.attributes["db.system"] == "postgresql"
    assert "SELECT" not in str(statement.attributes)


def test_rest_call_one_trace_one_request_id(
    obs: ObsStack, client: httpx.Client, user: Account
) -> None:
    task_id = _task(client, user)
    trace_id, traceparent = _traceparent()
    response = client.get(
        f"/api/v1/users/me/tasks/{task_id}", headers={**user.headers, "traceparent": traceparent}
    )
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    _check_one_trace(obs, trace_id, request_id, GET_TASK)
    line = next(ln for ln in obs.envoy_lines() if ln.get("request_id") == request_id)
    assert line["method"] == "GET" and line["path"] == f"/api/v1/users/me/tasks/{task_id}"
    assert line["status"] == 200 and line["response_flags"] == "-"


def test_grpc_call_one_trace_one_request_id(
    obs: ObsStack, client: httpx.Client, user: Account
) -> None:
    task_id = _task(client, user)
    trace_id, traceparent = _traceparent()
    with grpc.insecure_channel(obs.grpc_target) as channel:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        _, call = stub.GetTask.with_call(
            task_service_pb2.GetTaskRequest(user_id="me", task_id=task_id),
            metadata=(*user.metadata, ("traceparent", traceparent)),
        )
    request_id = dict(call.initial_metadata())["x-request-id"]
    _check_one_trace(obs, trace_id, request_id, GET_TASK)
    line = next(ln for ln in obs.envoy_lines() if ln.get("request_id") == request_id)
    assert line["path"] == GET_TASK and line["grpc_status"] == 0


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/users/me/tasks", 200),  # transcoded to a gRPC call
        ("/api/v1/users/me/tasks?page_size=many", 400),  # refused by the transcoder: no call
        ("/api/v1/nope", 404),  # no route at all
        ("/docs", 200),  # served by Envoy itself
    ],
)
def test_the_access_log_keeps_no_query_values(
    obs: ObsStack, client: httpx.Client, user: Account, path: str, status: int
) -> None:
    secret = "query-secret-" + secrets.token_hex(6)
    response = client.get(f"{path}{'&' if '?' in path else '?'}q={secret}", headers=user.headers)
    assert response.status_code == status
    request_id = response.headers["x-request-id"]
    line = eventually(
        lambda: [ln for ln in obs.envoy_lines() if ln.get("request_id") == request_id]
    )[0]
    assert line["path"] == path.partition("?")[0]
    assert secret not in (obs.data / "envoy-access.log").read_text()


# --- security events: each provoked, found as a log line and as a counter ---------------


def _events(obs: ObsStack, event: str) -> list[dict[str, Any]]:
    return [ln for ln in obs.server_lines() if ln.get("event") == event]


def _counter(obs: ObsStack, event: str) -> float:
    return total(obs.metrics(), "todo_security_events_total", event=event)


def _provoke(obs: ObsStack, event: str, action: Any, times: int = 1) -> list[dict[str, Any]]:
    lines_before, count_before = len(_events(obs, event)), _counter(obs, event)
    action()
    eventually(lambda: _counter(obs, event) == count_before + times, what=f"{event} counter")
    new = eventually(
        lambda: (
            _events(obs, event)[lines_before:]
            if len(_events(obs, event)) >= lines_before + times
            else None
        ),
        what=f"{event} lines",
    )
    assert len(new) == times and _counter(obs, event) == count_before + times
    assert all(ln["logger"] == "todo.security" and ln["level"] == "warning" for ln in new)
    return new


def test_login_failed_is_one_kind_for_unknown_email_and_wrong_password(
    obs: ObsStack, client: httpx.Client, user: Account
) -> None:
    def fail() -> None:
        for email in (f"nobody-{uuid.uuid4().hex[:8]}@example.com", user.email):
            r = client.post(
                "/api/v1/auth/login", json={"email": email, "password": "wrong-password"}
            )
            assert r.status_code == 401

    unknown, wrong = _provoke(obs, "login_failed", fail, times=2)
    assert unknown.keys() == wrong.keys()
    assert unknown["reason"] == wrong["reason"] == "invalid_credentials"
    assert user.email not in str(wrong) and "wrong-password" not in str(wrong)
    assert unknown["request_id"] and unknown["trace_id"] and unknown["client_address"]


def test_login_throttled(obs: ObsStack, client: httpx.Client, user: Account) -> None:
    refusals = total(
        obs.metrics(), "todo_rate_limit_refusals_total", reason="throttle_account_address"
    )

    def hammer() -> None:  # register and login used 2 of the 5 attempts already
        statuses = []
        while 429 not in statuses and len(statuses) < 10:
            body = {"email": user.email, "password": "nope-nope-1"}
            statuses.append(client.post("/api/v1/auth/login", json=body).status_code)
        assert statuses == [401] * (len(statuses) - 1) + [429], statuses

    _provoke(obs, "login_throttled", hammer)
    after = total(
        obs.metrics(), "todo_rate_limit_refusals_total", reason="throttle_account_address"
    )
    assert after == refusals + 1


def test_refresh_token_reuse(obs: ObsStack, client: httpx.Client, user: Account) -> None:
    def reuse() -> None:
        first = client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
        assert first.status_code == 200
        again = client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
        assert again.status_code == 401

    (line,) = _provoke(obs, "refresh_token_reused", reuse)
    assert line["user_id"] == user.user_id and line["family_size"] == 1


def test_token_rejected_with_its_reason(obs: ObsStack, client: httpx.Client) -> None:
    def reject() -> None:
        r = client.get("/api/v1/users/me", headers={"authorization": "Bearer not.a.jwt"})
        assert r.status_code == 401

    (line,) = _provoke(obs, "token_rejected", reject)
    assert line["reason"] == "invalid_token"
    assert "not.a.jwt" not in str(line)


def test_access_denied_on_a_foreign_user_path(
    obs: ObsStack, client: httpx.Client, user: Account
) -> None:
    other = register_and_login(client)

    def deny() -> None:
        r = client.get(f"/api/v1/users/{other.user_id}/tasks", headers=user.headers)
        assert r.status_code == 403

    (line,) = _provoke(obs, "access_denied", deny)
    assert line["user_id"] == user.user_id and line["reason"] == "not_resource_owner"


def test_password_changed_and_account_deleted(
    obs: ObsStack, client: httpx.Client, user: Account
) -> None:
    def change() -> None:
        body = {"current_password": user.password, "new_password": "another password 2"}
        r = client.post("/api/v1/users/me/password", json=body, headers=user.headers)
        assert r.status_code == 200, r.text

    (changed,) = _provoke(obs, "password_changed", change)
    assert changed["user_id"] == user.user_id

    def delete() -> None:
        assert client.delete("/api/v1/users/me", headers=user.headers).status_code == 204

    (deleted,) = _provoke(obs, "account_deleted", delete)
    assert deleted["user_id"] == user.user_id


def _cors_invalid(obs: ObsStack) -> int:
    text = httpx.get(f"http://127.0.0.1:{obs.admin_port}/stats?filter=cors.origin_invalid").text
    return sum(int(line.rsplit(":", 1)[1]) for line in text.splitlines() if line.strip())


def test_cors_origin_refused_at_the_edge(
    obs: ObsStack, client: httpx.Client, user: Account
) -> None:
    before = _cors_invalid(obs)
    allowed = client.get("/api/v1/users/me", headers={**user.headers, "origin": ORIGIN})
    assert allowed.headers.get("access-control-allow-origin") == ORIGIN
    refused = client.get(
        "/api/v1/users/me", headers={**user.headers, "origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in refused.headers
    request_id = refused.headers["x-request-id"]
    line = eventually(
        lambda: [
            ln
            for ln in obs.envoy_lines()
            if ln.get("event") == "cors_origin_refused" and ln.get("request_id") == request_id
        ],
        what="cors_origin_refused line",
    )[0]
    assert line["origin"] == "https://evil.example" and line["logger"] == "envoy.security"
    assert not [
        ln
        for ln in obs.envoy_lines()
        if ln.get("event") == "cors_origin_refused"
        and ln.get("request_id") == allowed.headers["x-request-id"]
    ]
    assert _cors_invalid(obs) == before + 1


# --- secrets never reach a log line ------------------------------------------------------


def test_no_secret_reaches_any_log_line(obs: ObsStack, client: httpx.Client) -> None:
    password = "Pw-" + secrets.token_hex(8)
    new_password = "Pw2-" + secrets.token_hex(8)
    title = "Title-" + secrets.token_hex(8)
    description = "Desc-" + secrets.token_hex(8)
    search = "Query-" + secrets.token_hex(8)
    email = f"secret-{secrets.token_hex(4)}@example.com"
    reg = client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": "S"}
    )
    assert reg.status_code == 201
    client.post("/api/v1/auth/login", json={"email": email, "password": password + "x"})
    login = client.post("/api/v1/auth/login", json={"email": email, "password": password}).json()
    access, refresh = login["access_token"], login["refresh_token"]
    auth = {"authorization": f"Bearer {access}"}
    task = client.post(
        "/api/v1/users/me/tasks", json={"title": title, "description": description}, headers=auth
    ).json()
    tid = task["id"]
    calls = [
        ("GET", f"/api/v1/users/me/tasks/{tid}", None),
        ("PUT", f"/api/v1/users/me/tasks/{tid}", {"title": title, "description": description}),
        ("PATCH", f"/api/v1/users/me/tasks/{tid}", {"title": title}),
        ("PATCH", f"/api/v1/users/me/tasks/{tid}/complete", {}),
        ("GET", f"/api/v1/users/me/tasks?q={search}", None),
        ("GET", f"/api/v1/users/me/tasks:stream?q={search}", None),
        ("GET", f"/api/v1/users/me/tasks:stats?q={search}", None),
        ("GET", "/api/v1/users/me/tags", None),
        ("GET", "/api/v1/users/me/reminders", None),
        ("POST", "/api/v1/users/me/tasks:batchCreate", {"tasks": [{"title": title}]}),
        ("POST", "/api/v1/users/me/tasks:batchUpdate", {"tasks": [{"id": tid, "title": title}]}),
        ("POST", "/api/v1/users/me/tasks:batchComplete", {"task_ids": [tid]}),
        ("PATCH", "/api/v1/users/me", {"name": "S2"}),
        ("GET", "/api/v1/users/me", None),
        ("POST", "/api/v1/users/me/tasks", {"title": ""}),  # a validation error
        (
            "POST",
            "/api/v1/users/me/password",
            {"current_password": password + "x", "new_password": new_password},
        ),
        (
            "POST",
            "/api/v1/users/me/password",
            {"current_password": password, "new_password": new_password},
        ),
    ]
    for method, path, body in calls:
        r = client.request(method, path, json=body, headers=auth)
        assert r.status_code < 500, (path, r.status_code, r.text)
    with grpc.insecure_channel(obs.grpc_target) as channel:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        stub.GetTask(
            task_service_pb2.GetTaskRequest(user_id="me", task_id=tid),
            metadata=(("authorization", f"Bearer {access}"),),
        )
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})  # reuse
    new_access = refreshed.json().get("access_token", access)
    client.get("/api/v1/users/me", headers={"authorization": f"Bearer {access}x"})  # rejected
    client.post("/api/v1/auth/logout", headers={"authorization": f"Bearer {new_access}"})
    client.delete(f"/api/v1/users/me/tasks/{tid}", headers=auth)
    time.sleep(2.5)  # Envoy flushes its access log every second
    logs = (obs.data / "stack.log").read_text() + (obs.data / "envoy-access.log").read_text()
    for secret in (
        password,
        new_password,
        title,
        description,
        search,
        access,
        refresh,
        new_access,
        email,
    ):
        assert secret not in logs, f"a secret reached the logs: {secret[:12]}..."
    assert "Bearer" not in logs and "authorization" not in logs.lower()


# --- Prometheus scrapes the service and Envoy ------------------------------------------


def test_prometheus_sees_what_the_test_did(
    obs: ObsStack, client: httpx.Client, user: Account, tmp_path: Path
) -> None:
    settings = Settings(metrics_port=obs.metrics_port, envoy_admin_port=obs.admin_port)
    config = tmp_path / "prometheus.yml"
    config.write_text(exposition.scrape_config(settings, interval_s=1))
    prometheus = Prometheus(config, tmp_path)
    try:
        _prometheus_checks(prometheus, obs, client, user)
    finally:
        prometheus.stop()


def _prometheus_checks(
    prom: Prometheus, obs: ObsStack, client: httpx.Client, user: Account
) -> None:
    eventually(lambda: prom.scalar('sum(up{job=~"todo|envoy"})') == 2, 60, "both targets up")
    failed = 'sum(todo_security_events_total{event="login_failed"}) or vector(0)'
    eventually(
        lambda: prom.scalar(failed) is not None and prom.scalar("todo_processes"),
        30,
        "a first scrape",
    )
    time.sleep(1.5)
    before = prom.scalar(failed)
    task_id = _task(client, user)
    for i in range(7):  # distinct unknown emails: no throttle key is hit twice
        r = client.post(
            "/api/v1/auth/login",
            json={
                "email": f"stuffing-{i}-{uuid.uuid4().hex[:6]}@example.com",
                "password": "guess-guess",
            },
        )
        assert r.status_code == 401
    deadline = time.monotonic() + 4
    gets = 0
    with grpc.insecure_channel(obs.grpc_target) as channel:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        while time.monotonic() < deadline:
            assert (
                client.get(f"/api/v1/users/me/tasks/{task_id}", headers=user.headers).status_code
                == 200
            )
            stub.GetTask(
                task_service_pb2.GetTaskRequest(user_id="me", task_id=task_id),
                metadata=user.metadata,
            )
            gets += 2
    assert before is not None
    eventually(lambda: prom.scalar(failed) == before + 7, 30, "7 more failed logins in Prometheus")
    time.sleep(2)
    assert prom.scalar(failed) == before + 7

    rates = {
        r["metric"]["rpc"]: float(r["value"][1])
        for r in prom.query("sum by (rpc) (rate(todo_rpc_requests_total[20s]))")
    }
    assert rates.get(GET_TASK, 0) > 0.5, rates
    assert rates.get("/todo.v1.AuthService/Login", 0) > 0
    buckets = f'todo_rpc_duration_seconds_bucket{{rpc="{GET_TASK}"}}'
    p99 = prom.scalar(f"histogram_quantile(0.99, sum by (le) (rate({buckets}[20s])))")
    assert p99 is not None and 0 < p99 <= 10
    assert prom.scalar("sum(todo_db_pool_max)") == WORKERS * 10  # db_pool_max per process
    size = prom.scalar("sum(todo_db_pool_size)")
    assert size is not None and WORKERS * 2 <= size <= WORKERS * 10
    assert prom.scalar("sum(todo_db_pool_in_use)") is not None
    assert (prom.scalar("sum(todo_db_pool_acquisitions_total)") or 0) >= gets / 2
    assert prom.scalar("sum(todo_rpc_in_flight)") is not None
    assert prom.scalar("todo_processes") == WORKERS
    assert prom.scalar("count(todo_build_info)") == 1
    assert prom.scalar(
        'sum(todo_db_statement_duration_seconds_count{statement="PgTasksRepository.get"})'
    )
    # Envoy's own families, as the alert rules and the dashboard use them
    for name in (
        "envoy_http_downstream_rq_xx",
        "envoy_http_downstream_rq_total",
        "envoy_http_cors_origin_invalid",
    ):
        assert prom.query(f'{name}{{envoy_http_conn_manager_prefix="edge"}}'), name
    assert prom.query(
        'envoy_cluster_upstream_rq_active_overflow{envoy_cluster_name="todo_hashing"}'
    )
    groups = {g["name"] for g in prom.get("/api/v1/rules")["data"]["groups"]}
    assert {"todo-security", "todo-slo"} <= groups


# --- a restarted worker does not make a counter go backwards ----------------------------


def test_counters_survive_a_worker_restart(
    obs: ObsStack, client: httpx.Client, user: Account
) -> None:
    _task(client, user)
    name = "todo_rpc_requests_total"
    before = total(obs.metrics(), name)
    worker = _listening(obs.base)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    assert total(obs.metrics(), name) >= before
    eventually(lambda: total(obs.metrics(), "todo_processes") == WORKERS, 90, "the worker back")
    eventually(lambda: client.get("/healthz").status_code == 200, 60, "healthy again")
    assert total(obs.metrics(), name) >= before


def _listening(port: int) -> psutil.Process:
    """The process listening on a loopback port."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    raise AssertionError(f"nothing listens on {port}")


# --- Envoy's own 5xx answers carry a response flag ---------------------------------------


def test_envoy_own_5xx_has_a_response_flag(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]  # no server listens on ports[0]
    settings = Settings(
        data_dir=tmp_path,
        workers=1,
        grpc_port=ports[0],
        envoy_port=ports[1],
        envoy_admin_port=ports[2],
        metrics_port=0,
    )
    config = edge.write_envoy_config(settings)
    log = (tmp_path / "envoy.log").open("wb")
    envoy = subprocess.Popen(
        edge.envoy_command(config, base_id=ports[1]), stdout=log, stderr=log, start_new_session=True
    )
    try:
        url = f"http://127.0.0.1:{ports[1]}/api/v1/users/me/tasks"

        def answered() -> httpx.Response | None:
            try:
                return httpx.get(url, timeout=2)
            except httpx.HTTPError:
                return None

        response = eventually(answered, 30, "Envoy up")
        assert response.status_code == 503
        request_id = response.headers["x-request-id"]
        line = eventually(
            lambda: [
                ln
                for ln in json_lines(tmp_path / "envoy-access.log")
                if ln.get("request_id") == request_id
            ],
            what="the 503's access line",
        )[0]
        # no healthy upstream (UH), or (with panic routing) connection failure and retries spent
        flags = set(line["response_flags"].split(","))
        assert line["status"] == 503 and flags and flags <= {"UH", "UF", "URX"}, line
        assert line["upstream_host"] in (None, f"127.0.0.1:{ports[0]}")
    finally:
        envoy.terminate()
        envoy.wait(15)
        log.close()
