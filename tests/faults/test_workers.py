"""Server processes killed (SIGKILL) and drained (SIGTERM) under load; the whole stack stopped."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import grpc
import httpx
import psutil
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from todo.v1 import task_pb2
from todo.v1 import task_service_pb2 as ts
from todo.v1 import task_service_pb2_grpc as ts_grpc

from tests.e2e.conftest import register_and_login
from tests.faults.conftest import (
    ROUNDS,
    FaultStack,
    acknowledged_missing,
    send,
    summary,
    wait_for,
)
from tests.faults.load import Load

pytestmark = pytest.mark.faults
DETECTION_S = 2.5
"""Envoy's health checks take a dead process out within this (2 checks, 1 s apart, + slack)."""


@pytest.fixture(scope="module")
def stack(fault_stack) -> Iterator[FaultStack]:
    """One stack for the kill and drain tests (each leaves both workers serving)."""
    with fault_stack({}) as running:
        yield running


def _replaced(stack: FaultStack, index: int, old_pid: int) -> float:
    """Wait for a new process on worker `index`'s port to be SERVING; returns when."""
    wait_for(lambda: stack.worker_pid(index) != old_pid, timeout=60)
    return stack.wait_serving(index)


def _wait_exited(pid: int) -> None:
    def gone() -> bool:
        return not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"

    wait_for(gone, 30)


def _both_routed(stack: FaultStack) -> None:
    wait_for(lambda: stack.envoy_healthy_hosts() == len(stack.worker_ports), timeout=30)


def test_kill_9_of_a_worker_loses_nothing_acknowledged(stack: FaultStack) -> None:
    mark = stack.log_mark()
    _both_routed(stack)  # a fresh stack may have only one process in rotation yet
    with httpx.Client(base_url=stack.rest, timeout=10) as http:
        account = register_and_login(http)
    kills: list[tuple[float, float]] = []
    with Load(stack.rest, stack.grpc_target, account.access_token) as load:
        time.sleep(1.5)
        for round_ in range(ROUNDS):
            index = round_ % len(stack.worker_ports)
            pid = stack.worker_pid(index)
            killed = time.monotonic()
            send(pid, signal.SIGKILL)
            back = _replaced(stack, index, pid)
            kills.append((killed, back))
            _both_routed(stack)
            time.sleep(0.5)
    outcomes = load.outcomes
    failures = [o for o in outcomes if not o.ok]
    assert not [o for o in outcomes if o.server_error]
    assert all(o.unavailable for o in failures), {(o.status, o.reason) for o in failures}
    # Calls in flight on the killed process fail, and so may calls sent to it until Envoy's
    # health checks take it out (2 failed checks, 1 s apart): their retries usually find the
    # other process, but with Maglev hashing not always. After that, nothing fails.
    around = []
    for killed, back in kills:
        around.append(len(load.failures(since=killed - 1.0, until=killed + DETECTION_S)))
        later = load.failures(since=killed + DETECTION_S, until=back)
        assert not later, [(round(o.started - killed, 3), o.wire, o.kind) for o in later]
    missing = acknowledged_missing(stack.database_url, load.acknowledged)
    assert not missing
    log = stack.log_since(mark)
    assert log.count("died (signal SIGKILL); restarting") == ROUNDS
    summary(
        calls=len(outcomes),
        failed=len(failures),
        failed_per_kill=around,
        restart_s=[round(back - killed, 2) for killed, back in kills],
        acknowledged=len(load.acknowledged),
        lost=len(missing),
    )


def test_draining_a_worker_fails_no_call(stack: FaultStack) -> None:
    mark = stack.log_mark()
    _both_routed(stack)  # a fresh stack may have only one process in rotation yet
    with httpx.Client(base_url=stack.rest, timeout=10) as http:
        account = register_and_login(http)
    drains = []
    with Load(stack.rest, stack.grpc_target, account.access_token) as load:
        time.sleep(1.5)
        for round_ in range(ROUNDS):
            index = round_ % len(stack.worker_ports)
            pid = stack.worker_pid(index)
            watch = _WatchOn(stack.worker_ports[index], account.metadata) if round_ == 0 else None
            started = time.monotonic()
            send(pid, signal.SIGTERM)
            _wait_exited(pid)
            exited = time.monotonic()
            back = _replaced(stack, index, pid)
            drains.append((exited - started, back - started))
            if watch is not None:
                watch.check_ended_for_shutdown()
            _both_routed(stack)
            time.sleep(0.5)
    failures = [o for o in load.outcomes if not o.ok]
    assert not failures, [(o.wire, o.kind, o.status, o.reason) for o in failures]
    missing = acknowledged_missing(stack.database_url, load.acknowledged)
    assert not missing
    log = stack.log_since(mark)
    assert log.count("drained and exited; starting a new one") == ROUNDS
    assert "died" not in log and "ERROR" not in log
    summary(
        calls=len(load.outcomes),
        failed=len(failures),
        drain_and_exit_s=[round(d[0], 2) for d in drains],
        back_serving_s=[round(d[1], 2) for d in drains],
    )


