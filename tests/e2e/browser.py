"""Headless Chromium for the browser tests, shared by every test that drives a page.

Playwright for Python drives Debian's `/usr/bin/chromium` (never a downloaded browser:
`playwright install` cannot reach its CDN here). `make system-deps` installs it; without it the
browser tests skip and name the package.

Two origins take part, both on loopback so no Private Network Access rule gets in the way:
- `app_origin` (`http://localhost:<port>`): a static page server standing in for a single-page
  app. The main e2e stack allows it in `TODO_CORS_ORIGINS`, so `fetch` from it is cross-origin
  (another host name and port than the API's `http://127.0.0.1:<envoy>`) and allowed.
- `foreign_origin` (`http://localhost:<another port>`): the same kind of page, not allowed.

Playwright's async API runs on the suite's session event loop (its sync API would leave a
running loop behind and break every async test after it). In a test:

    async def test_x(chromium, app_origin, stack):
        async with open_page(chromium, app_origin) as page:
            status = await page.evaluate("async (u) => (await fetch(u)).status", stack.rest)

"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Flags for a closed network: without the background-networking ones Chromium keeps trying
(and failing) to reach Google's hosts."""

BLANK_PAGE = b"<!doctype html><html><head><title>app</title></head><body>app</body></html>"


@dataclasses.dataclass(frozen=True)
class Origin:
    """A loopback origin serving a blank HTML page at `/`."""

    url: str
    """`http://localhost:<port>`, exactly as the browser sends it in `Origin`."""


class _BlankPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(BLANK_PAGE)))
        self.end_headers()
        self.wfile.write(BLANK_PAGE)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@contextlib.contextmanager
def serve_blank_page() -> Iterator[Origin]:
    """Serve the blank page on a free loopback port until the block ends."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BlankPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Origin(f"http://localhost:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None if they can."""
    if not CHROMIUM.exists():
        return "needs Debian package chromium (make system-deps)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "needs the playwright Python package (make venv)"
    return None


@pytest.fixture(scope="session")
def app_origin() -> Iterator[Origin]:
    """The allowed single-page-app origin (the main stack lists it in TODO_CORS_ORIGINS)."""
    with serve_blank_page() as origin:
        yield origin


@pytest.fixture(scope="session")
def foreign_origin() -> Iterator[Origin]:
    """An origin the stack does not allow."""
    with serve_blank_page() as origin:
        yield origin


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Browser]:
    """One headless Chromium for the session."""
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def open_page(
    chromium: Browser, origin: Origin, *, ignore_https_errors: bool = False
) -> AsyncIterator[Page]:
    """A fresh browser context (own cache and connections) with one page loaded from `origin`.

    `ignore_https_errors`: accept a certificate the browser does not trust, such as the
    development certificate `make run` serves HTTPS (HTTP/2) with.
    """
    context = await chromium.new_context(ignore_https_errors=ignore_https_errors)
    try:
        page = await context.new_page()
        await page.goto(origin.url + "/")
        yield page
    finally:
        await context.close()


SPA_CLIENT = Path(__file__).with_name("spa_client.js")
"""The single-page app's API client (`window.api`): fetch, NDJSON, watch streams."""


@contextlib.asynccontextmanager
async def open_spa(
    chromium: Browser, origin: Origin, base: str, *, https: bool = False
) -> AsyncIterator[Page]:
    """A page on `origin` with SPA_CLIENT loaded, calling the API at `base`.

    `https`: the API is served with a certificate the browser does not trust (the
    development one).
    """
    async with open_page(chromium, origin, ignore_https_errors=https) as page:
        await page.add_script_tag(path=str(SPA_CLIENT))
        await page.evaluate("(base) => { api.base = base; }", base)
        yield page


async def sign_up(page: Page) -> dict[str, object]:
    """Register and log in a new user from the SPA page; later calls carry the token."""
    email = f"spa-{uuid.uuid4().hex[:12]}@example.com"
    result: dict[str, Any] = await page.evaluate("(e) => api.signUp(e)", email)
    assert result["login"]["status"] == 200, result
    return result


def artifact_dir() -> Path:
    """Where browser tests save screenshots (`test-artifacts/`, kept out of git)."""
    path = Path(__file__).resolve().parents[2] / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


__all__ = [
    "CHROMIUM",
    "SPA_CLIENT",
    "Origin",
    "app_origin",
    "artifact_dir",
    "chromium",
    "chromium_missing",
    "foreign_origin",
    "open_page",
    "open_spa",
    "serve_blank_page",
    "sign_up",
]
