"""A single-page app in headless Chromium, on an allowed origin, against the real stack.

The page (tests/e2e/spa_client.js) uses only `fetch` in cors mode, a Bearer header, JSON
bodies and ReadableStream, as a frontend would. It runs the main flow, reads every kind of
answer the edge gives (Envoy's own errors included) from JavaScript, streams NDJSON, sees a
watch event arrive after a write and sends tracing headers (many streams at once, over
HTTP/1.1 and HTTP/2: test_browser_connections.py). A foreign origin reads nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.async_api import Browser

from tests.e2e.browser import Origin, open_spa, sign_up
from tests.e2e.conftest import EXTRA_CORS_HEADER, Stack

pytestmark = pytest.mark.e2e

TRACE_HEADERS = {
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "tracestate": "vendor=opaque",
    "baggage": "user.tier=gold",
    "sentry-trace": "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
    "x-requested-with": "XMLHttpRequest",
    "cache-control": "no-cache",
    EXTRA_CORS_HEADER: "acme",  # allowed by TODO_CORS_ALLOW_HEADERS
}


MAIN_FLOW = """async (email) => {
  const password = "correct horse battery";
  const out = {};
  out.register = await api.call("POST", "/api/v1/auth/register",
                                {body: {email, password, name: "Spa"}});
  out.login = await api.call("POST", "/api/v1/auth/login", {body: {email, password}});
  api.token = out.login.json.access_token;
  const refreshToken = out.login.json.refresh_token;
  const task = {title: "Buy milk", priority: "PRIORITY_HIGH", tags: ["home"]};
  out.create = await api.call("POST", "/api/v1/users/me/tasks", {body: task});
  const id = out.create.json.id;
  out.list = await api.call("GET", "/api/v1/users/me/tasks");
  out.patch = await api.call("PATCH", `/api/v1/users/me/tasks/${id}`, {body: {description: "2 l"}});
  out.complete = await api.call("PATCH", `/api/v1/users/me/tasks/${id}/complete`);
  out.refresh = await api.call("POST", "/api/v1/auth/refresh",
                               {body: {refresh_token: refreshToken}, token: null});
  api.token = out.refresh.json.access_token;
  out.delete = await api.call("DELETE", `/api/v1/users/me/tasks/${id}`);
  out.logout = await api.call("POST", "/api/v1/auth/logout");
  // Revocation reaches the other server process by NOTIFY, within about a second.
  const deadline = performance.now() + 5000;
  do {
    out.revoked = await api.call("GET", "/api/v1/users/me/tasks");
  } while (out.revoked.status === 200 && performance.now() < deadline);
  return out;
}"""


async def test_main_flow(chromium: Browser, app_origin: Origin, stack: Stack) -> None:
    async with open_spa(chromium, app_origin, stack.rest) as page:
        email = f"spa-{uuid.uuid4().hex[:12]}@example.com"
        out: dict[str, Any] = await page.evaluate(MAIN_FLOW, email)
    statuses = {step: answer.get("status", answer.get("error")) for step, answer in out.items()}
    assert statuses == {
        "register": 201,
        "login": 200,
        "create": 201,
        "list": 200,
        "patch": 200,
        "complete": 200,
        "refresh": 200,
        "delete": 204,
        "logout": 204,
        "revoked": 401,
    }, out
    assert [t["title"] for t in out["list"]["json"]["tasks"]] == ["Buy milk"]
    assert out["patch"]["json"]["description"] == "2 l"
    assert out["complete"]["json"]["completed"] is True
    assert out["revoked"]["json"]["code"] == 16
    for step, answer in out.items():
        assert answer["headers"].get("x-request-id"), step  # exposed to JavaScript
    for step in ("create", "list", "patch", "complete", "delete"):
        headers = out[step]["headers"]
        assert int(headers["ratelimit-limit"]) > 0, step
        assert 0 <= int(headers["ratelimit-remaining"]) <= int(headers["ratelimit-limit"])
        assert int(headers["ratelimit-reset"]) >= 0


ERRORS = """async ({lone}) => {
  const big = "x".repeat(2 * 1024 * 1024);
  return {
    outsideApi: await api.call("GET", "/nope"),
    root: await api.call("GET", "/"),
    unknownApi: await api.call("GET", "/api/v1/nope"),
    unknownPathPreflighted: await api.call("PUT", "/nope", {headers: {traceparent:
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}),
    unauthenticated: await api.call("GET", "/api/v1/users/me", {token: null}),
    malformed: await api.call("POST", "/api/v1/users/me/tasks", {body: "{not json"}),
    bodyTooLarge: await api.call("POST", "/api/v1/users/me/tasks", {body: big}),
    headersTooLarge: await api.call("GET", "/api/v1/users/me",
                                    {headers: {baggage: "b".repeat(40 * 1024)}}),
    headersOverBackstop: await api.call("GET", "/api/v1/users/me",
                                        {headers: {baggage: "b".repeat(70 * 1024)}}),
    health: await api.call("GET", "/healthz"),
    docs: await api.call("GET", "/docs"),
    openapi: await api.call("GET", "/openapi.json"),
    noUpstreamHealth: await api.call("GET", "/healthz", {base: lone}),
    noUpstream: await api.call("GET", "/api/v1/users/me", {base: lone}),
  };
}"""


async def test_every_kind_of_answer_is_readable_from_javascript(
    chromium: Browser, app_origin: Origin, stack: Stack, lone_edge: str
) -> None:
    async with open_spa(chromium, app_origin, stack.rest) as page:
        await sign_up(page)
        out: dict[str, Any] = await page.evaluate(ERRORS, {"lone": lone_edge})
    expected = {
        "outsideApi": (404, "ROUTE_NOT_FOUND"),
        "root": (404, "ROUTE_NOT_FOUND"),
        "unknownApi": (404, "ROUTE_NOT_FOUND"),
        "unknownPathPreflighted": (404, "ROUTE_NOT_FOUND"),
        "unauthenticated": (401, None),
        "malformed": (400, "MALFORMED_REQUEST"),
        "bodyTooLarge": (413, "BODY_TOO_LARGE"),
        "headersTooLarge": (431, "HEADERS_TOO_LARGE"),
        "headersOverBackstop": (431, "HEADERS_TOO_LARGE"),
        "noUpstream": (503, "UPSTREAM_UNAVAILABLE"),
    }
    for name, (status, reason) in expected.items():
        answer = out[name]
        assert answer.get("status") == status, (name, answer)
        assert answer["headers"]["content-type"].startswith("application/json"), name
        details = answer["json"]["details"]
        if reason is not None:
            assert [d["reason"] for d in details if "reason" in d] == [reason], (name, answer)
        assert answer["headers"].get("x-request-id"), name
    assert out["health"]["status"] == 200 and out["noUpstreamHealth"]["status"] == 503
    for name in ("health", "noUpstreamHealth", "docs", "openapi"):
        assert "error" not in out[name], (name, out[name])  # whatever it says, JS reads it
        assert out[name]["headers"].get("x-request-id"), name


NDJSON_AND_WATCH = """async () => {
  for (const title of ["one", "two", "three"]) {
    await api.call("POST", "/api/v1/users/me/tasks", {body: {title}});
  }
  return await api.stream("/api/v1/users/me/tasks:stream?order_by=created_at%20asc");
}"""


async def test_ndjson_stream_and_a_watch_event_after_a_write(
    chromium: Browser, app_origin: Origin, stack: Stack
) -> None:
    async with open_spa(chromium, app_origin, stack.rest) as page:
        await sign_up(page)
        streamed: dict[str, Any] = await page.evaluate(NDJSON_AND_WATCH)
        assert streamed.get("status") == 200, streamed
        assert streamed["contentType"].startswith("application/json")
        assert [t["title"] for t in streamed["items"]] == ["one", "two", "three"]
        await page.evaluate("api.openWatch('w')")
        await page.wait_for_function("api.watches.w.events.length >= 1", timeout=15000)
        first = await page.evaluate("api.watches.w.events[0]")
        assert first["event_type"] == "EVENT_TYPE_HEARTBEAT"
        created = await page.evaluate(
            "api.call('POST', '/api/v1/users/me/tasks', {body: {title: 'seen live'}})"
        )
        assert created["status"] == 201
        await page.wait_for_function(
            "api.watches.w.events.some(e => e.event_type === 'EVENT_TYPE_CREATED')",
            timeout=15000,
        )
        events = await page.evaluate("api.watches.w.events")
        live = [e for e in events if e["event_type"] == "EVENT_TYPE_CREATED"]
        assert [e["task"]["title"] for e in live] == ["seen live"]
        assert live[0]["task_id"] == created["json"]["id"]
        await page.evaluate("api.closeWatch('w')")


async def test_tracing_headers_pass_the_preflight(
    chromium: Browser, app_origin: Origin, stack: Stack
) -> None:
    async with open_spa(chromium, app_origin, stack.rest) as page:
        await sign_up(page)
        traced = await page.evaluate(
            "(h) => api.call('GET', '/api/v1/users/me', {headers: h})", TRACE_HEADERS
        )
        created = await page.evaluate(
            "(h) => api.call('POST', '/api/v1/users/me/tasks', {headers: h, body: {title: 't'}})",
            TRACE_HEADERS,
        )
        refused = await page.evaluate(
            "api.call('GET', '/api/v1/users/me', {headers: {'x-not-allowed': '1'}})"
        )
    assert traced.get("status") == 200, traced
    assert created.get("status") == 201, created
    assert "Failed to fetch" in refused.get("error", ""), refused  # the control: not allowed


FOREIGN = """async () => ({
  health: await api.call("GET", "/healthz"),
  register: await api.signUp("foreign@example.com").then((r) => r.register),
  notFound: await api.call("GET", "/nope"),
  preflighted: await api.call("GET", "/api/v1/users/me", {token: "x.y.z"}),
})"""


async def test_a_foreign_origin_reads_nothing(
    chromium: Browser, foreign_origin: Origin, stack: Stack
) -> None:
    async with open_spa(chromium, foreign_origin, stack.rest) as page:
        out: dict[str, Any] = await page.evaluate(FOREIGN)
    for name, answer in out.items():
        assert "Failed to fetch" in answer.get("error", ""), (name, answer)
