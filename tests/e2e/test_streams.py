"""StreamTasks and WatchTasks through Envoy (REST NDJSON and gRPC) and across processes."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator

import grpc
import httpx
import psycopg
import pytest
from todo.v1 import task_pb2, task_service_pb2, task_service_pb2_grpc

from tests.e2e.conftest import Account, Stack
from tests.e2e.helpers import assert_error

TASKS = "/api/v1/users/me/tasks"
E = task_pb2


def _create(http: httpx.Client, account: Account, title: str) -> dict:
    response = http.post(TASKS, json={"title": title}, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_rest_stream_is_ndjson_in_order(http: httpx.Client, alice: Account) -> None:
    for title in ("b", "d", "a", "c", "e"):
        _create(http, alice, title)
    with http.stream(
        "GET", f"{TASKS}:stream", params={"order_by": "title desc"}, headers=alice.headers
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        lines = [line for line in r.iter_lines() if line.strip()]
    assert [json.loads(line)["title"] for line in lines] == ["e", "d", "c", "b", "a"]
    assert all(set(json.loads(line)) >= {"id", "etag", "tags"} for line in lines)


def test_stream_errors_come_before_the_first_line(
    http: httpx.Client, alice: Account, bob: Account
) -> None:
    assert_error(
        http.get(f"{TASKS}:stream", params={"order_by": "nope"}, headers=alice.headers), 400, 3
    )
    assert_error(
        http.get(f"/api/v1/users/{bob.user_id}/tasks:stream", headers=alice.headers), 403, 7
    )


def test_streams_have_no_page_limit(
    channel: grpc.Channel, http: httpx.Client, alice: Account
) -> None:
    titles = [f"t{i:04}" for i in range(1200)]  # more than two chunks of 500
    for start in range(0, len(titles), 500):
        body = {"tasks": [{"title": t} for t in titles[start : start + 500]]}
        assert (
            http.post(f"{TASKS}:batchCreate", json=body, headers=alice.headers).status_code == 201
        )
    stub = task_service_pb2_grpc.TaskServiceStub(channel)
    request = task_service_pb2.StreamTasksRequest(user_id="me", order_by="title")
    chunks = list(stub.StreamTasks(request, metadata=alice.metadata))
    assert len(chunks) == 3 and all(chunk.tasks for chunk in chunks)
    assert [t.title for chunk in chunks for t in chunk.tasks] == titles
    params = {"order_by": "title desc"}
    with http.stream("GET", f"{TASKS}:stream", params=params, headers=alice.headers) as r:
        lines = [json.loads(line)["title"] for line in r.iter_lines() if line.strip()]
    assert lines == titles[::-1]


class Watcher:
    """Reads a gRPC watch stream on a thread into a queue."""

    def __init__(self, target: str, account: Account, resume_token: str = "") -> None:
        self.events: queue.Queue[task_pb2.TaskEvent | grpc.RpcError] = queue.Queue()
        self._channel = grpc.insecure_channel(target)
        stub = task_service_pb2_grpc.TaskServiceStub(self._channel)
        request = task_service_pb2.WatchTasksRequest(user_id="me", resume_token=resume_token)
        self._call = stub.WatchTasks(request, metadata=account.metadata)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._call:
                self.events.put(event)
        except grpc.RpcError as error:
            self.events.put(error)

    def next(self, *, skip_heartbeats: bool = True, timeout: float = 5) -> task_pb2.TaskEvent:
        deadline = time.monotonic() + timeout
        while True:
            item = self.events.get(timeout=max(deadline - time.monotonic(), 0.01))
            if isinstance(item, grpc.RpcError):
                raise item
            if skip_heartbeats and item.event_type == E.EVENT_TYPE_HEARTBEAT:
                continue
            return item

    def close(self) -> None:
        self._call.cancel()
        self._channel.close()


@pytest.fixture
def watchers() -> Iterator[list[Watcher]]:
    opened: list[Watcher] = []
    yield opened
    for watcher in opened:
        watcher.close()


def _ready(watcher: Watcher) -> None:
    """Wait for the first heartbeat: the subscription is open."""
    assert watcher.next(skip_heartbeats=False).event_type == E.EVENT_TYPE_HEARTBEAT


def test_watch_sees_every_kind_of_change_across_processes(
    stack: Stack, http: httpx.Client, alice: Account, watchers: list[Watcher]
) -> None:
    watcher = Watcher(stack.worker_targets[0], alice)  # straight to process 0
    watchers.append(watcher)
    _ready(watcher)
    with grpc.insecure_channel(stack.worker_targets[1]) as other:  # writes go to process 1
        stub = task_service_pb2_grpc.TaskServiceStub(other)
        md = alice.metadata
        task = stub.CreateTask(
            task_service_pb2.CreateTaskRequest(user_id="me", title="watch me"), metadata=md
        )
        stub.UpdateTask(
            task_service_pb2.UpdateTaskRequest(user_id="me", task_id=task.id, title="renamed"),
            metadata=md,
        )
        stub.CompleteTask(
            task_service_pb2.CompleteTaskRequest(user_id="me", task_id=task.id), metadata=md
        )
        stub.CompleteTask(
            task_service_pb2.CompleteTaskRequest(user_id="me", task_id=task.id, completed=False),
            metadata=md,
        )
        stub.DeleteTask(
            task_service_pb2.DeleteTaskRequest(user_id="me", task_id=task.id), metadata=md
        )
    events = [watcher.next() for _ in range(5)]
    assert [e.event_type for e in events] == [
        E.EVENT_TYPE_CREATED,
        E.EVENT_TYPE_UPDATED,
        E.EVENT_TYPE_COMPLETED,
        E.EVENT_TYPE_REOPENED,
        E.EVENT_TYPE_DELETED,
    ]
    assert {e.task_id for e in events} == {task.id}
    assert events[1].task.title == "renamed" and events[2].task.completed
    assert not events[4].HasField("task") and all(e.resume_token for e in events)
    assert all(e.HasField("commit_time") for e in events)


def test_resume_gets_every_later_change_exactly_once(
    stack: Stack, http: httpx.Client, alice: Account, watchers: list[Watcher]
) -> None:
    first = Watcher(stack.grpc_target, alice)
    watchers.append(first)
    _ready(first)
    titles = [f"r{i}" for i in range(5)]
    for title in titles:
        _create(http, alice, title)
    seen = [first.next() for _ in titles]
    first.close()
    resumed = Watcher(stack.grpc_target, alice, resume_token=seen[1].resume_token)
    watchers.append(resumed)
    replay = [resumed.next() for _ in range(3)]
    assert [e.task.title for e in replay] == titles[2:]
    _create(http, alice, "live")
    assert resumed.next().task.title == "live"


def test_heartbeats_carry_the_latest_token(
    stack: Stack, alice: Account, http: httpx.Client, watchers: list[Watcher]
) -> None:
    watcher = Watcher(stack.grpc_target, alice)
    watchers.append(watcher)
    _ready(watcher)
    _create(http, alice, "x")
    created = watcher.next()
    beat = watcher.next(skip_heartbeats=False, timeout=5)
    assert beat.event_type == E.EVENT_TYPE_HEARTBEAT and beat.resume_token == created.resume_token
    assert not beat.task_id and not beat.HasField("task")


def test_rest_watch_streams_ndjson(stack: Stack, alice: Account) -> None:
    with (
        httpx.Client(base_url=stack.rest, timeout=10) as client,
        client.stream("GET", f"{TASKS}:watch", headers=alice.headers) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        first = json.loads(next(line for line in lines if line.strip()))
        assert first["event_type"] == "EVENT_TYPE_HEARTBEAT"
        _create(client, alice, "over rest")
        event = json.loads(next(line for line in lines if line.strip() and "CREATED" in line))
        assert event["task"]["title"] == "over rest" and event["resume_token"]


def test_bad_resume_tokens(
    stack: Stack,
    http: httpx.Client,
    alice: Account,
    bob: Account,
    database_url: str,
    watchers: list[Watcher],
) -> None:
    watcher = Watcher(stack.grpc_target, bob)
    watchers.append(watcher)
    _ready(watcher)
    _create(http, bob, "b1")
    bobs_token = watcher.next().resume_token
    for token in (bobs_token, "garbage", bobs_token[:-2]):
        response = http.get(f"{TASKS}:watch", params={"resume_token": token}, headers=alice.headers)
        assert_error(response, 400, 3, reason="INVALID_RESUME_TOKEN", fields=["resume_token"])
    _create(http, bob, "b2")
    watcher.next()
    with psycopg.connect(database_url, autocommit=True) as conn:  # history expires
        conn.execute("DELETE FROM task_changes WHERE user_id = %s", (bob.user_id,))
    expired = http.get(f"{TASKS}:watch", params={"resume_token": bobs_token}, headers=bob.headers)
    assert_error(expired, 400, 9, reason="RESYNC_REQUIRED")
