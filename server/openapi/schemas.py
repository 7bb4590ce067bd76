"""Proto messages and enums as JSON Schema 2020-12, the way Envoy's transcoder prints them.

The transcoder runs with `preserve_proto_field_names` and `always_print_primitive_fields`
(envoy/envoy.yaml), so on output: snake_case keys; every scalar, enum and repeated field is
present, at its zero value when unset (so they are `required` in response schemas); message
fields (times included) and proto3 `optional` fields are left out when unset. int64 prints as
a string, enums as their names, Timestamp as RFC 3339, Duration as `"3600s"`, FieldMask as a
comma-separated string. Input also takes lowerCamelCase keys and enum numbers; the schemas
document the canonical form only.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from google.protobuf import descriptor_pb2

from server.openapi.protos import ProtoIndex

Schema = dict[str, Any]
FieldProto = descriptor_pb2.FieldDescriptorProto

_INT32 = {FieldProto.TYPE_INT32, FieldProto.TYPE_SINT32, FieldProto.TYPE_SFIXED32}
_UINT32 = {FieldProto.TYPE_UINT32, FieldProto.TYPE_FIXED32}
_INT64 = {
    FieldProto.TYPE_INT64,
    FieldProto.TYPE_SINT64,
    FieldProto.TYPE_SFIXED64,
    FieldProto.TYPE_UINT64,
    FieldProto.TYPE_FIXED64,
}

WELL_KNOWN: dict[str, Schema] = {
    ".google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339 time, e.g. `2026-12-01T17:00:00Z`.",
    },
    ".google.protobuf.Duration": {
        "type": "string",
        "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$",
        "description": "A duration in seconds with an `s` suffix, e.g. `3600s`.",
    },
    ".google.protobuf.FieldMask": {
        "type": "string",
        "description": "Comma-separated snake_case field names, e.g. `due_at,tags`.",
    },
    ".google.protobuf.Empty": {"type": "object", "description": "Always `{}`."},
}


def component_name(full_name: str) -> str:
    """`.todo.v1.Task` -> `Task`; nested types keep their parent: `BadRequest.FieldViolation`."""
    parts = full_name.lstrip(".").split(".")
    first_type = next(i for i, p in enumerate(parts) if p[:1].isupper())
    return ".".join(parts[first_type:])


def reachable(index: ProtoIndex, roots: Iterable[str]) -> set[str]:
    """Every message type reachable from `roots` through message fields (roots included)."""
    seen: set[str] = set()
    todo = [r for r in roots if r in index.messages]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for field in index.messages[name].field:
            if field.type == FieldProto.TYPE_MESSAGE and field.type_name in index.messages:
                todo.append(field.type_name)
    return seen


def _description(text: str) -> Schema:
    return {"description": text} if text else {}


class SchemaBuilder:
    """Builds `components.schemas` on demand and hands out `$ref`s to them.

    Args:
        index: The descriptor set.
        output_messages: Messages that appear in responses: their always-printed fields are
            `required`. In request messages only the fields whose comment starts with
            "Required" are (proto3 itself has no such notion: the service answers 400).
    """

    def __init__(self, index: ProtoIndex, output_messages: Collection[str]) -> None:
        self.index = index
        self.output_messages = set(output_messages)
        self.components: dict[str, Schema] = {}
        self._owner: dict[str, str] = {}

    def ref(self, type_name: str, *, exclude: Collection[str] = ()) -> Schema:
        """A `$ref` to the component of a message or enum (built once), or an inline WKT schema.

        Args:
            type_name: Full proto name with the leading dot (`.todo.v1.Task`).
            exclude: Fields left out (those bound to the URL path of a request body).
        """
        if type_name in WELL_KNOWN:
            return dict(WELL_KNOWN[type_name])
        name = component_name(type_name)
        owner = self._owner.setdefault(name, type_name)
        if owner != type_name:
            raise ValueError(f"component name {name} used by {owner} and {type_name}")
        if name not in self.components:
            self.components[name] = {}  # placeholder: recursive types terminate
            if type_name in self.index.enums:
                self.components[name] = self._enum(type_name)
            else:
                self.components[name] = self._message(type_name, exclude)
        return {"$ref": f"#/components/schemas/{name}"}

    def field(self, message: str, field: FieldProto) -> Schema:
        """The schema of one field, with its comment as description."""
        schema = self._single(field)
        if field.label == FieldProto.LABEL_REPEATED and "additionalProperties" not in schema:
            schema = {"type": "array", "items": schema}
        text = self.index.comment(f"{message}.{field.name}")
        return {**schema, **_description(text)}  # 3.1 allows siblings next to $ref

    def _single(self, field: FieldProto) -> Schema:
        kind = field.type
        entry = self.index.messages.get(field.type_name)
        if entry is not None and entry.options.map_entry:
            return {"type": "object", "additionalProperties": self._single(entry.field[1])}
        if kind in (FieldProto.TYPE_MESSAGE, FieldProto.TYPE_ENUM):
            return self.ref(field.type_name)
        if kind == FieldProto.TYPE_STRING:
            return {"type": "string"}
        if kind == FieldProto.TYPE_BOOL:
            return {"type": "boolean"}
        if kind in _INT32:
            return {"type": "integer", "format": "int32"}
        if kind in _UINT32:
            return {"type": "integer", "format": "int32", "minimum": 0}
        if kind in _INT64:
            return {"type": "string", "format": "int64", "pattern": r"^-?[0-9]+$"}
        if kind in (FieldProto.TYPE_DOUBLE, FieldProto.TYPE_FLOAT):
            return {"type": "number"}
        if kind == FieldProto.TYPE_BYTES:
            return {"type": "string", "contentEncoding": "base64"}
        raise ValueError(f"unsupported field type {kind} ({field.name})")

    def _message(self, type_name: str, exclude: Collection[str]) -> Schema:
        message = self.index.messages[type_name]
        fields = [f for f in message.field if f.name not in exclude]
        properties = {f.name: self.field(type_name, f) for f in fields}
        schema: Schema = {"type": "object", **_description(self.index.comment(type_name))}
        schema["properties"] = properties
        if type_name in self.output_messages:
            required = [f.name for f in fields if _always_printed(f)]
        else:  # input: what the field's comment says is required ("Required: ...")
            required = [f.name for f in fields if self._says_required(type_name, f)]
        if required:
            schema["required"] = required
        return schema

    def _says_required(self, message: str, field: FieldProto) -> bool:
        return self.index.comment(f"{message}.{field.name}").startswith("Required")

    def _enum(self, type_name: str) -> Schema:
        enum = self.index.enums[type_name]
        lines = [self.index.comment(type_name), ""]
        for value in enum.value:
            text = self.index.comment(f"{type_name}.{value.name}")
            lines.append(f"- `{value.name}`: {text}" if text else f"- `{value.name}`")
        return {
            "type": "string",
            "enum": [v.name for v in enum.value],
            "description": "\n".join(lines).strip(),
        }


def _always_printed(field: FieldProto) -> bool:
    """Whether the transcoder prints this field even when unset (always_print_primitive_fields)."""
    if field.proto3_optional or field.HasField("oneof_index"):
        return False
    if field.label == FieldProto.LABEL_REPEATED:
        return True
    return field.type != FieldProto.TYPE_MESSAGE
