"""Each rpc's documented status codes are the ones it returns.

The codes are read from the rpc and service comments in the descriptor set
Envoy serves (server/envoy/todo.binpb, built from protos/ with source info). Every
documented code of every rpc must have a case below that provokes it over
native gRPC, unless EXEMPT says why it cannot be provoked here; every case's
code must be documented for its rpc; and each case must get exactly that code.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import psycopg
import pytest
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool, duration_pb2, message
from todo.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    task_pb2,
    task_service_pb2,
    task_service_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)

from server import resources
from tests.e2e.conftest import Account, Stack, register_and_login

CODES = sorted(code.name for code in grpc.StatusCode)
_CODE = re.compile(r"\b(" + "|".join(CODES) + r")\b")
_SAME_AS = re.compile(r"Returns as (\w+)")
_EVERY_RPC = re.compile(r"(?:Every rpc may also return|Any rpc returns)[^.]*(?:\([^)]*\)[^.]*)*\.")
PUBLIC = {"AuthService.Register", "AuthService.Login", "AuthService.Refresh"}

EXEMPT: dict[tuple[str, str], str] = {
    ("*", "INTERNAL"): "a bug, never provoked on purpose",
    ("*", "UNAVAILABLE"): "database outage: test_health_watch.py stops PostgreSQL",
    ("*", "RESOURCE_EXHAUSTED"): "this stack's limits are far above the suite; "
    "test_hardened_edge.py provokes the throttle and the per-user limit",
    ("TaskService.StreamTasks", "CANCELLED"): "the client's own cancellation",
    ("TaskService.StreamTasksNdjson", "CANCELLED"): "the client's own cancellation",
    ("UserService.GetUser", "NOT_FOUND"): "needs a token that outlives its deleted "
    "account on a process not yet notified (a race by design)",
    ("UserService.UpdateUser", "NOT_FOUND"): "as GetUser",
    ("UserService.ChangePassword", "NOT_FOUND"): "as GetUser",
    ("UserService.DeleteUser", "NOT_FOUND"): "as GetUser",
}


RPC_COMMENTS: dict[str, str] = {}


def _documented_codes() -> dict[str, set[str]]:
    """rpc ("Service.Method") -> codes its comments name (OK left out)."""
    data = resources.descriptor_set().read_bytes()
    files = descriptor_pb2.FileDescriptorSet.FromString(data).file
    codes: dict[str, set[str]] = {}
    same_as: dict[str, str] = {}
    for file in (f for f in files if f.package == "todo.v1"):
        comments = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}
        for si, service in enumerate(file.service):
            clauses = _EVERY_RPC.findall(" ".join(comments.get((6, si), "").split()))
            service_codes = set(_CODE.findall(" ".join(clauses)))
            for mi, method in enumerate(service.method):
                text = comments.get((6, si, 2, mi), "")
                rpc = f"{service.name}.{method.name}"
                RPC_COMMENTS[rpc] = " ".join(text.split())
                inherited = set(service_codes)
                if not _has_text(method.input_type):  # the INVALID_CHARACTER clause
                    inherited.discard("INVALID_ARGUMENT")
                codes[rpc] = (set(_CODE.findall(text)) | inherited) - {"OK"}
                if match := _SAME_AS.search(text):
                    same_as[rpc] = f"{service.name}.{match.group(1)}"
    for rpc, other in same_as.items():
        codes[rpc] |= codes[other]
    return codes


def _has_text(type_name: str) -> bool:
    message = descriptor_pool.Default().FindMessageTypeByName(type_name.lstrip("."))
    return any(f.type == descriptor.FieldDescriptor.TYPE_STRING for f in message.fields)


DOCUMENTED = _documented_codes()


@dataclasses.dataclass
class World:
    """Two users over one channel; alice owns `task`, bob owns `bobs_task`."""

    channel: grpc.Channel
    http: httpx.Client
    database_url: str
    alice: Account
    bob: Account
    task: task_pb2.Task
    bobs_task: task_pb2.Task

    @property
    def tasks(self) -> task_service_pb2_grpc.TaskServiceStub:
        return task_service_pb2_grpc.TaskServiceStub(self.channel)

    @property
    def users(self) -> user_pb2_grpc.UserServiceStub:
        return user_pb2_grpc.UserServiceStub(self.channel)

    @property
    def auth(self) -> auth_pb2_grpc.AuthServiceStub:
        return auth_pb2_grpc.AuthServiceStub(self.channel)


@pytest.fixture(scope="module")
def world(
    channel: grpc.Channel, http: httpx.Client, database_url: str, stack: Stack
) -> Iterator[World]:
    alice, bob = register_and_login(http), register_and_login(http)
    stub = task_service_pb2_grpc.TaskServiceStub(channel)
    task = stub.CreateTask(
        task_service_pb2.CreateTaskRequest(user_id="me", title="a"), metadata=alice.metadata
    )
    bobs = stub.CreateTask(
        task_service_pb2.CreateTaskRequest(user_id="me", title="b"), metadata=bob.metadata
    )
    yield World(channel, http, database_url, alice, bob, task, bobs)


def _call(method: Any, request: Any, metadata: Any = ()) -> Any:
    """Call a unary or server-streaming stub method; streams are read to their first message."""
    result = method(request, metadata=metadata, timeout=15)
    if isinstance(result, grpc.Call) and hasattr(result, "__next__"):
        first = next(result)
        result.cancel()
        return first
    return result


# The request each rpc is provoked with, made wrong by one change per case.
BaseRequest = Callable[[World], tuple[Any, Any]]
BASE: dict[str, BaseRequest] = {
    "AuthService.Logout": lambda w: (w.auth.Logout, auth_pb2.LogoutRequest()),
    "UserService.GetUser": lambda w: (w.users.GetUser, user_pb2.GetUserRequest(user_id="me")),
    "UserService.UpdateUser": lambda w: (
        w.users.UpdateUser, user_pb2.UpdateUserRequest(user_id="me", name="Alice")),
    "UserService.ChangePassword": lambda w: (w.users.ChangePassword, user_pb2.ChangePasswordRequest(
        user_id="me", current_password="wrong password", new_password="another password")),
    "UserService.DeleteUser": lambda w: (
        w.users.DeleteUser, user_pb2.DeleteUserRequest(user_id=str(uuid.uuid4()))),
    "TaskService.ListTasks": lambda w: (
        w.tasks.ListTasks, task_service_pb2.ListTasksRequest(user_id="me")),
    "TaskService.CreateTask": lambda w: (
        w.tasks.CreateTask, task_service_pb2.CreateTaskRequest(user_id="me", title="t")),
    "TaskService.GetTask": lambda w: (
        w.tasks.GetTask, task_service_pb2.GetTaskRequest(user_id="me", task_id=w.task.id)),
    "TaskService.ReplaceTask": lambda w: (w.tasks.ReplaceTask, task_service_pb2.ReplaceTaskRequest(
        user_id="me", task_id=w.task.id, title="t")),
    "TaskService.UpdateTask": lambda w: (w.tasks.UpdateTask, task_service_pb2.UpdateTaskRequest(
        user_id="me", task_id=w.task.id, title="t")),
    "TaskService.DeleteTask": lambda w: (
        w.tasks.DeleteTask, task_service_pb2.DeleteTaskRequest(user_id="me", task_id=w.task.id)),
    "TaskService.CompleteTask": lambda w: (w.tasks.CompleteTask,
        task_service_pb2.CompleteTaskRequest(user_id="me", task_id=w.task.id)),
    "TaskService.StreamTasks": lambda w: (
        w.tasks.StreamTasks, task_service_pb2.StreamTasksRequest(user_id="me")),
    "TaskService.StreamTasksNdjson": lambda w: (
        w.tasks.StreamTasksNdjson, task_service_pb2.StreamTasksRequest(user_id="me")),
    "TaskService.WatchTasks": lambda w: (
        w.tasks.WatchTasks, task_service_pb2.WatchTasksRequest(user_id="me")),
    "TaskService.BatchCreateTasks": lambda w: (w.tasks.BatchCreateTasks,
        task_service_pb2.BatchCreateTasksRequest(
            user_id="me", tasks=[task_service_pb2.NewTask(title="t")])),
    "TaskService.BatchUpdateTasks": lambda w: (w.tasks.BatchUpdateTasks,
        task_service_pb2.BatchUpdateTasksRequest(
            user_id="me", tasks=[task_service_pb2.TaskUpdate(id=w.task.id, title="t")])),
    "TaskService.BatchCompleteTasks": lambda w: (w.tasks.BatchCompleteTasks,
        task_service_pb2.BatchCompleteTasksRequest(user_id="me", task_ids=[w.task.id])),
    "TaskService.BatchDeleteTasks": lambda w: (w.tasks.BatchDeleteTasks,
        task_service_pb2.BatchDeleteTasksRequest(user_id="me", task_ids=[w.task.id])),
    "TaskService.GetTaskStats": lambda w: (
        w.tasks.GetTaskStats, task_service_pb2.GetTaskStatsRequest(user_id="me")),
    "TaskService.ListTags": lambda w: (
        w.tasks.ListTags, task_service_pb2.ListTagsRequest(user_id="me")),
    "TaskService.ListReminders": lambda w: (
        w.tasks.ListReminders, task_service_pb2.ListRemindersRequest(user_id="me")),
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Case:
    rpc: str
    code: str
    label: str
    provoke: Callable[[World], Any]

    @property
    def id(self) -> str:
        return f"{self.rpc}-{self.code}-{self.label}"


def _changed(rpc: str, change: Callable[[Any, World], None], anonymous: bool = False) -> Any:
    def provoke(w: World) -> Any:
        method, request = BASE[rpc](w)
        change(request, w)
        return _call(method, request, () if anonymous else w.alice.metadata)

    return provoke


def _set(**fields: Any) -> Callable[[Any, World], None]:
    def change(request: Any, w: World) -> None:
        for name, value in fields.items():
            value = value(w) if callable(value) else value
            if isinstance(value, message.Message):
                getattr(request, name).CopyFrom(value)
            elif isinstance(value, list):
                del getattr(request, name)[:]
                getattr(request, name).extend(value)
            else:
                setattr(request, name, value)

    return change


def _keep(request: Any, w: World) -> None:
    pass


def _generic_cases() -> Iterator[Case]:
    for rpc in BASE:
        yield Case(rpc, "UNAUTHENTICATED", "no token", _changed(rpc, _keep, anonymous=True))
        if rpc != "AuthService.Logout":
            yield Case(rpc, "PERMISSION_DENIED", "another user's id",
                       _changed(rpc, _set(user_id=lambda w: w.bob.user_id)))  # fmt: skip
            yield Case(rpc, "PERMISSION_DENIED", "an unknown user id",
                       _changed(rpc, _set(user_id=str(uuid.uuid4()))))  # fmt: skip
            yield Case(
                rpc, "INVALID_ARGUMENT", "NUL in user_id", _changed(rpc, _set(user_id="me\0"))
            )


def _unknown_task_cases(rpc: str, field: str, listed: bool) -> Iterator[Case]:
    for label, value in [
        ("unknown id", lambda w: str(uuid.uuid4())),
        ("not a UUID", lambda w: "not-a-uuid"),
        ("another user's task", lambda w: w.bobs_task.id),
    ]:
        change = _set(**{field: (lambda w, v=value: [v(w)]) if listed else value})
        yield Case(rpc, "NOT_FOUND", label, _changed(rpc, change))


def _batch_update_unknown(label: str, task_id: Callable[[World], str]) -> Case:
    def change(request: Any, w: World) -> None:
        request.tasks[0].id = task_id(w)

    return Case("TaskService.BatchUpdateTasks", "NOT_FOUND", label,
                _changed("TaskService.BatchUpdateTasks", change))  # fmt: skip


def _stale_etag(rpc: str) -> Case:
    def provoke(w: World) -> Any:
        task = w.tasks.CreateTask(
            task_service_pb2.CreateTaskRequest(user_id="me", title="etag"),
            metadata=w.alice.metadata,
        )
        w.tasks.UpdateTask(
            task_service_pb2.UpdateTaskRequest(user_id="me", task_id=task.id, title="moved on"),
            metadata=w.alice.metadata,
        )
        method, request = BASE[rpc](w)
        if rpc == "TaskService.BatchUpdateTasks":
            request.tasks[0].id, request.tasks[0].etag = task.id, task.etag
        else:
            request.task_id, request.etag = task.id, task.etag
        return _call(method, request, w.alice.metadata)

    return Case(rpc, "ABORTED", "stale etag", provoke)


def _expired_resume_token(w: World) -> Any:
    account = register_and_login(w.http)
    md = account.metadata
    watch = w.tasks.WatchTasks(task_service_pb2.WatchTasksRequest(user_id="me"), metadata=md)
    assert next(watch).event_type == task_pb2.EVENT_TYPE_HEARTBEAT
    w.tasks.CreateTask(task_service_pb2.CreateTaskRequest(user_id="me", title="1"), metadata=md)
    token = next(watch).resume_token
    w.tasks.CreateTask(task_service_pb2.CreateTaskRequest(user_id="me", title="2"), metadata=md)
    next(watch)
    watch.cancel()
    with psycopg.connect(w.database_url, autocommit=True) as conn:  # the history expires
        conn.execute("DELETE FROM task_changes WHERE user_id = %s", (account.user_id,))
    request = task_service_pb2.WatchTasksRequest(user_id="me", resume_token=token)
    return _call(w.tasks.WatchTasks, request, md)


def _public(rpc: str, request: Callable[[World], Any]) -> Callable[[World], Any]:
    name = rpc.split(".")[1]
    return lambda w: _call(getattr(w.auth, name), request(w))


T = "TaskService."
SPECIFIC: list[Case] = [
    Case("AuthService.Register", "INVALID_ARGUMENT", "bad email", _public(
        "AuthService.Register", lambda w: auth_pb2.RegisterRequest(
            email="nope", password="password1", name="N"))),
    Case("AuthService.Register", "INVALID_ARGUMENT", "NUL in name", _public(
        "AuthService.Register", lambda w: auth_pb2.RegisterRequest(
            email=f"{uuid.uuid4().hex}@example.com", password="password1", name="\0"))),
    Case("AuthService.Register", "ALREADY_EXISTS", "email taken", _public(
        "AuthService.Register", lambda w: auth_pb2.RegisterRequest(
            email=w.alice.email, password="password1", name="N"))),
    Case("AuthService.Login", "INVALID_ARGUMENT", "missing email", _public(
        "AuthService.Login", lambda w: auth_pb2.LoginRequest(password="password1"))),
    Case("AuthService.Login", "UNAUTHENTICATED", "wrong password", _public(
        "AuthService.Login", lambda w: auth_pb2.LoginRequest(
            email=w.alice.email, password="wrong password"))),
    Case("AuthService.Refresh", "INVALID_ARGUMENT", "missing token", _public(
        "AuthService.Refresh", lambda w: auth_pb2.RefreshRequest())),
    Case("AuthService.Refresh", "UNAUTHENTICATED", "garbage token", _public(
        "AuthService.Refresh", lambda w: auth_pb2.RefreshRequest(refresh_token="garbage"))),
    Case("UserService.UpdateUser", "INVALID_ARGUMENT", "unknown time zone",
         _changed("UserService.UpdateUser", _set(timezone="Mars/Olympus_Mons"))),
    Case("UserService.UpdateUser", "ALREADY_EXISTS", "another account's email",
         _changed("UserService.UpdateUser", _set(email=lambda w: w.bob.email))),
    Case("UserService.ChangePassword", "INVALID_ARGUMENT", "wrong current password",
         _changed("UserService.ChangePassword", _keep)),
    Case(T + "ListTasks", "INVALID_ARGUMENT", "negative page size",
         _changed(T + "ListTasks", _set(page_size=-1))),
    Case(T + "ListTasks", "INVALID_ARGUMENT", "forged page token",
         _changed(T + "ListTasks", _set(page_token="Zm9yZ2Vk"))),
    Case(T + "CreateTask", "INVALID_ARGUMENT", "empty title",
         _changed(T + "CreateTask", _set(title=" "))),
    Case(T + "ReplaceTask", "INVALID_ARGUMENT", "empty title",
         _changed(T + "ReplaceTask", _set(title=""))),
    Case(T + "UpdateTask", "INVALID_ARGUMENT", "malformed etag",
         _changed(T + "UpdateTask", _set(etag="x"))),
    Case(T + "StreamTasks", "INVALID_ARGUMENT", "unknown order_by",
         _changed(T + "StreamTasks", _set(order_by="colour"))),
    Case(T + "StreamTasksNdjson", "INVALID_ARGUMENT", "unknown order_by",
         _changed(T + "StreamTasksNdjson", _set(order_by="colour"))),
    Case(T + "WatchTasks", "INVALID_ARGUMENT", "forged resume token",
         _changed(T + "WatchTasks", _set(resume_token="Zm9yZ2Vk"))),
    Case(T + "WatchTasks", "INVALID_ARGUMENT", "another user's resume token",
         _changed(T + "WatchTasks", _set(resume_token=lambda w: next(w.tasks.WatchTasks(
             task_service_pb2.WatchTasksRequest(user_id="me"), metadata=w.bob.metadata,
             timeout=15)).resume_token))),
    Case(T + "WatchTasks", "FAILED_PRECONDITION", "expired resume token", _expired_resume_token),
    Case(T + "BatchCreateTasks", "INVALID_ARGUMENT", "empty batch",
         _changed(T + "BatchCreateTasks", _set(tasks=[]))),
    Case(T + "BatchUpdateTasks", "INVALID_ARGUMENT", "empty batch",
         _changed(T + "BatchUpdateTasks", _set(tasks=[]))),
    Case(T + "BatchCompleteTasks", "INVALID_ARGUMENT", "duplicate ids",
         _changed(T + "BatchCompleteTasks", _set(task_ids=lambda w: [w.task.id, w.task.id]))),
    Case(T + "BatchDeleteTasks", "INVALID_ARGUMENT", "empty batch",
         _changed(T + "BatchDeleteTasks", _set(task_ids=[]))),
    Case(T + "GetTaskStats", "INVALID_ARGUMENT", "PRIORITY_UNSPECIFIED filter",
         _changed(T + "GetTaskStats", _set(priority=[task_pb2.PRIORITY_UNSPECIFIED]))),
    Case(T + "ListReminders", "INVALID_ARGUMENT", "negative window",
         _changed(T + "ListReminders", _set(window=duration_pb2.Duration(seconds=-1)))),
    _stale_etag(T + "ReplaceTask"),
    _stale_etag(T + "UpdateTask"),
    _stale_etag(T + "BatchUpdateTasks"),
    _batch_update_unknown("unknown id", lambda w: str(uuid.uuid4())),
    _batch_update_unknown("another user's task", lambda w: w.bobs_task.id),
    *_unknown_task_cases(T + "GetTask", "task_id", listed=False),
    *_unknown_task_cases(T + "ReplaceTask", "task_id", listed=False),
    *_unknown_task_cases(T + "UpdateTask", "task_id", listed=False),
    *_unknown_task_cases(T + "DeleteTask", "task_id", listed=False),
    *_unknown_task_cases(T + "CompleteTask", "task_id", listed=False),
    *_unknown_task_cases(T + "BatchCompleteTasks", "task_ids", listed=True),
    *_unknown_task_cases(T + "BatchDeleteTasks", "task_ids", listed=True),
]  # fmt: skip
CASES = [*_generic_cases(), *SPECIFIC]


def test_every_rpc_is_known_and_every_documented_code_is_provoked_or_exempt() -> None:
    assert set(BASE) | PUBLIC == set(DOCUMENTED)
    provoked = {(case.rpc, case.code) for case in CASES}
    missing = [
        (rpc, code)
        for rpc, codes in sorted(DOCUMENTED.items())
        for code in sorted(codes)
        if (rpc, code) not in provoked and ("*", code) not in EXEMPT and (rpc, code) not in EXEMPT
    ]
    assert missing == []


def test_every_provoked_code_is_documented_for_its_rpc() -> None:
    undocumented = sorted({(c.rpc, c.code) for c in CASES if c.code not in DOCUMENTED[c.rpc]})
    assert undocumented == []


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_the_rpc_returns_the_documented_code(world: World, case: Case) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        case.provoke(world)
    assert raised.value.code().name == case.code, raised.value  # type: ignore[attr-defined]


def test_what_the_docs_say_of_a_non_uuid_task_id_is_what_it_gets(world: World) -> None:
    """The clause naming UUIDs in each rpc comment names the code a non-UUID id gets."""
    non_uuid = [c for c in CASES if c.label == "not a UUID"]
    documented = {rpc for rpc, text in RPC_COMMENTS.items() if "UUID" in text}
    assert documented and documented <= {c.rpc for c in non_uuid}
    for case in (c for c in non_uuid if c.rpc in documented):
        clause = next(part for part in RPC_COMMENTS[case.rpc].split(";") if "UUID" in part)
        with pytest.raises(grpc.RpcError) as raised:
            case.provoke(world)
        assert _CODE.findall(clause) == [raised.value.code().name], case.rpc  # type: ignore[attr-defined]
