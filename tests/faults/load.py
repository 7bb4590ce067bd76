"""A steady REST and gRPC load of writes and reads, every answer recorded.

`Load(stack_rest, grpc_target, token)` runs one thread per (wire, kind): REST
writes (POST a task), REST reads (GET the list), gRPC writes (CreateTask),
gRPC reads (GetTask of a task written earlier). Each thread sends one call at
a time, paced by `pause_s`. `outcomes` holds every call: when it started, how
long it took, whether it succeeded, its HTTP status or gRPC code and the
ErrorInfo reason of a failure; `acknowledged` the ids of the tasks whose
creation was answered with success.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable

import grpc
import httpx
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from todo.v1 import task_service_pb2 as ts
from todo.v1 import task_service_pb2_grpc as ts_grpc

TIMEOUT_S = 15.0


@dataclasses.dataclass(frozen=True)
class Outcome:
    wire: str
    kind: str
    started: float
    elapsed: float
    ok: bool
    status: str
    """HTTP status ("201") or gRPC code name ("UNAVAILABLE")."""
    reason: str
    """ErrorInfo reason of a failure, "" if none."""

    @property
    def server_error(self) -> bool:
        """A 500 / INTERNAL / UNKNOWN: never acceptable."""
        return self.status in ("500", "INTERNAL", "UNKNOWN")

    @property
    def unavailable(self) -> bool:
        return self.status in ("503", "UNAVAILABLE")


def _rest_reason(response: httpx.Response) -> str:
    try:
        details = response.json().get("details", [])
    except ValueError:
        return "not-json"
    for detail in details:
        if detail.get("@type", "").endswith("ErrorInfo"):
            return str(detail.get("reason", ""))
    return ""


def _grpc_reason(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return ""
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return ""


class Load:
    """Background load on a stack; `stop()` ends it."""

    def __init__(
        self, rest: str, grpc_target: str, token: str, pause_s: float = 0.02, threads: int = 1
    ) -> None:
        self._rest = rest
        self._grpc_target = grpc_target
        self._token = token
        self._pause_s = pause_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.outcomes: list[Outcome] = []
        self.acknowledged: list[str] = []
        self._threads = [
            threading.Thread(target=worker, daemon=True)
            for worker in (self._rest_writes, self._rest_reads, self._grpc_writes, self._grpc_reads)
            for _ in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT_S + 5)

    def failures(self, since: float = 0.0, until: float = float("inf")) -> list[Outcome]:
        """Failed calls that started in [since, until)."""
        with self._lock:
            return [o for o in self.outcomes if not o.ok and since <= o.started < until]

    def count(self) -> int:
        with self._lock:
            return len(self.outcomes)

    def _record(self, outcome: Outcome, task_id: str | None = None) -> None:
        with self._lock:
            self.outcomes.append(outcome)
            if task_id is not None:
                self.acknowledged.append(task_id)

    def _loop(self, call: Callable[[], None]) -> None:
        while not self._stop.is_set():
            call()
            self._stop.wait(self._pause_s)

    def _rest_call(
        self, client: httpx.Client, kind: str, request: Callable[[], httpx.Response]
    ) -> None:
        started = time.monotonic()
        try:
            response = request()
        except httpx.HTTPError as exc:
            self._record(
                Outcome(
                    "rest", kind, started, time.monotonic() - started, False, type(exc).__name__, ""
                )
            )
            return
        elapsed = time.monotonic() - started
        ok = response.status_code < 400
        task_id = response.json()["id"] if ok and kind == "write" else None
        reason = "" if ok else _rest_reason(response)
        self._record(
            Outcome("rest", kind, started, elapsed, ok, str(response.status_code), reason), task_id
        )

    def _rest_writes(self) -> None:
        headers = {"authorization": f"Bearer {self._token}"}
        with httpx.Client(base_url=self._rest, timeout=TIMEOUT_S, headers=headers) as client:
            self._loop(
                lambda: self._rest_call(
                    client,
                    "write",
                    lambda: client.post(
                        "/api/v1/users/me/tasks", json={"title": f"rest {uuid.uuid4()}"}
                    ),
                )
            )

    def _rest_reads(self) -> None:
        headers = {"authorization": f"Bearer {self._token}"}
        with httpx.Client(base_url=self._rest, timeout=TIMEOUT_S, headers=headers) as client:
            self._loop(
                lambda: self._rest_call(
                    client,
                    "read",
                    lambda: client.get("/api/v1/users/me/tasks", params={"page_size": 5}),
                )
            )

    def _grpc_call(self, kind: str, call: Callable[[], str | None]) -> None:
        started = time.monotonic()
        try:
            task_id = call()
        except grpc.RpcError as exc:
            code = exc.code().name  # type: ignore[attr-defined]
            self._record(
                Outcome(
                    "grpc",
                    kind,
                    started,
                    time.monotonic() - started,
                    False,
                    code,
                    _grpc_reason(exc),
                )
            )
            return
        self._record(
            Outcome("grpc", kind, started, time.monotonic() - started, True, "OK", ""), task_id
        )

    def _grpc_writes(self) -> None:
        md = (("authorization", f"Bearer {self._token}"),)
        with grpc.insecure_channel(self._grpc_target) as channel:
            tasks = ts_grpc.TaskServiceStub(channel)

            def create() -> str | None:
                request = ts.CreateTaskRequest(user_id="me", title=f"grpc {uuid.uuid4()}")
                return str(tasks.CreateTask(request, metadata=md, timeout=TIMEOUT_S).id)

            self._loop(lambda: self._grpc_call("write", create))

    def _grpc_reads(self) -> None:
        md = (("authorization", f"Bearer {self._token}"),)
        with grpc.insecure_channel(self._grpc_target) as channel:
            tasks = ts_grpc.TaskServiceStub(channel)

            def read() -> None:
                with self._lock:
                    known = self.acknowledged[-1] if self.acknowledged else None
                if known is None:
                    tasks.ListTasks(
                        ts.ListTasksRequest(user_id="me", page_size=5),
                        metadata=md,
                        timeout=TIMEOUT_S,
                    )
                else:
                    tasks.GetTask(
                        ts.GetTaskRequest(user_id="me", task_id=known),
                        metadata=md,
                        timeout=TIMEOUT_S,
                    )

            self._loop(lambda: self._grpc_call("read", read))
