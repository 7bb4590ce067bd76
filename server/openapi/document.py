"""The whole OpenAPI 3.1 document: info, paths, components, security.

`build(index, facts)` is pure (a descriptor set and edge facts in, a dict out); `generate()`
reads the checked-in descriptor set and Envoy template. `to_json` / `to_yaml` give the bytes
`make generate` writes, stable across runs (sorted nothing, insertion order kept).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from server import resources
from server.openapi import facts, links
from server.openapi.facts import EdgeFacts
from server.openapi.operations import OperationBuilder
from server.openapi.protos import ProtoIndex
from server.openapi.schemas import Schema, SchemaBuilder, reachable

REPO = Path(__file__).resolve().parents[2]
DESCRIPTOR_SET = resources.descriptor_set()
SERVICES = ("todo.v1.AuthService", "todo.v1.UserService", "todo.v1.TaskService")
"""The services Envoy transcodes (its `services:` list)."""
DETAIL_TYPES = (".google.rpc.BadRequest", ".google.rpc.ErrorInfo", ".google.rpc.RetryInfo")
"""The `google.rpc` detail messages the service and Envoy put into errors."""

DESCRIPTION = """\
The todo service's REST API, served by Envoy's gRPC-JSON transcoder in front of the gRPC
service. This document is generated from the same descriptor set Envoy transcodes with
(`server/envoy/todo.binpb`), by `make generate`; do not edit it by hand.

**Authentication.** Register (`POST /api/v1/auth/register`), log in (`POST
/api/v1/auth/login`), then send `Authorization: Bearer <access_token>` on every other route.
Access tokens live 15 minutes; `POST /api/v1/auth/refresh` exchanges the refresh token (once)
for a new pair. `{user_id}` is the caller's id or the literal `me`.

**JSON.** Keys are snake_case on output; input also takes lowerCamelCase. Every scalar,
enum and list is present on output, at its zero value when unset; unset times are left out.
Enums are their names, times RFC 3339, durations like `"3600s"`, 64-bit integers strings.
Unknown body fields are ignored; unknown query parameters get 400.

**Errors** are `google.rpc.Status` JSON: `code` (the gRPC code), `message` (for people) and
`details`, which always hold an `ErrorInfo` with a stable `reason`, and a `BadRequest` naming
each bad field on validation errors, a `RetryInfo` on 429.

**Limits.** Request bodies up to 1 MiB (8 MiB on `tasks:batch*`), 413 above; request headers
up to 32 KiB (431 above). Authenticated calls are rate-limited per user: answers carry
`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`; a refused call gets 429 with
`Retry-After` (seconds). Register, login and refresh are throttled per address and account.

