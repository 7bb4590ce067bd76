"""Filters, ordering, page tokens, stats, tags and reminders over REST through Envoy."""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc
import httpx
from todo.v1 import task_service_pb2, task_service_pb2_grpc

from tests.e2e.conftest import Account, register_and_login
from tests.e2e.helpers import assert_error

TASKS = "/api/v1/users/me/tasks"


def _iso(delta_hours: float) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(hours=delta_hours)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _seed(http: httpx.Client, account: Account) -> dict[str, dict]:
    specs = {
        "overdue": {
            "title": "Pay rent",
            "due_at": _iso(-2),
            "priority": "PRIORITY_URGENT",
            "tags": ["Home"],
        },
        "soon": {
            "title": "buy MILK",
            "due_at": _iso(3),
            "remind_at": _iso(1),
            "category": "errands",
            "tags": ["home", "shop"],
        },
        "done": {"title": "Call mum", "completed": True, "priority": "PRIORITY_LOW"},
        "later": {
            "title": "50% report",
            "description": "under_score",
            "priority": "PRIORITY_HIGH",
            "remind_at": _iso(30),
        },
    }
    out = {}
    for name, body in specs.items():
        response = http.post(TASKS, json=body, headers=account.headers)
        assert response.status_code == 201, response.text
        out[name] = response.json()
    return out


