"""OpenAPI links between operations: where a response's resource id goes next.

One rule, derived from names: an operation whose success body is a resource message `M` with
an `id` (or holds a list of them, like a batch answer) links to every operation that takes
`{m_id}` in its path, or `m_ids` (a list) in its body. Path variables both operations share
(`{user_id}`) are passed on from the request. Clients and docs show these as "next steps";
schemathesis follows them in its stateful phase (a created task is then read, changed,
completed and deleted).
"""

from __future__ import annotations

import re
from typing import Any

Operation = dict[str, Any]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _component(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[1] if ref.startswith("#/components/schemas/") else None


def _resource(components: dict[str, Any], op: Operation) -> tuple[str, str] | None:
    """(resource name, JSON pointer to its id) of an operation's success body, if any."""
    for status, response in op["responses"].items():
        media = response.get("content", {}).get("application/json", {})
        if not status.startswith("2") or media.get("x-ndjson"):
            continue
        name = _component(media.get("schema", {}))
        if name is None:
            continue
        properties = components[name].get("properties", {})
        if "id" in properties:
            return name, "/id"
        for key, prop in properties.items():
            item = _component(prop.get("items", {})) if prop.get("type") == "array" else None
            if item and "id" in components[item].get("properties", {}):
                return item, f"/{key}/0/id"
    return None


def _path_params(op: Operation) -> set[str]:
    return {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}


def _body_properties(components: dict[str, Any], op: Operation) -> dict[str, Any]:
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    name = _component(schema.get("schema", {}))
    return dict(components[name].get("properties", {})) if name else {}


def add_links(paths: dict[str, dict[str, Operation]], components: dict[str, Any]) -> None:
    """Add `links` to the success responses of `paths` (in place)."""
    operations = [op for item in paths.values() for op in item.values()]
    for source in operations:
        found = _resource(components, source)
        if found is None:
            continue
        resource, pointer = found
        variable = _snake(resource) + "_id"
        links: dict[str, Any] = {}
        for target in operations:
            link = _link(components, source, target, variable, pointer)
            if link is not None:
                links[target["operationId"]] = link
        if links:
            status = next(s for s in source["responses"] if s.startswith("2"))
            source["responses"][status]["links"] = links


def _link(
    components: dict[str, Any], source: Operation, target: Operation, variable: str, pointer: str
) -> dict[str, Any] | None:
    value = f"$response.body#{pointer}"
    shared = {p: f"$request.path.{p}" for p in sorted(_path_params(source) & _path_params(target))}
    if variable in _path_params(target):
        return {
            "operationId": target["operationId"],
            "parameters": {**shared, variable: value},
            "description": f"`{variable}` is the `id` in this response.",
        }
    plural = variable + "s"
    if plural in _body_properties(components, target):
        return {
            "operationId": target["operationId"],
            "parameters": shared,
            "requestBody": {plural: [value]},
            "description": f"`{plural}` holds the `id` in this response.",
        }
    return None
