"""The isolation sweep: one user attacks another's data on every route, on both wires.

Alice (the victim) has tasks, a used batch request id, a page token and a
resume token. Bob (the attacker, with data of his own) sends thousands of
requests with her ids, as `me`, as his own id and as hers, with her tokens
and forged ones, over REST through Envoy and native gRPC through Envoy and
straight to a server process. Checks:

- no attack succeeds;
- an attack on a foreign task id is answered exactly like the same request
  with a task id that does not exist (same status, same body), and one on
  her user id exactly like one on a user id that does not exist;
- a foreign page or resume token is answered like a forged one;
- none of Alice's rows change (her user, tasks, watch history, batch
  request ids, sessions and throttle rows, read from PostgreSQL before and after).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
import httpx
import psycopg
import pytest
from google.protobuf import duration_pb2
from grpc_status import rpc_status
from todo.v1 import (
    task_service_pb2 as ts,
)
from todo.v1 import (
    task_service_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)

from tests.e2e.conftest import Account, Stack, register_and_login

VICTIM_TASKS = 32
REST_VICTIM_TASKS = 16
"""REST is probed with half the ids: Python's HTTP/1.1 client is the slow part here."""
CONCURRENCY = {"rest": 6, "grpc": 24}
MIN_REQUESTS = 2000
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)

Answer = tuple[Any, ...]
Send = Callable[[], Awaitable[Answer]]


@dataclasses.dataclass
class Probe:
    """An attack and the harmless request it must be answered exactly like."""

    label: str
    attack: Send
    control: Send


def _normalize(text: str) -> str:
    return _UUID.sub("<uuid>", text)


# ---------------------------------------------------------------- REST


def _rest(client: httpx.AsyncClient, token: str, method: str, path: str, **kwargs: Any) -> Send:
    async def send() -> Answer:
        headers = {"authorization": f"Bearer {token}"}
        response = await client.request(method, path, headers=headers, **kwargs)
        return ("rest", response.status_code, _normalize(response.text))

    return send


