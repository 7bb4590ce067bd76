"""PostgreSQL stopped and started 3 times under a steady REST and gRPC load."""

from __future__ import annotations

import math
import threading
import time

import grpc
import httpx
import pytest
from todo.v1 import task_pb2, user_pb2, user_pb2_grpc
from todo.v1 import task_service_pb2 as ts
from todo.v1 import task_service_pb2_grpc as ts_grpc

from tests.e2e.conftest import register_and_login
from tests.faults.conftest import (
    ROUNDS,
    SERVING,
    FaultStack,
    OwnPostgres,
    acknowledged_missing,
    summary,
)
from tests.faults.load import Load

pytestmark = pytest.mark.faults
RESTARTS = min(3, ROUNDS)
OUTAGE_S = 2.5
SETTLE_S = 3.5
CALL_S = 1.0
"""A read or write of the load answers within this while PostgreSQL is up."""


class HealthLog(threading.Thread):
    """Polls every worker's gRPC health; remembers (time, worker, status)."""

    def __init__(self, stack: FaultStack) -> None:
        super().__init__(daemon=True)
        self._stack = stack
        self.samples: list[tuple[float, int, int | None]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for index in range(len(self._stack.worker_ports)):
                status = self._stack.worker_health(index, timeout=0.3)
                self.samples.append((time.monotonic(), index, status))
            self.halt.wait(0.05)

    def serving_again(self, index: int, since: float) -> float | None:
        """First time after `since` worker `index` answered SERVING."""
        return next(
            (t for t, i, s in self.samples if i == index and t >= since and s == SERVING), None
        )

    def not_serving_between(self, index: int, start: float, end: float) -> bool:
        return any(i == index and start <= t < end and s != SERVING for t, i, s in self.samples)


def test_postgres_restarts_under_load_lose_nothing_and_recover_fast(
    own_postgres: OwnPostgres, fault_stack
) -> None:
    # A long heartbeat: the watch events below can only come from NOTIFY.
    with fault_stack({"TODO_WATCH_HEARTBEAT_S": "60"}) as stack:
        with httpx.Client(base_url=stack.rest, timeout=10) as http:
            account = register_and_login(http)
        health = HealthLog(stack)
        health.start()
        windows = []
        with Load(stack.rest, stack.grpc_target, account.access_token) as load:
            time.sleep(2)
            for _ in range(RESTARTS):
                stopping = time.monotonic()
                own_postgres.stop()
                down = time.monotonic()
                time.sleep(OUTAGE_S)
                starting = time.monotonic()
                own_postgres.start()
                up = time.monotonic()
                windows.append((stopping, down, starting, up))
                time.sleep(SETTLE_S)
        health.halt.set()
        health.join()

        outcomes = load.outcomes
        assert len(outcomes) > 200, len(outcomes)
        assert not [o for o in outcomes if o.server_error], "a 500 / INTERNAL"
        failures = [o for o in outcomes if not o.ok]
        assert all(o.unavailable for o in failures), {(o.status, o.reason) for o in failures}
        assert failures, "the outages were not noticed"

        slowest_failure = 0.0
        after_return = []
        recoveries = []
        next_stops = [w[0] for w in windows[1:]] + [math.inf]
        for (_stopping, down, starting, up), next_stop in zip(windows, next_stops, strict=True):
            during = [o for o in failures if down + 0.2 <= o.started < starting]
            assert during, "no call was made while PostgreSQL was down"
            slowest_failure = max([slowest_failure, *(o.elapsed for o in during)])
            # Calls that began once pg_ctl said PostgreSQL accepts connections again, and
            # early enough to be answered before the next stop (a call that began just
            # before it may rightly meet it).
            until = min(up + SETTLE_S, next_stop - CALL_S)
            after_return += load.failures(since=up, until=until)
            for index in range(len(stack.worker_ports)):
                assert health.not_serving_between(index, down, starting), "health stayed SERVING"
                back = health.serving_again(index, up)
                assert back is not None
                recoveries.append(back - up)
        assert slowest_failure < 1.0, f"a call waited {slowest_failure:.2f}s for its 503"
        assert not after_return, [
            (o.wire, o.kind, o.status, o.reason, [round(o.started - w[3], 2) for w in windows])
            for o in after_return
        ]
        assert max(recoveries) < 2.0, recoveries

        missing = acknowledged_missing(stack.database_url, load.acknowledged)
        assert not missing, f"{len(missing)} acknowledged writes lost"

        _watch_and_revocation_work_on_every_process(stack)
        summary(
            calls=len(outcomes),
            failed=len(failures),
            failed_after_return=len(after_return),
            slowest_failure_s=round(slowest_failure, 3),
            health_back_max_s=round(max(recoveries), 3),
            acknowledged=len(load.acknowledged),
            lost=len(missing),
        )


def _watch_and_revocation_work_on_every_process(stack: FaultStack) -> None:
    """Each process's LISTEN connection is back: a write wakes its watch stream at once,
    and a logout made now is refused by every process."""
    with httpx.Client(base_url=stack.rest, timeout=10) as http:
        account = register_and_login(http)
        md = account.metadata
        for port in stack.worker_ports:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                tasks = ts_grpc.TaskServiceStub(channel)
                events = tasks.WatchTasks(
                    ts.WatchTasksRequest(user_id="me"), metadata=md, timeout=10
                )
                first = next(events)
                assert first.event_type == task_pb2.EVENT_TYPE_HEARTBEAT
                created = http.post(
                    "/api/v1/users/me/tasks", headers=account.headers, json={"title": "after"}
                )
                assert created.status_code == 201, created.text
                started = time.monotonic()
                event = next(events)
                assert event.task_id == created.json()["id"]
                assert time.monotonic() - started < 2.0
                events.cancel()
        logout = http.post("/api/v1/auth/logout", headers=account.headers)
        assert logout.status_code == 204
    time.sleep(0.5)
    for port in stack.worker_ports:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            users = user_pb2_grpc.UserServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                users.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=md, timeout=5)
            assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