**Streams.** `tasks:stream` and `tasks:watch` answer newline-delimited JSON (one object per
line) with `content-type: application/json`. The watch stream never ends by itself.
"""

ERROR_EXAMPLES: dict[int, tuple[int, str, str]] = {
    400: (3, "title must not be empty", "INVALID_TASK"),
    401: (16, "authentication required", "MISSING_TOKEN"),
    403: (7, "not your account", "NOT_RESOURCE_OWNER"),
    404: (5, "task not found", "TASK_NOT_FOUND"),
    409: (10, "the task changed since you read it", "ETAG_MISMATCH"),
    413: (8, "request body too large", "BODY_TOO_LARGE"),
    429: (8, "too many requests", "RATE_LIMITED"),
    500: (13, "internal error", "INTERNAL"),
    503: (14, "the service is temporarily unavailable", "UPSTREAM_UNAVAILABLE"),
    504: (4, "the service did not answer in time", "UPSTREAM_TIMEOUT"),
}
"""HTTP status -> (gRPC code, message, reason) of the example error body."""

ERROR_TEXT = {
    400: "Bad request: a field breaks a rule (BadRequest names it), or the request is malformed.",
    401: "Missing, invalid, expired or revoked access token (or wrong credentials on login).",
    403: "`{user_id}` is not the caller's id or `me`.",
    404: "Not found: no such task (or not the caller's), or no such route.",
    409: "Conflict: a stale etag, a concurrent change, or a value that is taken.",
    413: "The request body is over the route's size limit.",
    429: "Too many requests: wait `Retry-After` seconds.",
    500: "Unexpected failure; the body never holds a stack trace or SQL.",
    503: "The service is temporarily unavailable; retry later.",
    504: "The service did not answer in time.",
}

HEADERS: dict[str, tuple[str, str]] = {
    "X-Request-Id": ("string", "The request's id: the client's `x-request-id`, or one Envoy made."),
    "RateLimit-Limit": ("integer", "The caller's burst allowance (requests at once)."),
    "RateLimit-Remaining": ("integer", "About how many requests the caller may still send now."),
    "RateLimit-Reset": ("integer", "Seconds until the allowance is full again."),
    "Retry-After": ("integer", "Seconds to wait before retrying."),
}


def _status_schemas(schemas: SchemaBuilder) -> Schema:
    """`Status` with `details` as a discriminated union of the detail types."""
    mapping = {}
    for full in DETAIL_TYPES:
        ref = schemas.ref(full)
        name = ref["$ref"].rsplit("/", 1)[1]
        type_url = "type.googleapis.com/" + full.lstrip(".")
        component = schemas.components[name]
        component["properties"] = {"@type": {"const": type_url}, **component["properties"]}
        component["required"] = ["@type"]
        mapping[type_url] = ref["$ref"]
    refs = [{"$ref": ref} for ref in mapping.values()]
    return {
        "type": "object",
        "description": "google.rpc.Status: every error's body.",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "The gRPC code."},
            "message": {"type": "string", "description": "What went wrong, for people."},
            "details": {
                "type": "array",
                "items": {
                    "oneOf": refs,
                    "discriminator": {"propertyName": "@type", "mapping": mapping},
                },
            },
        },
    }


def _error_example(status: int) -> dict[str, Any]:
    code, message, reason = ERROR_EXAMPLES[status]
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "todo.v1",
    }
    details: list[dict[str, Any]] = [info]
    if status == 400:
        violation = {"field": "title", "description": "must not be empty"}
        details.insert(
            0,
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "field_violations": [violation]},
        )
    if status == 429:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retry_delay": "3s"})
    return {"code": code, "message": message, "details": details}


def _error_response(status: int) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    if status == 429:
        headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    return {
        "description": ERROR_TEXT[status],
        "headers": headers,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/Status"},
                "example": _error_example(status),
            }
        },
    }


def build(index: ProtoIndex, edge_facts: EdgeFacts) -> dict[str, Any]:
    """The OpenAPI document for the http rules of SERVICES in `index`."""
    methods = [m for m in index.methods(SERVICES) if m.rule is not None]
    outputs = reachable(index, [m.output_type for m in methods])
    schemas = SchemaBuilder(index, outputs - reachable(index, DETAIL_TYPES))
    builder = OperationBuilder(index, schemas, edge_facts)
    paths: dict[str, dict[str, Any]] = {}
    tags: dict[str, str] = {}
    for method in methods:
        path, verb, operation = builder.operation(method)
        paths.setdefault(path, {})[verb] = operation
        tags.setdefault(operation["tags"][0], method.service_comment)
    status = _status_schemas(schemas)
    links.add_links(paths, schemas.components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "todo service REST API",
            "version": "v1",
            "description": DESCRIPTION,
        },
        "servers": [{"url": "/", "description": "the Envoy that serves this document"}],
        "tags": [{"name": name, "description": text} for name, text in tags.items()],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The `access_token` from login or refresh.",
                }
            },
            "schemas": {**schemas.components, "Status": status},
            "responses": {f"Error{s}": _error_response(s) for s in ERROR_EXAMPLES},
            "headers": {
                name: {"description": text, "schema": {"type": kind}}
                for name, (kind, text) in HEADERS.items()
            },
        },
    }


def generate(descriptor_set: Path = DESCRIPTOR_SET) -> dict[str, Any]:
    """The document for the checked-in descriptor set and Envoy template."""
    return build(ProtoIndex.load(descriptor_set), facts.load())


def to_json(document: dict[str, Any]) -> str:
    """Stable JSON text (two-space indent, UTF-8, trailing newline)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def to_yaml(document: dict[str, Any]) -> str:
    """The same document as YAML (keys in document order)."""
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


__all__ = ["build", "generate", "to_json", "to_yaml"]