def _rest_probes(
    client: httpx.AsyncClient, alice: Account, bob: Account, world: dict[str, Any]
) -> list[Probe]:
    token, probes = bob.access_token, []

    def probe(label: str, method: str, path: str, ctl_path: str, **kw: Any) -> None:
        """`ctl_json` / `ctl_params` replace `json` / `params` in the control request."""
        attack_kw = {k: v for k, v in kw.items() if not k.startswith("ctl_")}
        control_kw = {**attack_kw, **{k[4:]: v for k, v in kw.items() if k.startswith("ctl_")}}
        attack = _rest(client, token, method, path, **attack_kw)
        probes.append(Probe(label, attack, _rest(client, token, method, ctl_path, **control_kw)))

    own = world["bobs_task"]
    for victim in world["victim_tasks"][:REST_VICTIM_TASKS]:
        missing = str(uuid.uuid4())
        for user in ("me", bob.user_id):
            base = f"/api/v1/users/{user}/tasks"
            for method, suffix, body in [
                ("GET", "", None),
                ("PUT", "", {"title": "pwned"}),
                ("PATCH", "", {"title": "pwned", "completed": True}),
                ("DELETE", "", None),
                ("PATCH", "/complete", {}),
                ("PATCH", "/complete", {"completed": False}),
            ]:
                kw = {"json": body} if body is not None else {}
                probe(f"{method} task{suffix} as {user}", method, f"{base}/{victim}{suffix}",
                      f"{base}/{missing}{suffix}", **kw)  # fmt: skip
            for verb, body_of in [
                ("batchUpdate", lambda i: {"tasks": [{"id": i, "title": "pwned"}]}),
                ("batchComplete", lambda i: {"task_ids": [i]}),
                ("batchDelete", lambda i: {"task_ids": [i]}),
            ]:
                probe(f"{verb} as {user}", "POST", f"{base}:{verb}", f"{base}:{verb}",
                      json=body_of(victim), ctl_json=body_of(missing))  # fmt: skip
            # a query parameter naming a path field overrides it in the transcoder
            probe("task_id in the query", "GET", f"{base}/{own}", f"{base}/{own}",
                  params={"task_id": victim}, ctl_params={"task_id": missing})  # fmt: skip
            probe("task_id in the query (PATCH)", "PATCH", f"{base}/{own}", f"{base}/{own}",
                  params={"task_id": victim}, ctl_params={"task_id": missing},
                  json={"title": "pwned"})  # fmt: skip
        nobody = f"/api/v1/users/{uuid.uuid4()}/tasks"
        hers = f"/api/v1/users/{alice.user_id}/tasks"
        her_routes: list[tuple[str, str, Any]] = [
            ("GET", f"/{victim}", None),
            ("PUT", f"/{victim}", {"title": "pwned"}),
            ("PATCH", f"/{victim}", {"title": "pwned"}),
            ("DELETE", f"/{victim}", None),
            ("PATCH", f"/{victim}/complete", {}),
            ("POST", ":batchComplete", {"task_ids": [victim]}),
            ("POST", ":batchDelete", {"task_ids": [victim]}),
        ]
        for method, suffix, body in her_routes:
            kw = {"json": body} if body is not None else {}
            probe(f"{method} her task{suffix[:10]} under her id", method, hers + suffix,
                  nobody + suffix, **kw)  # fmt: skip
    for n in range(3):
        nobody = f"/api/v1/users/{uuid.uuid4()}"
        hers = f"/api/v1/users/{alice.user_id}"
        user_routes: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", "/tasks", {}),
            ("GET", "/tasks", {"params": {"q": "secret", "page_size": n + 1}}),
            ("POST", "/tasks", {"json": {"title": "planted"}}),
            ("POST", "/tasks:batchCreate", {"json": {"tasks": [{"title": "planted"}]}}),
            ("GET", "/tasks:stream", {}),
            ("GET", "/tasks:watch", {}),
            ("GET", "/tasks:stats", {}),
            ("GET", "/tags", {}),
            ("GET", "/reminders", {"params": {"window": "86400s"}}),
            ("GET", "", {}),
            ("PATCH", "", {"json": {"name": "pwned", "email": f"x{n}@example.com"}}),
            ("POST", "/password", {"json": {"current_password": bob.password,
                                            "new_password": "pwned password"}}),
            ("DELETE", "", {}),
        ]  # fmt: skip
        for method, suffix, kw in user_routes:
            probe(f"{method} her user{suffix}", method, hers + suffix, nobody + suffix, **kw)
        mine = "/api/v1/users/me/tasks"
        hers_q, nobody_q = {"user_id": alice.user_id}, {"user_id": str(uuid.uuid4())}
        probe("user_id in the query", "GET", mine, mine, params=hers_q, ctl_params=nobody_q)
        probe("user_id in the query (create)", "POST", mine, mine, params=hers_q,
              ctl_params=nobody_q, json={"title": "planted"})  # fmt: skip
    for token_kind, field, route in [
        ("page", "page_token", "/api/v1/users/me/tasks"),
        ("resume", "resume_token", "/api/v1/users/me/tasks:watch"),
    ]:
        for forged in _forgeries(world[f"{token_kind}_token"]):
            probe(f"her {token_kind} token", "GET", route, route,
                  params={field: forged}, ctl_params={field: "Zm9yZ2VkLXRva2Vu"})  # fmt: skip
    return probes


def _forgeries(token: str) -> list[str]:
    """Her token as is, and a few edits of it."""
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    return [token, flipped, token[:-4], token + "AA", token.replace("-", "_")]


# ---------------------------------------------------------------- gRPC


def _grpc(call: Callable[..., Any], request: Any, metadata: Any, stream: bool) -> Send:
    async def send() -> Answer:
        try:
            if stream:
                async for _ in call(request, metadata=metadata, timeout=15):
                    return ("grpc", "OK")
                return ("grpc", "OK")
            await call(request, metadata=metadata, timeout=15)
            return ("grpc", "OK")
        except grpc.aio.AioRpcError as error:
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
            details = status.SerializeToString().decode("latin-1") if status else ""
            return (
                "grpc",
                error.code().name,
                _normalize(error.details() or ""),
                _normalize(details),
            )

    return send


