"""The /docs page in headless Chromium, used as a newcomer would: Swagger UI's "Try it out".

It loads /docs from Envoy, checks every operation of the document is listed, registers and
logs in from the page, authorizes with the token, creates a task and lists it, all through
Swagger UI's own buttons, so the requests are the page's (same origin, under its CSP). A
screenshot is saved in test-artifacts/. Needs Debian's chromium (make system-deps).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

from server.edge import DOCS_CSP
from tests.e2e.browser import artifact_dir
from tests.e2e.conftest import Stack

if TYPE_CHECKING:
    from playwright.async_api import Browser, Locator, Page

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
REPO = Path(__file__).resolve().parents[2]
DOCUMENT = REPO / "server" / "docs" / "openapi.json"
API_CSP = "default-src 'none'; frame-ancestors 'none'"


def _operation_count() -> int:
    paths = json.loads(DOCUMENT.read_text())["paths"]
    return sum(len(item) for item in paths.values())


async def _operation(page: Page, tag: str, operation_id: str) -> Locator:
    """Expand one operation and switch it to "Try it out"; returns its locator."""
    block = page.locator(f"#operations-{tag}-{operation_id}")
    await block.locator(".opblock-summary").first.click()
    await block.locator("button.try-out__btn").click()
    return block


async def _execute(block: Locator, expected: int) -> dict[str, Any]:
    """Press Execute and return the JSON body of the live response (checking its status)."""
    await block.locator("button.execute").click()
    live = block.locator(".live-responses-table tbody .response").first
    status = live.locator(".response-col_status")
    await status.wait_for()
    assert (await status.inner_text()).strip() == str(expected)
    body = await live.locator(".response-col_description pre").first.inner_text()
    parsed: dict[str, Any] = json.loads(body)
    return parsed


async def _fill_body(block: Locator, body: dict[str, Any]) -> None:
    area = block.locator("textarea.body-param__text")
    await area.fill(json.dumps(body))


async def _fill_param(block: Locator, name: str, value: str) -> None:
    field = block.locator(f'tr[data-param-name="{name}"] input')
    await field.fill(value)


async def drive_docs(page: Page, base: str) -> dict[str, Any]:
    """The whole newcomer flow; returns what the test asserts on."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(f"{base}/docs")
    await page.locator(".opblock").first.wait_for()
    listed = await page.locator(".opblock").count()

    email = f"docs-{uuid.uuid4().hex[:10]}@example.com"
    register = await _operation(page, "AuthService", "Register")
    await _fill_body(register, {"email": email, "password": PASSWORD, "name": "Docs"})
    user = await _execute(register, 201)

    login = await _operation(page, "AuthService", "Login")
    await _fill_body(login, {"email": email, "password": PASSWORD})
    tokens = await _execute(login, 200)

    await page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".modal-ux")
    await dialog.locator("input").first.fill(str(tokens["access_token"]))
    await dialog.locator("button.modal-btn.authorize").click()
    await dialog.locator("button.btn-done").click()

    create = await _operation(page, "TaskService", "CreateTask")
    await _fill_param(create, "user_id", "me")
    await _fill_body(create, {"title": "Written from /docs", "tags": ["docs"]})
    task = await _execute(create, 201)

    listing = await _operation(page, "TaskService", "ListTasks")
    await _fill_param(listing, "user_id", "me")
    page_of_tasks = await _execute(listing, 200)
    await listing.locator(".live-responses-table").first.scroll_into_view_if_needed()
    await page.screenshot(path=str(artifact_dir() / "docs-page.png"), full_page=False)
    return {
        "listed": listed,
        "user": user,
        "task": task,
        "page": page_of_tasks,
        "email": email,
        "console_errors": errors,
    }


async def test_a_newcomer_registers_logs_in_creates_and_lists_from_the_docs_page(
    chromium: Browser, stack: Stack
) -> None:
    context = await chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = await context.new_page()
        page.set_default_timeout(90_000)  # generous: a loaded 2-core box renders slowly
        seen = await drive_docs(page, stack.rest)
    finally:
        await context.close()
    assert seen["listed"] == _operation_count()
    assert seen["user"]["email"] == seen["email"]
    titles = [t["title"] for t in seen["page"]["tasks"]]
    assert titles == ["Written from /docs"]
    assert seen["page"]["tasks"][0]["id"] == seen["task"]["id"]
    assert seen["page"]["tasks"][0]["user_id"] == seen["user"]["id"]
    assert not [e for e in seen["console_errors"] if "Content Security Policy" in e]


def test_envoy_serves_the_checked_in_document_as_json_and_yaml(http: httpx.Client) -> None:
    as_json = http.get("/openapi.json")
    assert as_json.status_code == 200
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.content == DOCUMENT.read_bytes()
    as_yaml = http.get("/openapi.yaml")
    assert as_yaml.headers["content-type"] == "application/yaml"
    assert yaml.safe_load(as_yaml.text) == as_json.json()


def test_only_the_docs_page_gets_a_csp_that_runs_scripts(http: httpx.Client) -> None:
    page = http.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == DOCS_CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in DOCS_CSP and "unsafe" not in DOCS_CSP
    for asset, kind in [
        ("/docs/swagger-ui-bundle.js", "text/javascript"),
        ("/docs/swagger-ui.css", "text/css"),
        ("/docs/docs.js", "text/javascript"),
    ]:
        answer = http.get(asset)
        assert answer.status_code == 200, asset
        assert answer.headers["content-type"].startswith(kind)
        assert len(answer.content) > 100
        if asset != "/docs/docs.js":  # under gzip_min_bytes
            assert answer.headers["content-encoding"] == "gzip", asset  # 1.5 MB -> 0.5 MB
    # Everything else keeps the API's CSP, the document and unknown /docs paths included.
    for path in ["/openapi.json", "/docs/nothing-here", "/api/v1/users/me"]:
        answer = http.get(path)
        assert answer.headers["content-security-policy"] == API_CSP, path


def test_the_page_loads_nothing_from_another_origin() -> None:
    html = (REPO / "server" / "docs" / "index.html").read_text()
    script = (REPO / "server" / "docs" / "docs.js").read_text()
    assert "http://" not in html + script and "https://" not in html + script
    assert "<script>" not in html  # no inline script: the CSP has no 'unsafe-inline'
