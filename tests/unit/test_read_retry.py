"""ReadRetryInterceptor: a read that lost its connection runs once more; writes never."""

from __future__ import annotations

from typing import Any, cast

import grpc.aio
import pytest
from todo.v1 import auth_pb2, task_service_pb2, user_pb2

from server import errors
from server.interceptors.retry import ReadRetryInterceptor, read_methods

SERVICES = [
    s
    for f in (auth_pb2.DESCRIPTOR, user_pb2.DESCRIPTOR, task_service_pb2.DESCRIPTOR)
    for s in f.services_by_name.values()
]
READS = read_methods(SERVICES)


def test_reads_are_the_get_routes() -> None:
    assert "/todo.v1.TaskService/GetTask" in READS
    assert "/todo.v1.TaskService/ListTasks" in READS
    assert "/todo.v1.UserService/GetUser" in READS
    assert "/todo.v1.TaskService/CreateTask" not in READS
    assert "/todo.v1.TaskService/BatchCreateTasks" not in READS
    assert "/todo.v1.AuthService/Logout" not in READS


class Flaky:
    """A handler failing its first `failures` calls with `error`."""

    def __init__(self, failures: int, error: errors.DomainError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self, request: Any, context: Any) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "answer"


def _interceptor(answers: bool) -> ReadRetryInterceptor:
    async def database_answers() -> bool:
        return answers

    return ReadRetryInterceptor(READS, database_answers)


GET_TASK = "/todo.v1.TaskService/GetTask"
NO_CONTEXT = cast(grpc.aio.ServicerContext[Any, Any], None)
DROPPED = errors.Unavailable("database unavailable", reason="DATABASE_UNAVAILABLE")


async def test_a_read_that_lost_its_connection_is_retried_once() -> None:
    handler = Flaky(1, DROPPED)
    answer = await _interceptor(True).around_unary(
        "/todo.v1.TaskService/GetTask", handler, None, NO_CONTEXT
    )
    assert answer == "answer" and handler.calls == 2


async def test_only_once() -> None:
    handler = Flaky(2, DROPPED)
    with pytest.raises(errors.Unavailable):
        await _interceptor(True).around_unary(
            "/todo.v1.TaskService/GetTask", handler, None, NO_CONTEXT
        )
    assert handler.calls == 2


@pytest.mark.parametrize(
    ("method", "answers", "error"),
    [
        ("/todo.v1.TaskService/CreateTask", True, DROPPED),  # a write: maybe committed
        ("/todo.v1.TaskService/GetTask", False, DROPPED),  # still down: no point
        ("/todo.v1.TaskService/GetTask", True, errors.Unavailable("busy", reason="DATABASE_BUSY")),
    ],
)
async def test_not_retried(method: str, answers: bool, error: errors.DomainError) -> None:
    handler = Flaky(1, error)
    with pytest.raises(errors.Unavailable):
        await _interceptor(answers).around_unary(method, handler, None, NO_CONTEXT)
    assert handler.calls == 1