def _grpc_probes(
    channel: grpc.aio.Channel, alice: Account, bob: Account, world: dict[str, Any]
) -> list[Probe]:
    tasks = task_service_pb2_grpc.TaskServiceStub(channel)
    users = user_pb2_grpc.UserServiceStub(channel)
    md, probes = bob.metadata, []

    def probe(label: str, call: Any, attack: Any, control: Any, stream: bool = False) -> None:
        probes.append(
            Probe(label, _grpc(call, attack, md, stream), _grpc(call, control, md, stream))
        )

    def per_task(user: str, task_id: str) -> list[tuple[str, Any, Any]]:
        return [
            ("GetTask", tasks.GetTask, ts.GetTaskRequest(user_id=user, task_id=task_id)),
            ("ReplaceTask", tasks.ReplaceTask,
             ts.ReplaceTaskRequest(user_id=user, task_id=task_id, title="pwned")),
            ("UpdateTask", tasks.UpdateTask,
             ts.UpdateTaskRequest(user_id=user, task_id=task_id, title="pwned")),
            ("DeleteTask", tasks.DeleteTask, ts.DeleteTaskRequest(user_id=user, task_id=task_id)),
            ("CompleteTask", tasks.CompleteTask,
             ts.CompleteTaskRequest(user_id=user, task_id=task_id)),
            ("BatchUpdateTasks", tasks.BatchUpdateTasks, ts.BatchUpdateTasksRequest(
                user_id=user, tasks=[ts.TaskUpdate(id=task_id, title="pwned")])),
            ("BatchCompleteTasks", tasks.BatchCompleteTasks,
             ts.BatchCompleteTasksRequest(user_id=user, task_ids=[task_id])),
            ("BatchDeleteTasks", tasks.BatchDeleteTasks,
             ts.BatchDeleteTasksRequest(user_id=user, task_ids=[task_id])),
        ]  # fmt: skip

    for victim in world["victim_tasks"]:
        missing = str(uuid.uuid4())
        for user in ("me", bob.user_id):
            for (name, call, attack), (_, _, control) in zip(
                per_task(user, victim), per_task(user, missing), strict=True
            ):
                probe(f"{name} as {user}", call, attack, control)
        nobody = str(uuid.uuid4())
        for (name, call, attack), (_, _, control) in zip(
            per_task(alice.user_id, victim), per_task(nobody, victim), strict=True
        ):
            probe(f"{name} under her id", call, attack, control)

    def per_user(user: str) -> list[tuple[str, Any, Any, bool]]:
        return [
            ("ListTasks", tasks.ListTasks, ts.ListTasksRequest(user_id=user), False),
            ("CreateTask", tasks.CreateTask,
             ts.CreateTaskRequest(user_id=user, title="planted"), False),
            ("BatchCreateTasks", tasks.BatchCreateTasks, ts.BatchCreateTasksRequest(
                user_id=user, tasks=[ts.NewTask(title="planted")]), False),
            ("StreamTasks", tasks.StreamTasks, ts.StreamTasksRequest(user_id=user), True),
            ("StreamTasksNdjson", tasks.StreamTasksNdjson,
             ts.StreamTasksRequest(user_id=user), True),
            ("WatchTasks", tasks.WatchTasks, ts.WatchTasksRequest(user_id=user), True),
            ("GetTaskStats", tasks.GetTaskStats, ts.GetTaskStatsRequest(user_id=user), False),
            ("ListTags", tasks.ListTags, ts.ListTagsRequest(user_id=user), False),
            ("ListReminders", tasks.ListReminders, ts.ListRemindersRequest(
                user_id=user, window=duration_pb2.Duration(seconds=86400)), False),
            ("GetUser", users.GetUser, user_pb2.GetUserRequest(user_id=user), False),
            ("UpdateUser", users.UpdateUser,
             user_pb2.UpdateUserRequest(user_id=user, name="pwned"), False),
            ("ChangePassword", users.ChangePassword, user_pb2.ChangePasswordRequest(
                user_id=user, current_password=bob.password, new_password="pwned password"),
             False),
            ("DeleteUser", users.DeleteUser, user_pb2.DeleteUserRequest(user_id=user), False),
        ]  # fmt: skip

    for _ in range(3):
        for (name, call, attack, stream), (_, _, control, _) in zip(
            per_user(alice.user_id), per_user(str(uuid.uuid4())), strict=True
        ):
            probe(f"{name} on her user", call, attack, control, stream)
    garbage = "Zm9yZ2VkLXRva2Vu"
    for forged in _forgeries(world["page_token"]):
        probe("her page token", tasks.ListTasks,
              ts.ListTasksRequest(user_id="me", page_token=forged),
              ts.ListTasksRequest(user_id="me", page_token=garbage))  # fmt: skip
    for forged in _forgeries(world["resume_token"]):
        probe("her resume token", tasks.WatchTasks,
              ts.WatchTasksRequest(user_id="me", resume_token=forged),
              ts.WatchTasksRequest(user_id="me", resume_token=garbage), stream=True)  # fmt: skip
    return probes


# ---------------------------------------------------------------- the victim's rows


