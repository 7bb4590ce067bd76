"""Batch routes through Envoy: all or nothing, idempotent, sized; and optimistic concurrency."""

from __future__ import annotations

import concurrent.futures
import json
import uuid

import grpc
import httpx
from todo.v1 import task_service_pb2, task_service_pb2_grpc

from tests.e2e.conftest import Account
from tests.e2e.helpers import assert_error

TASKS = "/api/v1/users/me/tasks"


def _count(http: httpx.Client, account: Account) -> int:
    return http.get(TASKS, headers=account.headers).json()["total_size"]


def _batch(http: httpx.Client, account: Account, verb: str, body: dict) -> httpx.Response:
    return http.post(f"{TASKS}:{verb}", json=body, headers=account.headers)


def test_batch_create_is_201_in_order_and_all_or_nothing(
    http: httpx.Client, alice: Account
) -> None:
    created = _batch(
        http, alice, "batchCreate", {"tasks": [{"title": f"b{i}", "tags": ["X"]} for i in range(3)]}
    )
    assert created.status_code == 201, created.text
    assert [t["title"] for t in created.json()["tasks"]] == ["b0", "b1", "b2"]
    assert created.json()["tasks"][0]["tags"] == ["x"]
    bad = _batch(
        http,
        alice,
        "batchCreate",
        {"tasks": [{"title": "ok"}, {"title": " "}, {"title": "x" * 201}]},
    )
    assert_error(bad, 400, 3, reason="INVALID_TASK", fields=["tasks[1].title", "tasks[2].title"])
    for size in (0, 501):
        too = _batch(http, alice, "batchCreate", {"tasks": [{"title": "t"}] * size})
        assert_error(too, 400, 3, reason="INVALID_BATCH_SIZE", fields=["tasks"])
    assert _count(http, alice) == 3


def test_request_id_replays_the_first_answer(http: httpx.Client, alice: Account) -> None:
    body = {"tasks": [{"title": "once"}], "request_id": "req-1"}
    first = _batch(http, alice, "batchCreate", body)
    again = _batch(http, alice, "batchCreate", body)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert _count(http, alice) == 1
    other = _batch(
        http, alice, "batchCreate", {"tasks": [{"title": "different"}], "request_id": "req-1"}
    )
    assert_error(other, 400, 3, reason="REQUEST_ID_REUSED", fields=["request_id"])
    assert_error(
        _batch(http, alice, "batchCreate", {"tasks": [{"title": "x"}], "request_id": "r" * 101}),
        400,
        3,
        fields=["request_id"],
    )
    assert _count(http, alice) == 1


def test_concurrent_identical_requests_run_once(http: httpx.Client, alice: Account, stack) -> None:
    body = {"tasks": [{"title": f"c{i}"} for i in range(20)], "request_id": str(uuid.uuid4())}

    def send(_: int) -> dict:
        with httpx.Client(base_url=stack.rest, timeout=20) as client:
            response = client.post(f"{TASKS}:batchCreate", json=body, headers=alice.headers)
            assert response.status_code == 201, response.text
            return response.json()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))
    assert all(answer == answers[0] for answer in answers)
    assert _count(http, alice) == 20


def test_request_ids_are_scoped_per_user(http: httpx.Client, alice: Account, bob: Account) -> None:
    body = {"tasks": [{"title": "mine"}], "request_id": "shared"}
    a = _batch(http, alice, "batchCreate", body).json()
    b = _batch(http, bob, "batchCreate", body).json()
    assert a["tasks"][0]["id"] != b["tasks"][0]["id"]
    assert b["tasks"][0]["user_id"] == bob.user_id


def test_batch_update_patch_semantics_etags_and_foreign_ids(
    http: httpx.Client, alice: Account, bob: Account
) -> None:
    tasks = _batch(
        http,
        alice,
        "batchCreate",
        {"tasks": [{"title": "a", "description": "keep"}, {"title": "b"}]},
    ).json()["tasks"]
    updated = _batch(
        http,
        alice,
        "batchUpdate",
        {
            "tasks": [
                {"id": tasks[0]["id"], "priority": "PRIORITY_HIGH", "etag": tasks[0]["etag"]},
                {"id": tasks[1]["id"], "title": "B", "completed": True},
            ]
        },
    )
    assert updated.status_code == 200, updated.text
    first, second = updated.json()["tasks"]
    assert (first["priority"], first["description"], first["title"]) == (
        "PRIORITY_HIGH",
        "keep",
        "a",
    )
    assert second["completed"] and second["completed_at"] and second["title"] == "B"
    stale = _batch(
        http,
        alice,
        "batchUpdate",
        {
            "tasks": [
                {"id": tasks[1]["id"], "title": "never"},
                {"id": tasks[0]["id"], "title": "never", "etag": tasks[0]["etag"]},
            ]
        },
    )
    assert_error(stale, 409, 10, reason="ETAG_MISMATCH")
    bobs = _batch(http, bob, "batchCreate", {"tasks": [{"title": "bob"}]}).json()["tasks"][0]
    foreign = _batch(
        http,
        alice,
        "batchUpdate",
        {"tasks": [{"id": tasks[1]["id"], "title": "never"}, {"id": bobs["id"], "title": "never"}]},
    )
    assert_error(foreign, 404, 5)
    dup = _batch(
        http, alice, "batchUpdate", {"tasks": [{"id": tasks[0]["id"]}, {"id": tasks[0]["id"]}]}
    )
    assert_error(dup, 400, 3, reason="DUPLICATE_TASK_ID", fields=["tasks[1].id"])
    titles = {t["title"] for t in http.get(TASKS, headers=alice.headers).json()["tasks"]}
    assert titles == {"a", "B"}
    assert (
        http.get(f"/api/v1/users/me/tasks/{bobs['id']}", headers=bob.headers).json()["title"]
        == "bob"
    )


