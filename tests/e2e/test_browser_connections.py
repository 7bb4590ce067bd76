"""Watch streams in one browser page: over HTTP/2 other calls stay fast, over HTTP/1.1 they stall.

Chromium opens at most 6 HTTP/1.1 connections per host and each open `tasks:watch` holds
one, so a 7th request waits until a stream closes. Over HTTPS the browser speaks HTTP/2 and
every call and stream shares one connection: `make run` serves HTTPS with a development
certificate on the same port for that reason (README, "Using it from a web frontend").
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.e2e.browser import Origin, open_spa, sign_up
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def _https(stack: Stack) -> str:
    """The same Envoy port over HTTPS (development certificate): HTTP/2 for browsers."""
    return stack.rest.replace("http://127.0.0.1:", "https://localhost:")


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


async def _record_protocols(page: Page, base: str) -> set[str]:
    """A set that collects the protocol of every API response the page gets ("h2", ...).

    From Chromium's DevTools protocol: Resource Timing hides it for cross-origin requests.
    Only responses from `base` count: the page's own origin (a favicon request, say) is
    served by a test HTTP/1.0 server, at a moment that varies from run to run.
    """
    protocols: set[str] = set()
    session = await page.context.new_cdp_session(page)
    await session.send("Network.enable")

    def record(event: dict[str, Any]) -> None:
        if event["response"]["url"].startswith(base):
            protocols.add(event["response"]["protocol"])

    session.on("Network.responseReceived", record)
    return protocols


async def test_ten_watch_streams_over_http2_leave_other_calls_fast(
    chromium: Browser, app_origin: Origin, stack: Stack
) -> None:
    base = _https(stack)
    async with open_spa(chromium, app_origin, base, https=True) as page:
        protocols = await _record_protocols(page, base)
        await sign_up(page)
        alone: dict[str, Any] = await page.evaluate(TIMED_CALLS, [100, base])
        await page.evaluate(OPEN_WATCHES, [10, base])
        await page.wait_for_function(
            "Object.values(api.watches).every(w => w.events.length >= 1)", timeout=20000
        )
        timed: dict[str, Any] = await page.evaluate(TIMED_CALLS, [100, base])
        watches = await page.evaluate(
            "Object.values(api.watches).map(w => [w.status, w.error, w.events.length])"
        )
    assert "failed" not in timed and "failed" not in alone, (alone, timed)
    assert all(status == 200 and error is None for status, error, _ in watches), watches
    assert protocols == {"h2"}, protocols  # every request and stream on one HTTP/2 connection
    p99, p99_alone = _p99(timed["ms"]), _p99(alone["ms"])
    p50, p50_alone = sorted(timed["ms"])[49], sorted(alone["ms"])[49]
    print(
        f"\n100 GETs over h2: without streams p50 {p50_alone:.1f} ms, p99 {p99_alone:.1f} ms;"
        f" with 10 watch streams open p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )
    # 100 ms is the target; on a machine so loaded that calls without any stream already take
    # longer, 3 times that. Over HTTP/1.1 the same calls wait seconds (the test below).
    assert p99 <= max(100.0, 3 * p99_alone), (p99_alone, sorted(timed["ms"])[-5:])


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
    async with open_spa(chromium, app_origin, stack.rest) as page:
        protocols = await _record_protocols(page, stack.rest)
        await sign_up(page)
        await page.evaluate("api.call('GET', '/api/v1/users/me')")  # preflight now cached
        await page.evaluate(OPEN_WATCHES, [6, stack.rest])
        await page.wait_for_function(
            "Object.values(api.watches).every(w => w.events.length >= 1)", timeout=20000
        )
        out: dict[str, Any] = await page.evaluate(STALLED, stack.rest)
        for i in range(1, 6):
            await page.evaluate(f"api.closeWatch('w{i}')")
    print(
        f"\n6 watch streams over HTTP/1.1: a 7th GET gave up after {out['stalled']['ms']:.0f} ms;"
        f" with one stream closed it took {out['after'].get('ms', 0):.0f} ms"
    )
    assert "TimeoutError" in out["stalled"].get("error", ""), out  # waited 2 s for a connection
    assert out["after"].get("status") == 200, out  # one stream closed: it goes through at once
    assert out["after"]["ms"] < 1000, out
    assert protocols == {"http/1.1"}, protocols
