"""A single-page app in headless Chromium, on an allowed origin, against the real stack.

The page (tests/e2e/spa_client.js) uses only `fetch` in cors mode, a Bearer header, JSON
bodies and ReadableStream, as a frontend would. It runs the main flow, reads every kind of
answer the edge gives (Envoy's own errors included) from JavaScript, streams NDJSON, sees a
watch event arrive after a write, sends tracing headers, and holds 10 watch streams over
HTTP/2 (the development HTTPS on the same port) while other calls stay fast, where over
HTTP/1.1 the 7th request stalls behind 6 open streams. A foreign origin reads nothing.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.e2e.browser import Origin, open_page
from tests.e2e.conftest import EXTRA_CORS_HEADER, Stack

pytestmark = pytest.mark.e2e

SPA_CLIENT = Path(__file__).with_name("spa_client.js")
TRACE_HEADERS = {
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "tracestate": "vendor=opaque",
    "baggage": "user.tier=gold",
    "sentry-trace": "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
    "x-requested-with": "XMLHttpRequest",
    "cache-control": "no-cache",
    EXTRA_CORS_HEADER: "acme",  # allowed by TODO_CORS_ALLOW_HEADERS
}


def _https(stack: Stack) -> str:
    """The same Envoy port over HTTPS (development certificate): HTTP/2 for browsers."""
    return stack.rest.replace("http://127.0.0.1:", "https://localhost:")


@contextlib.asynccontextmanager
async def spa(
    chromium: Browser, origin: Origin, base: str, *, https: bool = False
) -> AsyncIterator[Page]:
    """A page on `origin` with the SPA client loaded, calling the API at `base`."""
    async with open_page(chromium, origin, ignore_https_errors=https) as page:
        await page.add_script_tag(path=str(SPA_CLIENT))
        await page.evaluate("(base) => { api.base = base; }", base)
        yield page


def _email() -> str:
    return f"spa-{uuid.uuid4().hex[:12]}@example.com"


async def _sign_up(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate("(e) => api.signUp(e)", _email())
    assert result["login"]["status"] == 200, result
    return result


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
    async with spa(chromium, app_origin, stack.rest) as page:
        out: dict[str, Any] = await page.evaluate(MAIN_FLOW, _email())
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
    async with spa(chromium, app_origin, stack.rest) as page:
        await _sign_up(page)
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
    async with spa(chromium, app_origin, stack.rest) as page:
        await _sign_up(page)
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
    async with spa(chromium, app_origin, stack.rest) as page:
        await _sign_up(page)
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
    async with spa(chromium, foreign_origin, stack.rest) as page:
        out: dict[str, Any] = await page.evaluate(FOREIGN)
    for name, answer in out.items():
        assert "Failed to fetch" in answer.get("error", ""), (name, answer)


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


OPEN_WATCHES = """async ([count, base]) => {
  for (let i = 0; i < count; i++) api.openWatch("w" + i, base);
}"""
TIMED_CALLS = """async ([count, base]) => {
  const ms = [];
  for (let i = 0; i < count; i++) {
    const r = await api.call("GET", "/api/v1/users/me", {base, timeoutMs: 5000});
    if (r.status !== 200) return {failed: r};
    ms.push(r.ms);
  }
  return {ms};
}"""


async def _record_protocols(page: Page) -> set[str]:
    """A set that collects the protocol of every response the page gets ("h2", "http/1.1").

    From Chromium's DevTools protocol: Resource Timing hides it for cross-origin requests.
    """
    protocols: set[str] = set()
    session = await page.context.new_cdp_session(page)
    await session.send("Network.enable")
    session.on("Network.responseReceived", lambda e: protocols.add(e["response"]["protocol"]))
    return protocols


async def test_ten_watch_streams_over_http2_leave_other_calls_fast(
    chromium: Browser, app_origin: Origin, stack: Stack
) -> None:
    base = _https(stack)
    async with spa(chromium, app_origin, base, https=True) as page:
        protocols = await _record_protocols(page)
        await _sign_up(page)
        await page.evaluate(OPEN_WATCHES, [10, base])
        await page.wait_for_function(
            "Object.values(api.watches).every(w => w.events.length >= 1)", timeout=20000
        )
        timed: dict[str, Any] = await page.evaluate(TIMED_CALLS, [100, base])
        watches = await page.evaluate(
            "Object.values(api.watches).map(w => [w.status, w.error, w.events.length])"
        )
    assert "failed" not in timed, timed
    assert all(status == 200 and error is None for status, error, _ in watches), watches
    assert protocols == {"h2"}, protocols  # every request and stream on one HTTP/2 connection
    p99 = _p99(timed["ms"])
    p50 = sorted(timed["ms"])[49]
    print(f"\n10 watch streams over h2: 100 GETs p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    assert p99 <= 100, sorted(timed["ms"])[-5:]


STALLED = """async (base) => {
  const stalled = await api.call("GET", "/api/v1/users/me", {base, timeoutMs: 2000});
  api.closeWatch("w0");
  const after = await api.call("GET", "/api/v1/users/me", {base, timeoutMs: 10000});
  return {stalled, after};
}"""


async def test_over_http1_six_watch_streams_stall_the_seventh_request(
    chromium: Browser, app_origin: Origin, stack: Stack
) -> None:
    """Why `make run` serves HTTPS too: Chromium opens at most 6 HTTP/1.1 connections per host."""
    async with spa(chromium, app_origin, stack.rest) as page:
        protocols = await _record_protocols(page)
        await _sign_up(page)
        await page.evaluate("api.call('GET', '/api/v1/users/me')")  # preflight now cached
        await page.evaluate(OPEN_WATCHES, [6, stack.rest])
        await page.wait_for_function(
            "Object.values(api.watches).every(w => w.events.length >= 1)", timeout=20000
        )
        out: dict[str, Any] = await page.evaluate(STALLED, stack.rest)
        for i in range(1, 6):
            await page.evaluate(f"api.closeWatch('w{i}')")
    assert "TimeoutError" in out["stalled"].get("error", ""), out  # waited 2 s for a connection
    assert out["after"].get("status") == 200, out  # one stream closed: it goes through at once
    assert out["after"]["ms"] < 1000, out
    assert protocols == {"http/1.1"}, protocols
