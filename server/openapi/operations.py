"""One `google.api.http` rule -> one OpenAPI operation, as Envoy's transcoder serves it.

- Path variables come from the template; every other field of a GET/DELETE request is a query
  parameter (repeated ones repeat the key: `?tag=a&tag=b`). `body: "*"` puts every field not in
  the path into the JSON body; FieldMask fields are also accepted as query parameters
  (`?update_mask=due_at,tags`).
- The success status is 200, or 201/204 where Envoy's Lua filter says so (facts.py).
- Error statuses are the gRPC codes named in the rpc's and its service's comments, mapped as
  API.md's table does, plus what Envoy itself may answer on any route.
- Server-streaming methods answer newline-delimited JSON (one object per line) with
  `content-type: application/json`: Envoy's `stream_newline_delimited` for message streams,
  the server's own lines for `google.api.HttpBody` streams.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from server.openapi import examples
from server.openapi.facts import EdgeFacts
from server.openapi.protos import Method, ProtoIndex
from server.openapi.schemas import FieldProto, Schema, SchemaBuilder

HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "UNKNOWN": 500,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
"""gRPC code -> HTTP status, as Envoy's `convert_grpc_status` maps them (API.md)."""

EDGE_ERRORS = {
    400: "Envoy: malformed JSON, a wrong type, an unknown enum name or query parameter "
    "(reason `MALFORMED_REQUEST`).",
    404: "Envoy: no route for this path and verb, e.g. a path parameter containing `/` "
    "(reason `ROUTE_NOT_FOUND`).",
    500: "An unexpected failure (reason `INTERNAL`); the body never holds a stack trace or SQL.",
    503: "No server process is available (reason `UPSTREAM_UNAVAILABLE`): retry later.",
    504: "The server did not answer within 30 s (reason `UPSTREAM_TIMEOUT`).",
}
"""Statuses any route may get from the edge itself, whatever the rpc's comment says."""

NDJSON_ITEMS = {"/todo.v1.TaskService/StreamTasksNdjson": ".todo.v1.Task"}
"""What each line of a `google.api.HttpBody` stream is (the descriptor cannot say)."""

_HTTP_BODY = ".google.api.HttpBody"
_CODE = re.compile(r"\b(" + "|".join(HTTP_STATUS) + r")\b")
_VARIABLE = re.compile(r"\{([^}]+)\}")
_QUERY_MESSAGES = {
    ".google.protobuf.Timestamp",
    ".google.protobuf.Duration",
    ".google.protobuf.FieldMask",
}
"""Message types the transcoder fills from one query parameter (their JSON is a string)."""


def summary(method: Method) -> str:
    """The comment's first sentence, without the rpc's name in front."""
    first = re.split(r"(?<=\.)\s", method.comment.replace("\n", " "), maxsplit=1)[0]
    first = first.rstrip(".")
    if first.startswith(method.name + " "):
        first = first[len(method.name) + 1 :]
        first = first[:1].upper() + first[1:]
    return first or method.name


def error_statuses(method: Method, public: bool, has_body: bool) -> dict[int, list[str]]:
    """HTTP status -> the gRPC codes (or edge cases) behind it, for this route."""
    statuses: dict[int, list[str]] = {status: [] for status in EDGE_ERRORS}
    codes = _CODE.findall(method.comment) + _CODE.findall(method.service_comment)
    if not public:
        codes += ["UNAUTHENTICATED", "RESOURCE_EXHAUSTED"]
    for code in dict.fromkeys(codes):
        statuses.setdefault(HTTP_STATUS[code], []).append(code)
    if has_body:
        statuses[413] = []
    return dict(sorted(statuses.items()))


