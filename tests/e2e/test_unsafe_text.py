"""NUL and other control characters in any text input: 400 naming the field, on both wires.

Each of these gave 500 INTERNAL (and a logged traceback) before: PostgreSQL
text cannot hold U+0000. Now one check refuses them before any handler runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import message
from todo.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    task_service_pb2,
    task_service_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)

from tests.e2e.conftest import Account, Stack
from tests.e2e.helpers import assert_error
from tests.e2e.test_grpc import _details

NUL = "\u0000"
REASON = "INVALID_CHARACTER"
TASK = "11111111-1111-4111-8111-111111111111"


def _email() -> str:
    return f"nul-{uuid.uuid4().hex[:10]}@example.com"


# (name, method, path, JSON body or query parameters, field the answer names)
REST_CASES: list[tuple[str, str, str, dict[str, Any], str]] = [
    ("task title", "POST", "/api/v1/users/me/tasks", {"title": f"a{NUL}b"}, "title"),
    ("task description", "POST", "/api/v1/users/me/tasks",
     {"title": "t", "description": NUL}, "description"),
    ("task category", "POST", "/api/v1/users/me/tasks", {"title": "t", "category": NUL},
     "category"),
    ("task tag", "POST", "/api/v1/users/me/tasks", {"title": "t", "tags": ["ok", NUL]}, "tags[1]"),
    ("list q", "GET", "/api/v1/users/me/tasks", {"q": f"x{NUL}"}, "q"),
    ("list category", "GET", "/api/v1/users/me/tasks", {"category": NUL}, "category"),
    ("list tag", "GET", "/api/v1/users/me/tasks", {"tag": NUL}, "tag[0]"),
    ("batch item", "POST", "/api/v1/users/me/tasks:batchCreate",
     {"tasks": [{"title": "ok"}, {"title": NUL}]}, "tasks[1].title"),
    ("user name", "PATCH", "/api/v1/users/me", {"name": f"A{NUL}"}, "name"),
    ("register email", "POST", "/api/v1/auth/register",
     {"email": f"a{NUL}@example.com", "password": "password1", "name": "N"}, "email"),
    ("login email", "POST", "/api/v1/auth/login",
     {"email": f"a{NUL}@example.com", "password": "password1"}, "email"),
    # beyond the 13 reported: other routes, other control characters
    ("replace title", "PUT", f"/api/v1/users/me/tasks/{TASK}", {"title": "\u001b[2J"}, "title"),
    ("patch description", "PATCH", f"/api/v1/users/me/tasks/{TASK}",
     {"description": "\u009b31m"}, "description"),
    ("batch update item", "POST", "/api/v1/users/me/tasks:batchUpdate",
     {"tasks": [{"id": TASK, "category": NUL}]}, "tasks[0].category"),
    ("batch request id", "POST", "/api/v1/users/me/tasks:batchComplete",
     {"task_ids": [TASK], "request_id": f"r{NUL}"}, "request_id"),
    ("stream q", "GET", "/api/v1/users/me/tasks:stream", {"q": NUL}, "q"),
    ("watch resume token", "GET", "/api/v1/users/me/tasks:watch", {"resume_token": NUL},
     "resume_token"),
    ("stats tag", "GET", "/api/v1/users/me/tasks:stats", {"tag": ["a", NUL]}, "tag[1]"),
    ("register name", "POST", "/api/v1/auth/register",
     {"email": "n@example.com", "password": "password1", "name": "\u0007"}, "name"),
    ("refresh token", "POST", "/api/v1/auth/refresh", {"refresh_token": NUL}, "refresh_token"),
]  # fmt: skip


def _send(
    http: httpx.Client, account: Account, method: str, path: str, data: dict[str, Any]
) -> httpx.Response:
    headers = {} if path.startswith("/api/v1/auth/") else account.headers
    if method == "GET":
        return http.get(path, params=data, headers=headers)
    return http.request(method, path, json=data, headers=headers)


@pytest.mark.parametrize(("method", "path", "data", "field"), [c[1:] for c in REST_CASES],
                         ids=[c[0] for c in REST_CASES])  # fmt: skip
def test_rest_refuses_control_characters_naming_the_field(
    http: httpx.Client,
    alice: Account,
    stack: Stack,
    method: str,
    path: str,
    data: dict[str, Any],
    field: str,
) -> None:
    log_size = stack.log.stat().st_size
    response = _send(http, alice, method, path, data)
    body = assert_error(response, 400, 3, REASON, [field])
    assert field in body["message"] and NUL not in body["message"]
    assert http.get("/api/v1/users/me/tasks", headers=alice.headers).json()["tasks"] == []
    assert "Traceback" not in stack.log.read_bytes()[log_size:].decode(errors="replace")


def test_tabs_and_newlines_are_still_text(http: httpx.Client, alice: Account) -> None:
    response = http.post(
        "/api/v1/users/me/tasks",
        headers=alice.headers,
        json={"title": "a\tb", "description": "line 1\r\nline 2\n🎉 עברית"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["description"] == "line 1\r\nline 2\n🎉 עברית"


Call = Callable[[grpc.Channel, tuple[tuple[str, str], ...]], message.Message]


def _task_stub(ch: grpc.Channel) -> task_service_pb2_grpc.TaskServiceStub:
    return task_service_pb2_grpc.TaskServiceStub(ch)


def _stream(ch: grpc.Channel, md: tuple[tuple[str, str], ...], q: str) -> message.Message:
    request = task_service_pb2.StreamTasksRequest(user_id="me", q=q)
    return next(iter(_task_stub(ch).StreamTasks(request, metadata=md, timeout=10)))


GRPC_CASES: list[tuple[str, Call, str]] = [
    ("task title", lambda ch, md: _task_stub(ch).CreateTask(
        task_service_pb2.CreateTaskRequest(user_id="me", title=NUL), metadata=md), "title"),
    ("task description", lambda ch, md: _task_stub(ch).CreateTask(
        task_service_pb2.CreateTaskRequest(user_id="me", title="t", description=NUL),
        metadata=md), "description"),
    ("task category", lambda ch, md: _task_stub(ch).CreateTask(
        task_service_pb2.CreateTaskRequest(user_id="me", title="t", category=NUL),
        metadata=md), "category"),
    ("task tag", lambda ch, md: _task_stub(ch).CreateTask(
        task_service_pb2.CreateTaskRequest(user_id="me", title="t", tags=[NUL]),
        metadata=md), "tags[0]"),
    ("list q", lambda ch, md: _task_stub(ch).ListTasks(
        task_service_pb2.ListTasksRequest(user_id="me", q=NUL), metadata=md), "q"),
    ("list category", lambda ch, md: _task_stub(ch).ListTasks(
        task_service_pb2.ListTasksRequest(user_id="me", category=NUL), metadata=md), "category"),
    ("list tag", lambda ch, md: _task_stub(ch).ListTasks(
        task_service_pb2.ListTasksRequest(user_id="me", tag=["a", NUL]), metadata=md), "tag[1]"),
    ("batch item", lambda ch, md: _task_stub(ch).BatchCreateTasks(
        task_service_pb2.BatchCreateTasksRequest(
            user_id="me", tasks=[task_service_pb2.NewTask(title=NUL)]), metadata=md),
     "tasks[0].title"),
    ("user name", lambda ch, md: user_pb2_grpc.UserServiceStub(ch).UpdateUser(
        user_pb2.UpdateUserRequest(user_id="me", name=NUL), metadata=md), "name"),
    ("register email", lambda ch, md: auth_pb2_grpc.AuthServiceStub(ch).Register(
        auth_pb2.RegisterRequest(email=NUL + _email(), password="password1", name="N")),
     "email"),
    ("login email", lambda ch, md: auth_pb2_grpc.AuthServiceStub(ch).Login(
        auth_pb2.LoginRequest(email=NUL + _email(), password="password1")), "email"),
    ("stream q", lambda ch, md: _stream(ch, md, NUL), "q"),
    ("get task id", lambda ch, md: _task_stub(ch).GetTask(
        task_service_pb2.GetTaskRequest(user_id="me", task_id=TASK + NUL), metadata=md),
     "task_id"),
]  # fmt: skip


@pytest.fixture(params=["envoy", "direct"])
def ch(
    request: pytest.FixtureRequest, channel: grpc.Channel, direct_channel: grpc.Channel
) -> grpc.Channel:
    return channel if request.param == "envoy" else direct_channel


@pytest.mark.parametrize(("call", "field"), [c[1:] for c in GRPC_CASES],
                         ids=[c[0] for c in GRPC_CASES])  # fmt: skip
def test_grpc_refuses_control_characters_naming_the_field(
    ch: grpc.Channel, alice: Account, call: Call, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        call(ch, alice.metadata)
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error  # type: ignore[attr-defined]
    assert _details(error) == ([field], REASON)


@pytest.mark.parametrize(
    "body",
    [b"\x0a\x02me\x12\x01\xff", b"\x0a\x02me\x12\x03\xed\xa0\x80", b"\xff\xff\xff"],
    ids=["invalid UTF-8", "a UTF-8-encoded surrogate", "not protobuf"],
)
def test_grpc_bytes_that_do_not_parse_are_invalid_argument_not_unknown(
    ch: grpc.Channel, alice: Account, body: bytes
) -> None:
    create = ch.unary_unary("/todo.v1.TaskService/CreateTask")
    with pytest.raises(grpc.RpcError) as raised:
        create(body, metadata=alice.metadata)
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error  # type: ignore[attr-defined]
    assert _details(error) == ([], "MALFORMED_REQUEST")
    details = error.details() or ""  # type: ignore[attr-defined]
    assert "todo.v1.CreateTaskRequest" in details and "DecodeError" not in details
