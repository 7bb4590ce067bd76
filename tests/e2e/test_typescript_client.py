"""The TypeScript client a frontend would generate from server/docs/openapi.json, used for real.

`openapi-typescript` turns the checked-in document into types, `tsc` (strict) compiles
clients/typescript/src/flow.ts against them, and the compiled flow runs under Node against the
e2e stack: register, log in, create, batch-create, list with a filter, read a typed error.
The types are generated here rather than committed: they are a pure function of the
document, which check-generated already pins. Needs npm and node (Debian: npm).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "typescript"


def _run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, cwd=CLIENT, capture_output=True, text=True, timeout=600, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def built_client() -> Iterator[Path]:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("needs npm and node (Debian package npm)")
    _run("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
    _run("npm", "run", "--silent", "generate")
    _run("npm", "run", "--silent", "build")
    yield CLIENT


def test_the_generated_client_runs_the_main_flow(built_client: Path, stack: Stack) -> None:
    result = _run("node", "build/src/flow.js", stack.rest)
    seen = json.loads(result.stdout)
    assert seen["created_status"] == 201
    assert seen["expires_in"] > 0
    assert seen["batch_size"] == 2
    assert seen["titles"] == ["Buy milk", "Pay rent"]  # tag=home, by title
    assert seen["total_size"] == 2
    assert seen["rate_limit"] is not None  # the documented RateLimit-Limit header
    assert seen["missing_status"] == 404
    assert seen["missing_reasons"] == ["TASK_NOT_FOUND"]


REFUSED = [
    'api.POST("/api/v1/users/{user_id}/tasks", {params: me, body: {title: 5}})',
    'api.GET("/api/v1/users/{user_id}/tasks", {params: {...me, query: {page_size: "9"}}})',
    'api.GET("/api/v1/users/{user_id}/todos", {params: me})',
    'api.GET("/api/v1/users/{user_id}/tasks", {params: {query: {page_size: 9}}})',
]
"""A wrong type in a body and in a query, a path that does not exist, a missing path
parameter: each line must fail to compile."""


def test_the_types_refuse_what_the_document_does_not_allow(built_client: Path) -> None:
    source = built_client / "src" / "_refused.ts"
    header = [
        'import createClient from "openapi-fetch";',
        'import type { paths } from "../generated/schema.js";',
        "const api = createClient<paths>({ baseUrl: '' });",
        'const me = { path: { user_id: "me" } } as const;',
    ]
    lines = [f"export const call{i} = {call};" for i, call in enumerate(REFUSED)]
    source.write_text("\n".join(header + lines) + "\n")
    try:
        result = _run("npx", "tsc", "-p", ".", "--noEmit", check=False)
    finally:
        source.unlink()
    failing = {int(n) for n in re.findall(r"src/_refused\.ts\((\d+),", result.stdout)}
    assert failing == set(range(len(header) + 1, len(header) + len(REFUSED) + 1)), result.stdout