class OperationBuilder:
    """Builds path items from methods, registering schemas in a shared SchemaBuilder."""

    def __init__(self, index: ProtoIndex, schemas: SchemaBuilder, facts: EdgeFacts) -> None:
        self.index = index
        self.schemas = schemas
        self.facts = facts
        self.examples = examples.ExampleBuilder(schemas.components)

    def operation(self, method: Method) -> tuple[str, str, dict[str, Any]]:
        """(path template, verb, operation object) for a method with an http rule."""
        rule = method.rule
        assert rule is not None
        path_fields = _VARIABLE.findall(rule.path)
        if any("=" in f or "." in f for f in path_fields):
            raise ValueError(f"{method.name}: only simple path variables are supported")
        request = self.index.messages[method.input_type]
        public = method.grpc_path in self.facts.public_methods
        op: dict[str, Any] = {
            "operationId": method.name,
            "summary": summary(method),
            "description": self._description(method, rule.path),
            "tags": [method.service.rsplit(".", 1)[1]],
            "parameters": [self._parameter(method.input_type, f, "path") for f in path_fields],
        }
        for field in request.field:
            if field.name not in path_fields and self._in_query(field, rule.body):
                op["parameters"].append(self._parameter(method.input_type, field.name, "query"))
        query = self._example_query(op["parameters"])
        if query:
            example = f"{rule.verb.upper()} {_concrete(rule.path)}?{query}"
            op["description"] += f"\n\nExample request: `{example}`."
        if rule.body:
            op["requestBody"] = self._request_body(method, path_fields)
        op["responses"] = self._responses(method, public, bool(rule.body), rule.path)
        if public:
            op["security"] = []
        return rule.path, rule.verb, op

    def _in_query(self, field: FieldProto, body: str) -> bool:
        if body == "*":
            return field.type_name == ".google.protobuf.FieldMask"
        if field.name == body:
            return False
        if field.type == FieldProto.TYPE_MESSAGE and field.type_name not in _QUERY_MESSAGES:
            raise ValueError(f"{field.name}: message fields cannot be query parameters")
        return True

    def _description(self, method: Method, path: str) -> str:
        parts = [method.comment]
        if method.server_streaming:
            parts.append(
                "The answer is **newline-delimited JSON** (`content-type: application/json`): "
                "one JSON object per line, sent as it is produced. Errors found before the first "
                "line are ordinary JSON errors; an HTTP/1.1 client sees a later failure only as "
                "the end of the body."
            )
        if method.rule and method.rule.body:
            limit = self.facts.body_limit(_concrete(path))
            parts.append(f"Request body: at most {_size(limit)}; a larger one gets 413.")
        parts.append(f"gRPC: `{method.grpc_path}`.")
        return "\n\n".join(p for p in parts if p)

    def _parameter(self, message: str, name: str, where: str) -> dict[str, Any]:
        field = next(f for f in self.index.messages[message].field if f.name == name)
        schema = self.schemas.field(message, field)
        description = schema.pop("description", "")
        param: dict[str, Any] = {"name": name, "in": where, "schema": schema}
        if description:
            param["description"] = description
        if where == "path":
            param["required"] = True
            param["example"] = examples.PARAMETER_VALUES.get(name) or self.examples.value(schema)
        # Query parameters get no `example`: Swagger UI would pre-fill them as filters. The
        # operation's description shows an example query instead (_example_query).
        if field.label == FieldProto.LABEL_REPEATED:
            param["style"], param["explode"] = "form", True
        return param

    def _example_query(self, parameters: list[dict[str, Any]], most: int = 3) -> str:
        """`completed=false&tag=home`: up to `most` query parameters with a named example."""
        pairs: list[tuple[str, Any]] = []
        for param in parameters:
            value = examples.FIELD_VALUES.get(param["name"])
            if param["in"] != "query" or value in (None, "") or len(pairs) >= most:
                continue
            if self.examples.fits(value, self.examples.resolve(param["schema"])):
                for item in value if isinstance(value, list) else [value]:
                    pairs.append((param["name"], _query_text(item)))
        return urllib.parse.urlencode(pairs)

    def _request_body(self, method: Method, path_fields: list[str]) -> dict[str, Any]:
        rule = method.rule
        assert rule is not None
        if rule.body == "*":
            schema = self.schemas.ref(method.input_type, exclude=path_fields)
        else:
            message = self.index.messages[method.input_type]
            field = next(f for f in message.field if f.name == rule.body)
            schema = self.schemas.field(method.input_type, field)
        example = examples.REQUEST_OVERRIDES.get(method.name)
        if example is None:
            example = self.examples.value(schema)
        limit = self.facts.body_limit(_concrete(rule.path))
        return {  # not required: no body (or `{}`) leaves every field unset
            "description": f"JSON, at most {_size(limit)} (413 above). Unknown fields are "
            "ignored; lowerCamelCase names are accepted too; no body means `{}`.",
            "content": {"application/json": {"schema": schema, "example": example}},
        }

    def _responses(self, method: Method, public: bool, has_body: bool, path: str) -> dict[str, Any]:
        status = self.facts.status_for(method.grpc_path)
        headers: dict[str, Any] = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
        if not public:
            for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"):
                headers[name] = {"$ref": f"#/components/headers/{name}"}
        success: dict[str, Any] = {"description": _success_text(status), "headers": headers}
        if status != 204:
            schema = self._output_schema(method)
            content: dict[str, Any] = {"schema": schema, "example": self.examples.value(schema)}
            if method.server_streaming:
                success["description"] = "Newline-delimited JSON: one object per line."
                content["x-ndjson"] = True
            success["content"] = {"application/json": content}
        responses: dict[str, Any] = {str(status): success}
        for code, causes in error_statuses(method, public, has_body).items():
            responses[str(code)] = {"$ref": f"#/components/responses/Error{code}"}
            if causes:
                responses[str(code)] = _error_with_causes(code, causes)
        return responses

    def _output_schema(self, method: Method) -> Schema:
        if method.output_type == _HTTP_BODY:
            return self.schemas.ref(NDJSON_ITEMS[method.grpc_path])
        return self.schemas.ref(method.output_type)


def _error_with_causes(code: int, causes: list[str]) -> dict[str, Any]:
    """An error response naming the rpc's own gRPC codes; the shared one supplies the rest."""
    names = ", ".join(f"`{c}`" for c in causes)
    text = f"gRPC {names}. " + EDGE_ERRORS.get(code, "")
    shared = {"$ref": f"#/components/responses/Error{code}"}
    return {**shared, "description": text.strip()}


def _success_text(status: int) -> str:
    return {200: "OK", 201: "Created", 204: "No content (empty body)"}[status]


def _query_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _concrete(path: str) -> str:
    """`/api/v1/users/{user_id}/tasks` -> `/api/v1/users/me/tasks`, with example values."""
    return _VARIABLE.sub(lambda m: str(examples.PARAMETER_VALUES.get(m.group(1), "x")), path)


def _size(limit: int) -> str:
    mib = limit / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{limit} bytes"