def _titles(http: httpx.Client, account: Account, params: Any) -> list[str]:
    response = http.get(TASKS, params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total_size"] == len(body["tasks"])
    return [t["title"] for t in body["tasks"]]


def test_filters_over_rest(http: httpx.Client, alice: Account) -> None:
    _seed(http, alice)
    assert _titles(http, alice, {"completed": "true"}) == ["Call mum"]
    assert set(
        _titles(http, alice, [("priority", "PRIORITY_URGENT"), ("priority", "PRIORITY_LOW")])
    ) == {"Pay rent", "Call mum"}
    assert _titles(http, alice, {"category": "errands"}) == ["buy MILK"]
    assert _titles(http, alice, [("tag", "HOME"), ("tag", "shop")]) == ["buy MILK"]
    assert _titles(http, alice, {"overdue": "true"}) == ["Pay rent"]
    assert _titles(http, alice, {"due_after": _iso(0), "due_before": _iso(5)}) == ["buy MILK"]
    assert _titles(http, alice, {"q": "milk"}) == ["buy MILK"]
    assert _titles(http, alice, {"q": "%"}) == ["50% report"]
    assert _titles(http, alice, {"q": "r_s"}) == ["50% report"]
    assert _titles(http, alice, {"q": "_"}) == ["50% report"]


def test_order_by_over_rest(http: httpx.Client, alice: Account) -> None:
    _seed(http, alice)
    undated = {"50% report", "Call mum"}  # no due date: last either way
    by_due = _titles(http, alice, {"order_by": "due_at"})
    assert by_due[:2] == ["Pay rent", "buy MILK"] and set(by_due[2:]) == undated
    by_due_desc = _titles(http, alice, {"order_by": "due_at desc"})
    assert by_due_desc[:2] == ["buy MILK", "Pay rent"] and set(by_due_desc[2:]) == undated
    assert _titles(http, alice, {"order_by": "title"}) == [
        "50% report",
        "buy MILK",
        "Call mum",
        "Pay rent",
    ]
    raw = http.get(f"{TASKS}?order_by=priority+desc,title", headers=alice.headers).json()
    assert [t["title"] for t in raw["tasks"]] == ["Pay rent", "50% report", "buy MILK", "Call mum"]


def test_page_tokens_are_bound_to_query_and_user(
    http: httpx.Client, alice: Account, bob: Account
) -> None:
    _seed(http, alice)
    first = http.get(
        TASKS, params={"page_size": 1, "order_by": "title"}, headers=alice.headers
    ).json()
    token = first["next_page_token"]
    assert token and first["total_size"] == 4
    walked = [first["tasks"][0]["title"]]
    while token:
        page = http.get(
            TASKS,
            params={"page_size": 1, "order_by": "title", "page_token": token},
            headers=alice.headers,
        ).json()
        assert page["total_size"] == 4
        walked += [t["title"] for t in page["tasks"]]
        token = page["next_page_token"]
    assert walked == ["50% report", "buy MILK", "Call mum", "Pay rent"]
    token = first["next_page_token"]
    for account, params in [
        (alice, {"page_token": token}),  # another query (default order)
        (alice, {"page_token": token, "order_by": "title", "completed": "false"}),
        (bob, {"page_token": token, "order_by": "title"}),
        (alice, {"page_token": token[:-4], "order_by": "title"}),
    ]:
        response = http.get(TASKS, params=params, headers=account.headers)
        assert_error(response, 400, 3, reason="INVALID_PAGE_TOKEN", fields=["page_token"])


def test_bad_query_parameters_are_400(http: httpx.Client, alice: Account) -> None:
    cases = [
        ({"order_by": "title; drop table tasks"}, ["order_by"]),
        ({"order_by": "colour"}, ["order_by"]),
        ({"q": "x" * 201}, ["q"]),
        ({"tag": " "}, ["tag"]),
    ]
    for params, fields in cases:
        assert_error(http.get(TASKS, params=params, headers=alice.headers), 400, 3, fields=fields)
    for params in (
        {"due_after": "yesterday"},
        {"priority": "PRIORITY_HUGE"},
        {"completed": "maybe"},
        {"page_size": "ten"},
        {"colour": "red"},
    ):
        assert_error(http.get(TASKS, params=params, headers=alice.headers), 400, 3)
    unspecified = http.get(
        TASKS, params={"priority": "PRIORITY_UNSPECIFIED"}, headers=alice.headers
    )
    assert_error(unspecified, 400, 3, fields=["priority"])
    assert http.get("/api/v1/users/me", headers=alice.headers).status_code == 200  # nothing broke


def test_stats_tags_reminders(http: httpx.Client, alice: Account) -> None:
    seeded = _seed(http, alice)
    http.patch(f"{TASKS}/{seeded['later']['id']}/complete", headers=alice.headers)
    stats = http.get(f"{TASKS}:stats", headers=alice.headers)
    assert stats.status_code == 200, stats.text
    body = stats.json()
    assert (body["total"], body["completed"], body["open"], body["overdue"]) == (4, 2, 2, 1)
    assert [p["priority"] for p in body["by_priority"]] == [
        "PRIORITY_LOW",
        "PRIORITY_MEDIUM",
        "PRIORITY_HIGH",
        "PRIORITY_URGENT",
    ]
    assert {c["category"]: c["count"] for c in body["by_category"]} == {"": 3, "errands": 1}
    assert sum(d["count"] for d in body["completed_per_day"]) == 2
    assert all(len(d["date"]) == 10 for d in body["completed_per_day"])
    filtered = http.get(
        f"{TASKS}:stats", params={"category": "errands"}, headers=alice.headers
    ).json()
    assert filtered["total"] == 1 and filtered["completed"] == 0
    tags = http.get("/api/v1/users/me/tags", headers=alice.headers).json()
    assert tags == {"tags": [{"name": "home", "task_count": 2}, {"name": "shop", "task_count": 1}]}
    reminders = http.get("/api/v1/users/me/reminders", headers=alice.headers).json()["reminders"]
    assert [r["title"] for r in reminders] == ["buy MILK"] and "due_at" in reminders[0]
    wide = http.get(
        "/api/v1/users/me/reminders", params={"window": "172800s"}, headers=alice.headers
    ).json()
    assert [r["title"] for r in wide["reminders"]] == ["buy MILK"]  # "later" is completed now
    for window in ("0s", "-5s", "40000000s"):
        bad = http.get(
            "/api/v1/users/me/reminders", params={"window": window}, headers=alice.headers
        )
        assert_error(bad, 400, 3)


def test_stats_over_grpc(channel: grpc.Channel, http: httpx.Client) -> None:
    account = register_and_login(http)
    _seed(http, account)
    stub = task_service_pb2_grpc.TaskServiceStub(channel)
    stats = stub.GetTaskStats(
        task_service_pb2.GetTaskStatsRequest(user_id="me", tag=["home"]), metadata=account.metadata
    )
    assert (stats.total, stats.overdue) == (2, 1)
    page = stub.ListTasks(
        task_service_pb2.ListTasksRequest(user_id="me", order_by="title desc", page_size=2),
        metadata=account.metadata,
    )
    assert [t.title for t in page.tasks] == ["Pay rent", "Call mum"] and page.total_size == 4