def test_sighup_restarts_every_worker_one_by_one_without_failing_a_call(stack: FaultStack) -> None:
    mark = stack.log_mark()
    _both_routed(stack)  # a fresh stack may have only one process in rotation yet
    with httpx.Client(base_url=stack.rest, timeout=10) as http:
        account = register_and_login(http)
    before = [stack.worker_pid(i) for i in range(len(stack.worker_ports))]
    with Load(stack.rest, stack.grpc_target, account.access_token) as load:
        time.sleep(1.0)
        send(stack.supervisor_pid(), signal.SIGHUP)
        last = f"worker on port {stack.worker_ports[-1]} restarted"
        wait_for(lambda: last in stack.log_since(mark), 120)
        after = [stack.worker_pid(i) for i in range(len(stack.worker_ports))]
        time.sleep(0.5)
    failures = [o for o in load.outcomes if not o.ok]
    assert not failures, [(o.wire, o.kind, o.status, o.reason) for o in failures]
    assert all(a != b for a, b in zip(after, before, strict=True))
    assert "rolling restart of 2 workers" in stack.log_since(mark)
    summary(rolling_restart_calls=len(load.outcomes), failed=len(failures))


class _WatchOn:
    """A native watch stream straight to one worker, read in the background."""

    def __init__(self, port: int, metadata: tuple[tuple[str, str], ...]) -> None:
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = ts_grpc.TaskServiceStub(self._channel)
        self._call = stub.WatchTasks(
            ts.WatchTasksRequest(user_id="me"), metadata=metadata, timeout=60
        )
        self.tokens: list[str] = []
        self.error: grpc.RpcError | None = None
        first = next(self._call)
        assert first.event_type == task_pb2.EVENT_TYPE_HEARTBEAT
        self.tokens.append(first.resume_token)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._call:
                self.tokens.append(event.resume_token)
        except grpc.RpcError as exc:
            self.error = exc

    def check_ended_for_shutdown(self) -> None:
        self._thread.join(10)
        self._channel.close()
        assert self.error is not None
        assert self.error.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        status = rpc_status.from_call(self.error)  # type: ignore[arg-type]
        assert status is not None
        reasons = []
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                reasons.append(info.reason)
        assert reasons == ["SHUTTING_DOWN"]
        assert self.tokens and all(self.tokens)  # the client holds a token to resume with


def test_stopping_the_service_drains_workers_before_envoy(fault_stack) -> None:
    with fault_stack({}) as stack:
        with httpx.Client(base_url=stack.rest, timeout=10) as http:
            account = register_and_login(http)
        workers = [psutil.Process(stack.worker_pid(i)) for i in range(len(stack.worker_ports))]
        envoy = psutil.Process(stack.envoy_pid())
        supervisor = stack.supervisor_pid()
        answers: dict[str, httpx.Response | Exception] = {}

        def call(name: str) -> None:
            try:
                with httpx.Client(base_url=stack.rest, timeout=20, headers=account.headers) as http:
                    answers[name] = http.post("/api/v1/users/me/tasks", json={"title": name})
            except Exception as exc:  # recorded and asserted below
                answers[name] = exc

        with psycopg.connect(stack.database_url) as locker:
            locker.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")  # held until commit
            in_flight = threading.Thread(target=call, args=("in flight",))
            in_flight.start()
            time.sleep(0.5)
            stopping = time.monotonic()
            send(supervisor, signal.SIGTERM)
            time.sleep(1.0)
            during = threading.Thread(target=call, args=("during drain",))
            during.start()
            time.sleep(0.5)
            locker.commit()
        in_flight.join(20)
        during.join(20)

        exits: dict[str, float] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(exits) < len(workers) + 1:
            for name, process in [
                *((f"worker{i}", w) for i, w in enumerate(workers)),
                ("envoy", envoy),
            ]:
                if name not in exits and (not process.is_running() or process.status() == "zombie"):
                    exits[name] = time.monotonic() - stopping
            time.sleep(0.02)
        for name, answer in answers.items():
            assert isinstance(answer, httpx.Response) and answer.status_code == 201, (name, answer)
        assert exits["envoy"] >= max(t for n, t in exits.items() if n != "envoy"), exits
        summary(**{f"{k}_exit_s": round(v, 2) for k, v in exits.items()})