def test_batch_complete_and_delete(http: httpx.Client, alice: Account, bob: Account) -> None:
    ids = [
        t["id"]
        for t in _batch(
            http, alice, "batchCreate", {"tasks": [{"title": "x"}, {"title": "y"}]}
        ).json()["tasks"]
    ]
    done = _batch(http, alice, "batchComplete", {"task_ids": ids})
    assert done.status_code == 200 and all(t["completed"] for t in done.json()["tasks"])
    reopened = _batch(http, alice, "batchComplete", {"task_ids": ids, "completed": False}).json()[
        "tasks"
    ]
    assert not any(t["completed"] for t in reopened)
    missing = _batch(http, alice, "batchDelete", {"task_ids": [ids[0], str(uuid.uuid4())]})
    assert_error(missing, 404, 5)
    assert _count(http, alice) == 2
    bobs = _batch(http, bob, "batchCreate", {"tasks": [{"title": "bob"}]}).json()["tasks"][0]["id"]
    assert_error(_batch(http, alice, "batchComplete", {"task_ids": [ids[0], bobs]}), 404, 5)
    deleted = _batch(http, alice, "batchDelete", {"task_ids": ids})
    assert deleted.status_code == 204 and deleted.content == b""
    assert _count(http, alice) == 0
    assert_error(_batch(http, alice, "batchDelete", {"task_ids": []}), 400, 3, fields=["task_ids"])


def test_batch_body_limits(http: httpx.Client, alice: Account) -> None:
    big = {"tasks": [{"title": "t", "description": "d" * 9_000} for _ in range(300)]}  # ~2.7 MB
    assert _batch(http, alice, "batchCreate", big).status_code == 201
    huge = json.dumps(
        {"tasks": [{"title": "t", "description": "d" * 10_000}] * 1_000}
    ).encode()  # ~10 MB
    response = http.post(
        f"{TASKS}:batchCreate",
        content=huge,
        headers={**alice.headers, "content-type": "application/json"},
    )
    assert_error(response, 413, 8)
    assert _count(http, alice) == 300


def test_batches_over_grpc(channel: grpc.Channel, alice: Account) -> None:
    stub = task_service_pb2_grpc.TaskServiceStub(channel)
    request = task_service_pb2.BatchCreateTasksRequest(
        user_id="me", tasks=[task_service_pb2.NewTask(title=f"g{i}") for i in range(500)]
    )
    created = stub.BatchCreateTasks(request, metadata=alice.metadata)
    assert len(created.tasks) == 500 and created.tasks[499].title == "g499"
    ids = [t.id for t in created.tasks]
    stub.BatchDeleteTasks(
        task_service_pb2.BatchDeleteTasksRequest(user_id="me", task_ids=ids),
        metadata=alice.metadata,
    )
    listed = stub.ListTasks(
        task_service_pb2.ListTasksRequest(user_id="me"), metadata=alice.metadata
    )
    assert listed.total_size == 0


def test_concurrent_patches_never_lose_an_acknowledged_write(
    stack, http: httpx.Client, alice: Account
) -> None:
    task = http.post(TASKS, json={"title": "shared"}, headers=alice.headers).json()
    url = f"{TASKS}/{task['id']}"

    def append(marker: int) -> None:
        with httpx.Client(base_url=stack.rest, timeout=20) as client:
            for _ in range(200):
                current = client.get(url, headers=alice.headers).json()
                body = {
                    "description": current["description"] + f"[{marker}]",
                    "etag": current["etag"],
                }
                response = client.patch(url, json=body, headers=alice.headers)
                if response.status_code == 200:
                    return
                assert response.status_code == 409, response.text
            raise AssertionError("never got through")

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        list(pool.map(append, range(50)))
    final = http.get(url, headers=alice.headers).json()
    assert sorted(final["description"].strip("[]").split("][")) == sorted(str(i) for i in range(50))
    assert final["etag"] == "v51"
