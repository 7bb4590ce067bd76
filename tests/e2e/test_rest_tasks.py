"""Every task route over REST through Envoy, and the bad input around them."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.conftest import Account
from tests.e2e.helpers import assert_error

TASKS = "/api/v1/users/me/tasks"


def create(http: httpx.Client, account: Account, **body: object) -> dict:
    response = http.post(TASKS, json={"title": "Buy milk", **body}, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


def count(http: httpx.Client, account: Account) -> int:
    return http.get(TASKS, headers=account.headers).json()["total_size"]


def test_create_returns_201_with_every_field(http: httpx.Client, alice: Account) -> None:
    task = create(http, alice, tags=["Home", "home"], due_at="2026-12-01T10:00:00Z")
    assert task["user_id"] == alice.user_id
    assert task["priority"] == "PRIORITY_MEDIUM"
    assert task["tags"] == ["home"]
    assert task["due_at"] == "2026-12-01T10:00:00Z"
    assert (task["completed"], task["description"], task["category"]) == (False, "", "")
    assert "completed_at" not in task and "remind_at" not in task
    assert uuid.UUID(task["id"]) and task["etag"]


def test_get_own_and_user_id_forms(http: httpx.Client, alice: Account) -> None:
    task = create(http, alice)
    for owner in ("me", alice.user_id):
        got = http.get(f"/api/v1/users/{owner}/tasks/{task['id']}", headers=alice.headers)
        assert got.status_code == 200
        assert got.json() == task


def test_list_pages_newest_first(http: httpx.Client, alice: Account) -> None:
    ids = [create(http, alice, title=f"t{i}")["id"] for i in range(5)]
    seen, token = [], ""
    while True:
        page = http.get(TASKS, params={"page_size": 2, "page_token": token}, headers=alice.headers)
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["total_size"] == 5
        seen += [t["id"] for t in body["tasks"]]
        token = body["next_page_token"]
        if not token:
            break
    assert seen == ids[::-1]


def test_put_replaces_and_patch_changes_only_what_is_sent(
    http: httpx.Client, alice: Account
) -> None:
    task = create(http, alice, description="keep?", category="home", due_at="2026-12-01T00:00:00Z")
    url = f"{TASKS}/{task['id']}"
    patched = http.patch(
        url, json={"priority": "PRIORITY_HIGH", "category": ""}, headers=alice.headers
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["priority"], body["category"], body["description"]) == (
        "PRIORITY_HIGH",
        "",
        "keep?",
    )
    assert body["due_at"] == "2026-12-01T00:00:00Z" and body["etag"] != task["etag"]
    cleared = http.patch(
        url, params={"update_mask": "due_at"}, json={"title": "ignored"}, headers=alice.headers
    )
    assert cleared.status_code == 200, cleared.text
    assert "due_at" not in cleared.json() and cleared.json()["title"] == "Buy milk"
    replaced = http.put(url, json={"title": "New"}, headers=alice.headers).json()
    assert (replaced["title"], replaced["description"], replaced["priority"]) == (
        "New",
        "",
        "PRIORITY_MEDIUM",
    )


def test_stale_etag_is_409_and_changes_nothing(http: httpx.Client, alice: Account) -> None:
    task = create(http, alice)
    url = f"{TASKS}/{task['id']}"
    assert (
        http.patch(
            url, json={"title": "a", "etag": task["etag"]}, headers=alice.headers
        ).status_code
        == 200
    )
    stale = http.patch(url, json={"title": "b", "etag": task["etag"]}, headers=alice.headers)
    assert_error(stale, 409, 10, reason="ETAG_MISMATCH")
    assert http.get(url, headers=alice.headers).json()["title"] == "a"


def test_complete_and_reopen(http: httpx.Client, alice: Account) -> None:
    task = create(http, alice)
    url = f"{TASKS}/{task['id']}/complete"
    done = http.patch(url, headers=alice.headers)
    assert done.status_code == 200, done.text
    assert done.json()["completed"] and done.json()["completed_at"]
    again = http.patch(url, json={}, headers=alice.headers).json()
    assert again["completed_at"] == done.json()["completed_at"]
    reopened = http.patch(url, json={"completed": False}, headers=alice.headers).json()
    assert not reopened["completed"] and "completed_at" not in reopened


def test_delete_is_204_empty_then_404(http: httpx.Client, alice: Account) -> None:
    task = create(http, alice)
    url = f"{TASKS}/{task['id']}"
    deleted = http.delete(url, headers=alice.headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(http.get(url, headers=alice.headers), 404, 5, reason="TASK_NOT_FOUND")
    assert_error(http.delete(url, headers=alice.headers), 404, 5)


def test_other_users_data_is_invisible(http: httpx.Client, alice: Account, bob: Account) -> None:
    task = create(http, bob, title="bob's")
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        response = http.request(
            method, f"{TASKS}/{task['id']}", json={"title": "x"}, headers=alice.headers
        )
        assert_error(response, 404, 5)
    complete = http.patch(f"{TASKS}/{task['id']}/complete", headers=alice.headers)
    assert_error(complete, 404, 5)
    for path in (f"/api/v1/users/{bob.user_id}/tasks", f"/api/v1/users/{uuid.uuid4()}/tasks"):
        assert_error(http.get(path, headers=alice.headers), 403, 7)
        assert_error(http.post(path, json={"title": "x"}, headers=alice.headers), 403, 7)
    query_override = http.get(
        f"{TASKS}/{task['id']}", params={"user_id": bob.user_id}, headers=alice.headers
    )
    assert query_override.status_code in (400, 403, 404)
    assert http.get(f"{TASKS}/{task['id']}", headers=bob.headers).json()["title"] == "bob's"


def test_bad_task_input_is_400_and_writes_nothing(http: httpx.Client, alice: Account) -> None:
    cases = [
        ({"title": ""}, ["title"]),
        ({"title": "   "}, ["title"]),
        ({"title": "x" * 201}, ["title"]),
        ({"title": "ok", "description": "d" * 10_001}, ["description"]),
        ({"title": "ok", "tags": [f"t{i}" for i in range(21)]}, ["tags"]),
        ({"title": "ok", "tags": ["x" * 51]}, ["tags"]),
        ({"title": "", "category": "c" * 51}, ["category", "title"]),
    ]
    for body, fields in cases:
        assert_error(
            http.post(TASKS, json=body, headers=alice.headers), 400, 3, "INVALID_TASK", fields
        )
    assert count(http, alice) == 0


def test_malformed_and_mistyped_json_is_400(http: httpx.Client, alice: Account) -> None:
    headers = {**alice.headers, "content-type": "application/json"}
    for raw in (
        b"{",
        b'{"title": 123}',
        b'{"title": "x", "priority": "PRIORITY_HUGE"}',
        b'{"title": "x", "due_at": "tomorrow"}',
        b'{"title": ["x"]}',
        b"[]",
    ):
        response = http.post(TASKS, content=raw, headers=headers)
        assert_error(response, 400, 3)
    assert count(http, alice) == 0


def test_limits_at_the_edge(http: httpx.Client, alice: Account) -> None:
    big = http.post(
        TASKS,
        content=b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        headers={**alice.headers, "content-type": "application/json"},
    )
    assert_error(big, 413, 8)
    assert_error(
        http.get(TASKS, params={"page_size": -1}, headers=alice.headers),
        400,
        3,
        fields=["page_size"],
    )
    assert_error(
        http.get(TASKS, params={"page_token": "garbage"}, headers=alice.headers),
        400,
        3,
        reason="INVALID_PAGE_TOKEN",
        fields=["page_token"],
    )
    assert_error(http.get(TASKS, params={"color": "red"}, headers=alice.headers), 400, 3)
    assert http.get(TASKS, params={"page_size": 10_000}, headers=alice.headers).status_code == 200


def test_unknown_routes_and_ids(http: httpx.Client, alice: Account) -> None:
    assert_error(http.get("/api/v1/nope", headers=alice.headers), 404, 5)
    assert_error(
        http.get(f"{TASKS}/not-a-uuid", headers=alice.headers), 404, 5, reason="TASK_NOT_FOUND"
    )
    assert_error(http.get(f"{TASKS}/{uuid.uuid4()}", headers=alice.headers), 404, 5)
    wrong_verb = http.post(f"{TASKS}/{uuid.uuid4()}", json={}, headers=alice.headers)
    assert wrong_verb.status_code in (404, 405)


def test_every_response_has_request_id_and_security_headers(
    http: httpx.Client, alice: Account
) -> None:
    responses = [
        http.get(TASKS, headers=alice.headers),
        http.get("/api/v1/nope"),
        http.get(TASKS),
        http.post(TASKS, json={"title": ""}, headers=alice.headers),
    ]
    for response in responses:
        assert response.headers.get("x-request-id")
        assert response.headers.get("x-content-type-options") == "nosniff"
        assert response.headers.get("x-frame-options") == "DENY"
        assert "grpc-status" not in response.headers
    mine = http.get(TASKS, headers={**alice.headers, "x-request-id": "trace-me-123"})
    assert mine.headers["x-request-id"] == "trace-me-123"
