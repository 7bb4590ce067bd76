"""Schemathesis hooks, loaded through `hooks` in tests/fuzz/schemathesis.toml.

- `LoginBearer`: every request carries a bearer token of the fuzzing account, logged in again
  every 4 minutes (access tokens may live shorter than a long `make fuzz` run). The account is
  named by TODO_FUZZ_BASE_URL, TODO_FUZZ_EMAIL and TODO_FUZZ_PASSWORD (tests/e2e/test_fuzz.py).
- `no_internals`: no body (error or not) shows a Python traceback, a database driver's name or
  PostgreSQL's own error text.
- `ndjson_lines_conform`: a newline-delimited JSON answer (the document marks it `x-ndjson`)
  is checked line by line against the response schema, which describes one line.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import httpx
import jsonschema
import schemathesis

LEAKS = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+|psycopg|sqlalchemy"
    r"|asyncpg|syntax error at or near|violates (?:unique|foreign key|check) constraint"
    r"|relation \"[a-z_]+\"|server/[a-z_/]+\.py",
    re.IGNORECASE,
)


@schemathesis.auth(refresh_interval=240)
class LoginBearer:
    """A fresh access token of the fuzzing account for every request."""

    def get(self, case: Any, context: Any) -> str:
        """Log in and return the access token."""
        answer = httpx.post(
            os.environ["TODO_FUZZ_BASE_URL"] + "/api/v1/auth/login",
            json={
                "email": os.environ["TODO_FUZZ_EMAIL"],
                "password": os.environ["TODO_FUZZ_PASSWORD"],
            },
            timeout=30,
        )
        answer.raise_for_status()
        token: str = answer.json()["access_token"]
        return token

    def set(self, case: Any, data: str, context: Any) -> None:
        """Send the token as `Authorization: Bearer`."""
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.check
def no_internals(ctx: Any, response: Any, case: Any) -> bool | None:
    """Fail when a body leaks a stack trace, SQL or a database error."""
    found = LEAKS.search(response.text or "")
    if found:
        raise AssertionError(f"the body leaks internals: {found.group(0)!r}")
    return None


def _media(case: Any, status: int) -> dict[str, Any]:
    responses = case.operation.definition.raw.get("responses", {})
    response = responses.get(str(status), {})
    media: dict[str, Any] = response.get("content", {}).get("application/json", {})
    return media


@schemathesis.check
def ndjson_lines_conform(ctx: Any, response: Any, case: Any) -> bool | None:
    """Fail when a line of an NDJSON answer is not JSON or breaks the documented schema."""
    media = _media(case, response.status_code)
    if not media.get("x-ndjson"):
        return None
    document = case.operation.schema.raw_schema
    schema = {**media["schema"], "components": document["components"]}
    validator = jsonschema.Draft202012Validator(schema)
    for number, line in enumerate(response.text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as error:
            raise AssertionError(f"line {number} is not JSON: {error}") from None
        errors = sorted(validator.iter_errors(value), key=str)
        if errors:
            raise AssertionError(f"line {number} breaks the schema: {errors[0].message}")
    return None
