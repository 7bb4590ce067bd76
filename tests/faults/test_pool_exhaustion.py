"""Every pooled connection busy: callers wait up to the bound, then get 503 / UNAVAILABLE."""

from __future__ import annotations

import concurrent.futures
import time

import grpc
import httpx
import psycopg
import pytest
from todo.v1 import task_service_pb2 as ts
from todo.v1 import task_service_pb2_grpc as ts_grpc

from tests.e2e.conftest import register_and_login
from tests.e2e.helpers import assert_error
from tests.faults.conftest import SERVING, summary
from tests.faults.load import _grpc_reason

pytestmark = pytest.mark.faults
CALLS = 8


def test_pool_exhaustion_is_a_bounded_wait_then_503(fault_stack) -> None:
    env = {"TODO_DB_POOL_MIN": "1", "TODO_DB_POOL_MAX": "2", "TODO_DB_ACQUIRE_TIMEOUT_S": "1"}
    with fault_stack(env) as stack:
        with httpx.Client(base_url=stack.rest, timeout=10) as http:
            account = register_and_login(http)

        def rest_list() -> tuple[float, httpx.Response]:
            started = time.monotonic()
            with httpx.Client(base_url=stack.rest, timeout=30, headers=account.headers) as client:
                response = client.get("/api/v1/users/me/tasks")
            return time.monotonic() - started, response

        def grpc_list() -> tuple[float, grpc.RpcError | None]:
            started = time.monotonic()
            with grpc.insecure_channel(stack.grpc_target) as channel:
                tasks = ts_grpc.TaskServiceStub(channel)
                try:
                    tasks.ListTasks(
                        ts.ListTasksRequest(user_id="me"), metadata=account.metadata, timeout=30
                    )
                    error = None
                except grpc.RpcError as exc:
                    error = exc
            return time.monotonic() - started, error

        with (
            psycopg.connect(stack.database_url) as locker,
            concurrent.futures.ThreadPoolExecutor(2 * CALLS) as pool,
        ):
            locker.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")  # every list now waits
            rest = [pool.submit(rest_list) for _ in range(CALLS)]
            native = [pool.submit(grpc_list) for _ in range(CALLS)]
            time.sleep(3.0)
            done_rest = [f for f in rest if f.done()]
            refused_rest = [f.result() for f in done_rest]
            refused_grpc = [f.result() for f in native if f.done()]
            healthy = [stack.worker_health(i) for i in range(len(stack.worker_ports))]
            locker.commit()
            finished_rest = [f.result(timeout=30) for f in rest if f not in done_rest]
            finished_grpc = [f.result(timeout=30) for f in native]

        # The lock holds at most 2 connections per process; everything else was refused in time.
        assert len(refused_rest) + len(refused_grpc) >= 2 * CALLS - 2 * len(stack.worker_ports)
        for elapsed, response in refused_rest:
            assert_error(response, 503, 14, "DATABASE_BUSY")
            assert 0.9 <= elapsed < 3.0, elapsed  # 1 s bound; the box is shared
        for elapsed, error in refused_grpc:
            assert error is not None and error.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
            assert _grpc_reason(error) == "DATABASE_BUSY"
            assert 0.9 <= elapsed < 3.0, elapsed  # 1 s bound; the box is shared
        assert healthy == [SERVING] * len(stack.worker_ports)  # a busy pool is not an outage
        # Those holding a connection went on once the lock was gone.
        waited = [r.status_code for _, r in finished_rest if r.status_code == 200]
        waited += [0 for _, e in finished_grpc if e is None]
        assert waited
        summary(
            refused=len(refused_rest) + len(refused_grpc),
            slowest_refusal_s=round(max(e for e, _ in [*refused_rest, *refused_grpc]), 3),
        )
