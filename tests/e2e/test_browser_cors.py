"""A single-page app in headless Chromium calls the API cross-origin with `fetch`."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser

from tests.e2e.browser import Origin, open_page
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

REGISTER = """async ([api, email]) => {
  try {
    const r = await fetch(api + "/api/v1/auth/register", {
      method: "POST", mode: "cors",
      headers: {"content-type": "application/json"},
      body: JSON.stringify({email, password: "correct horse battery", name: "Browser"}),
    });
    return {status: r.status, requestId: r.headers.get("x-request-id"), body: await r.json()};
  } catch (e) {
    return {error: String(e)};
  }
}"""


async def _register(chromium: Browser, origin: Origin, stack: Stack, email: str) -> dict[str, Any]:
    async with open_page(chromium, origin) as page:
        result: dict[str, Any] = await page.evaluate(REGISTER, [stack.rest, email])
        return result


async def test_allowed_origin_reads_the_answer(
    chromium: Browser, app_origin: Origin, stack: Stack
) -> None:
    result = await _register(chromium, app_origin, stack, "spa-allowed@example.com")
    assert result.get("status") == 201, result
    assert result["body"]["email"] == "spa-allowed@example.com"
    assert result["requestId"], "x-request-id must be exposed to JavaScript"


async def test_foreign_origin_is_refused(
    chromium: Browser, foreign_origin: Origin, stack: Stack
) -> None:
    result = await _register(chromium, foreign_origin, stack, "spa-foreign@example.com")
    assert "error" in result and "Failed to fetch" in result["error"], result
