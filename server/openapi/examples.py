"""Example values for every request and response, built from the schemas.

An example is derived from a schema: each property takes the value named for its field in
`FIELD_VALUES` (so a title looks like a title everywhere), else a value of its type. Where the
whole-message example would mislead (a PATCH that sets every field), `REQUEST_OVERRIDES` gives
the body. tests/unit/test_openapi.py validates every example against its schema.
"""

from __future__ import annotations

from typing import Any

from server.openapi.schemas import Schema

USER_ID = "0b8f6a52-3c1e-4d55-9a57-2f4a3c9d1e01"
TASK_ID = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
TOKEN = "eyJhbGciOiJIUzI1NiIsImtpZCI6IjNmNGE1YiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl"

FIELD_VALUES: dict[str, Any] = {
    "id": TASK_ID,
    "user_id": USER_ID,
    "task_id": TASK_ID,
    "task_ids": [TASK_ID],
    "email": "ann@example.com",
    "password": "correct horse battery",
    "current_password": "correct horse battery",
    "new_password": "battery staple horse",
    "name": "Ann",
    "timezone": "Europe/Paris",
    "access_token": TOKEN,
    "refresh_token": TOKEN,
    "token_type": "Bearer",
    "expires_in": 900,
    "title": "Buy milk",
    "description": "2 litres, semi-skimmed",
    "completed": False,
    "priority": "PRIORITY_HIGH",
    "category": "errands",
    "tags": ["home"],
    "tag": ["home"],
    "etag": "v1",
    "due_at": "2026-12-01T17:00:00Z",
    "remind_at": "2026-12-01T09:00:00Z",
    "due_after": "2026-12-01T00:00:00Z",
    "due_before": "2026-12-08T00:00:00Z",
    "created_at": "2026-11-30T08:15:00Z",
    "updated_at": "2026-11-30T08:15:00Z",
    "commit_time": "2026-11-30T08:15:00Z",
    "request_id": "import-2026-11-30-001",
    "resume_token": "c2VxPTQyLnNpZz0uLi4",
    "page_token": "",
    "next_page_token": "",
    "page_size": 50,
    "total_size": 1,
    "q": "milk",
    "order_by": "due_at desc",
    "window": "86400s",
    "update_mask": "due_at,tags",
    "date": "2026-11-30",
    "count": 1,
    "task_count": 1,
    "total": 1,
    "open": 1,
    "overdue": 0,
    "due_today": 0,
}
"""Example value per field name; a field not named here gets a value of its type."""

SKIPPED = frozenset({"completed_at", "update_mask", "overdue_only"})
"""Fields left out of whole-message examples (they would contradict the other values)."""

REQUEST_OVERRIDES: dict[str, dict[str, Any]] = {
    "UpdateTask": {"description": "2 litres", "priority": "PRIORITY_HIGH"},
    "CompleteTask": {"completed": True},
    "BatchUpdateTasks": {
        "tasks": [{"id": TASK_ID, "priority": "PRIORITY_URGENT"}],
        "request_id": "import-2026-11-30-002",
    },
    "BatchCompleteTasks": {"task_ids": [TASK_ID], "completed": True},
    "UpdateUser": {"timezone": "Europe/Paris"},
}
"""Request bodies by rpc name, where the derived one would mislead."""

PARAMETER_VALUES: dict[str, Any] = {"user_id": "me", "task_id": TASK_ID}
"""Path parameter examples that differ from FIELD_VALUES."""


class ExampleBuilder:
    """Builds examples from schemas, resolving `$ref`s against the components."""

    def __init__(self, components: dict[str, Schema]) -> None:
        self.components = components

    def resolve(self, schema: Schema) -> Schema:
        """The schema behind a `$ref` (or the schema itself)."""
        ref = schema.get("$ref")
        if ref is None:
            return schema
        return self.components[ref.rsplit("/", 1)[1]]

    def value(self, schema: Schema, name: str | None = None, depth: int = 0) -> Any:
        """An example of `schema`, for a field called `name` if given."""
        schema = self.resolve(schema)
        if name is not None and name in FIELD_VALUES and self.fits(FIELD_VALUES[name], schema):
            return FIELD_VALUES[name]
        kind = schema.get("type")
        if "enum" in schema:
            return next((v for v in schema["enum"] if not v.endswith("_UNSPECIFIED")), None)
        if kind == "object":
            if depth > 4:
                return {}
            return {
                key: self.value(sub, key, depth + 1)
                for key, sub in schema.get("properties", {}).items()
                if key not in SKIPPED
            }
        if kind == "array":
            return [self.value(schema["items"], None, depth + 1)]
        return _scalar(schema)

    def fits(self, value: Any, schema: Schema) -> bool:
        """Whether `value` has the JSON type of `schema` (a name means different things)."""
        if "enum" in schema:
            return value in schema["enum"]
        expected = _JSON_TYPES.get(schema.get("type", ""), object)
        if isinstance(value, bool) and schema.get("type") != "boolean":
            return False
        if isinstance(value, list) and schema.get("type") == "array":
            return all(self.fits(item, self.resolve(schema["items"])) for item in value)
        return isinstance(value, expected)


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
    "array": list,
    "object": dict,
}


def _scalar(schema: Schema) -> Any:
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "boolean":
        return True
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if fmt == "date-time":
        return "2026-11-30T08:15:00Z"
    if fmt == "int64":
        return "1"
    if "pattern" in schema and schema["pattern"].endswith("s$"):
        return "60s"
    return "text"
