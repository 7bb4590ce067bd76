"""The same RPCs natively over gRPC, through Envoy and straight to a server process."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from todo.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    task_pb2,
    task_service_pb2,
    task_service_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)


@pytest.fixture(params=["envoy", "direct"])
def ch(
    request: pytest.FixtureRequest, channel: grpc.Channel, direct_channel: grpc.Channel
) -> grpc.Channel:
    return channel if request.param == "envoy" else direct_channel


def _login(ch: grpc.Channel) -> tuple[user_pb2.User, tuple[tuple[str, str], ...]]:
    auth = auth_pb2_grpc.AuthServiceStub(ch)
    email = f"g-{uuid.uuid4().hex[:10]}@example.com"
    user = auth.Register(auth_pb2.RegisterRequest(email=email, password="password1", name="G"))
    tokens = auth.Login(auth_pb2.LoginRequest(email=email, password="password1"))
    assert tokens.token_type == "Bearer" and tokens.user.id == user.id
    return user, (("authorization", f"Bearer {tokens.access_token}"),)


def _details(error: grpc.RpcError) -> tuple[list[str], str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    fields, reason = [], ""
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
    return fields, reason


def test_task_lifecycle(ch: grpc.Channel) -> None:
    user, md = _login(ch)
    tasks = task_service_pb2_grpc.TaskServiceStub(ch)
    created = tasks.CreateTask(
        task_service_pb2.CreateTaskRequest(
            user_id="me", title="Write report", priority=task_pb2.PRIORITY_HIGH
        ),
        metadata=md,
    )
    assert created.user_id == user.id and created.priority == task_pb2.PRIORITY_HIGH
    got = tasks.GetTask(
        task_service_pb2.GetTaskRequest(user_id=user.id, task_id=created.id), metadata=md
    )
    assert got == created
    updated = tasks.UpdateTask(
        task_service_pb2.UpdateTaskRequest(user_id="me", task_id=created.id, description="draft"),
        metadata=md,
    )
    assert (updated.title, updated.description) == ("Write report", "draft")
    replaced = tasks.ReplaceTask(
        task_service_pb2.ReplaceTaskRequest(user_id="me", task_id=created.id, title="Final"),
        metadata=md,
    )
    assert (replaced.description, replaced.priority) == ("", task_pb2.PRIORITY_MEDIUM)
    done = tasks.CompleteTask(
        task_service_pb2.CompleteTaskRequest(user_id="me", task_id=created.id), metadata=md
    )
    assert done.completed and done.HasField("completed_at")
    listed = tasks.ListTasks(task_service_pb2.ListTasksRequest(user_id="me"), metadata=md)
    assert [t.id for t in listed.tasks] == [created.id] and listed.total_size == 1
    tasks.DeleteTask(
        task_service_pb2.DeleteTaskRequest(user_id="me", task_id=created.id), metadata=md
    )
    with pytest.raises(grpc.RpcError) as caught:
        tasks.GetTask(
            task_service_pb2.GetTaskRequest(user_id="me", task_id=created.id), metadata=md
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


def test_errors_carry_rich_details(ch: grpc.Channel) -> None:
    _, md = _login(ch)
    tasks = task_service_pb2_grpc.TaskServiceStub(ch)
    with pytest.raises(grpc.RpcError) as caught:
        tasks.CreateTask(task_service_pb2.CreateTaskRequest(user_id="me", title=" "), metadata=md)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _details(caught.value) == (["title"], "INVALID_TASK")
    with pytest.raises(grpc.RpcError) as caught:
        tasks.CreateTask(
            task_service_pb2.CreateTaskRequest(user_id="me", title="x", priority=99),  # type: ignore[arg-type]
            metadata=md,
        )
    assert _details(caught.value) == (["priority"], "INVALID_PRIORITY")
    with pytest.raises(grpc.RpcError) as caught:
        tasks.ListTasks(task_service_pb2.ListTasksRequest(user_id=str(uuid.uuid4())), metadata=md)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


def test_authentication_is_required(ch: grpc.Channel) -> None:
    users = user_pb2_grpc.UserServiceStub(ch)
    for md in ((), (("authorization", "Bearer nope"),)):
        with pytest.raises(grpc.RpcError) as caught:
            users.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=md)
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_logout_takes_effect_on_every_process(channel: grpc.Channel, stack) -> None:
    _, md = _login(channel)
    auth_pb2_grpc.AuthServiceStub(channel).Logout(auth_pb2.LogoutRequest(), metadata=md)
    for target in stack.worker_targets:
        with grpc.insecure_channel(target) as worker:
            users = user_pb2_grpc.UserServiceStub(worker)
            deadline = time.monotonic() + 1.0  # the contract: every instance within 1 s
            while True:
                try:
                    users.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=md)
                except grpc.RpcError as error:
                    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
                    break
                assert time.monotonic() < deadline, f"token still accepted by {target}"
                time.sleep(0.01)


def test_health_is_serving(ch: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(ch)
    for service in ("", "todo.v1.TaskService"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_healthz_over_http(http) -> None:
    assert http.get("/healthz").status_code == 200
