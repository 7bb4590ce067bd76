"""Our schemathesis checks (tests/fuzz/hooks.py) fail on what they are meant to catch."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.fuzz import hooks

DOCUMENT = json.loads(
    (Path(__file__).resolve().parents[2] / "server" / "docs" / "openapi.json").read_text()
)
STREAM = DOCUMENT["paths"]["/api/v1/users/{user_id}/tasks:stream"]["get"]
TASK = STREAM["responses"]["200"]["content"]["application/json"]["example"]


def _case(operation: dict[str, Any]) -> Any:
    return SimpleNamespace(
        operation=SimpleNamespace(
            definition=SimpleNamespace(raw=operation),
            schema=SimpleNamespace(raw_schema=DOCUMENT),
        )
    )


def _response(text: str, status: int = 200) -> Any:
    return SimpleNamespace(status_code=status, text=text)


def test_ndjson_lines_that_match_pass() -> None:
    body = json.dumps(TASK) + "\n" + json.dumps({**TASK, "title": "other"}) + "\n"
    assert hooks.ndjson_lines_conform(None, _response(body), _case(STREAM)) is None
    assert hooks.ndjson_lines_conform(None, _response(""), _case(STREAM)) is None


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("{not json", "is not JSON"),
        (json.dumps({**TASK, "priority": 3}), "breaks the schema"),
        (json.dumps({"id": "x"}), "breaks the schema"),
    ],
)
def test_a_bad_ndjson_line_fails(line: str, complaint: str) -> None:
    body = json.dumps(TASK) + "\n" + line + "\n"
    with pytest.raises(AssertionError, match=f"line 2 {complaint}"):
        hooks.ndjson_lines_conform(None, _response(body), _case(STREAM))


@pytest.mark.parametrize(
    "body",
    [
        'Traceback (most recent call last):\n  File "/srv/server/app.py", line 3',
        '{"message": "psycopg.errors.UniqueViolation: duplicate key"}',
        '{"message": "syntax error at or near \\"FROM\\""}',
    ],
)
def test_internals_in_a_body_fail(body: str) -> None:
    with pytest.raises(AssertionError, match="leaks internals"):
        hooks.no_internals(None, _response(body, 500), _case(STREAM))


def test_an_ordinary_error_passes() -> None:
    body = '{"code":5,"message":"task not found","details":[]}'
    assert hooks.no_internals(None, _response(body, 404), _case(STREAM)) is None