def _snapshot(database_url: str, alice: Account) -> dict[str, list[str]]:
    queries = {
        "users": "SELECT row_to_json(t)::text FROM users t WHERE id = %(id)s",
        "tasks": "SELECT row_to_json(t)::text FROM tasks t WHERE user_id = %(id)s ORDER BY id",
        "task_changes": "SELECT row_to_json(t)::text FROM task_changes t "
        "WHERE user_id = %(id)s ORDER BY seq",
        "idempotency_keys": "SELECT row_to_json(t)::text FROM idempotency_keys t "
        "WHERE user_id = %(id)s ORDER BY route, request_id",
        "sessions": "SELECT row_to_json(t)::text FROM sessions t WHERE user_id = %(id)s ORDER BY 1",
        "rate_limits": "SELECT row_to_json(t)::text FROM rate_limits t "
        "WHERE row_to_json(t)::text ILIKE %(email)s OR row_to_json(t)::text LIKE %(like_id)s "
        "ORDER BY 1",
    }
    params = {"id": alice.user_id, "email": f"%{alice.email}%", "like_id": f"%{alice.user_id}%"}
    with psycopg.connect(database_url, autocommit=True) as conn:
        return {
            name: [row[0] for row in conn.execute(sql, params).fetchall()]  # type: ignore[arg-type]
            for name, sql in queries.items()
        }


def _victim(http: httpx.Client, channel: grpc.Channel) -> tuple[Account, dict[str, Any]]:
    alice = register_and_login(http)
    body = {
        "tasks": [
            {
                "title": f"secret {i}",
                "description": "alice's eyes only",
                "category": "private",
                "tags": ["secret", f"t{i % 3}"],
                "due_at": "2030-01-01T00:00:00Z",
                "remind_at": "2029-12-31T00:00:00Z",
                "completed": i % 4 == 0,
            }
            for i in range(VICTIM_TASKS)
        ],
        "request_id": "alice-batch-1",
    }
    created = http.post("/api/v1/users/me/tasks:batchCreate", json=body, headers=alice.headers)
    assert created.status_code == 201, created.text
    ids = [task["id"] for task in created.json()["tasks"]]
    page = http.get("/api/v1/users/me/tasks", params={"page_size": 5}, headers=alice.headers)
    stub = task_service_pb2_grpc.TaskServiceStub(channel)
    watch = stub.WatchTasks(ts.WatchTasksRequest(user_id="me"), metadata=alice.metadata)
    resume_token = next(watch).resume_token
    watch.cancel()
    world = {
        "victim_tasks": ids,
        "page_token": page.json()["next_page_token"],
        "resume_token": resume_token,
    }
    assert world["page_token"] and resume_token
    return alice, world


async def _run(probes: list[Probe], concurrency: int) -> list[tuple[Probe, Answer, Answer]]:
    gate = asyncio.Semaphore(concurrency)

    async def one(probe: Probe) -> tuple[Probe, Answer, Answer]:
        async with gate:
            return probe, await probe.attack(), await probe.control()

    return await asyncio.gather(*(one(p) for p in probes))


@dataclasses.dataclass
class Setting:
    alice: Account
    bob: Account
    world: dict[str, Any]
    before: dict[str, list[str]]


@pytest.fixture
def setting(http: httpx.Client, channel: grpc.Channel, database_url: str) -> Setting:
    alice, world = _victim(http, channel)
    bob = register_and_login(http)
    own = http.post("/api/v1/users/me/tasks", json={"title": "bob's"}, headers=bob.headers)
    world["bobs_task"] = own.json()["id"]
    return Setting(alice, bob, world, _snapshot(database_url, alice))


async def test_no_user_can_reach_another_users_data(
    stack: Stack, setting: Setting, database_url: str
) -> None:
    alice, bob, world = setting.alice, setting.bob, setting.world

    async with (
        httpx.AsyncClient(base_url=stack.rest, timeout=20) as client,
        grpc.aio.insecure_channel(stack.grpc_target) as via_envoy,
        grpc.aio.insecure_channel(stack.worker_targets[0]) as direct,
    ):
        rest = _rest_probes(client, alice, bob, world)
        grpc_probes = [
            *_grpc_probes(via_envoy, alice, bob, world),
            *_grpc_probes(direct, alice, bob, world),
        ]
        rest_results, grpc_results = await asyncio.gather(
            _run(rest, CONCURRENCY["rest"]), _run(grpc_probes, CONCURRENCY["grpc"])
        )
        results = [*rest_results, *grpc_results]

    attacks = len(results)
    assert attacks >= MIN_REQUESTS
    succeeded = [(p.label, a) for p, a, _ in results if _succeeded(a)]
    assert succeeded == []
    different = [(p.label, a, c) for p, a, c in results if a != c]
    assert different == [], different[:5]
    assert _snapshot(database_url, alice) == setting.before
    print(f"isolation sweep: {attacks} attacks ({len(rest)} REST) + as many controls")


def _succeeded(answer: Answer) -> bool:
    if answer[0] == "rest":
        return int(answer[1]) < 400
    return bool(answer[1] == "OK")
