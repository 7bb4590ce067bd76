"""The descriptor set as the generator needs it: services, http rules, messages, comments.

Reads the same `FileDescriptorSet` Envoy's transcoder loads (`server/envoy/todo.binpb`, built with
`--include_imports --include_source_info`), so the document describes exactly the routes and
messages Envoy serves. Comments come from `source_code_info`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

# Paths into FileDescriptorProto used by SourceCodeInfo.Location.path.
_MESSAGE, _ENUM, _SERVICE = 4, 5, 6
_FIELD, _NESTED, _METHOD, _ENUM_VALUE = 2, 3, 2, 2

VERBS = ("get", "put", "post", "delete", "patch")


@dataclasses.dataclass(frozen=True)
class HttpRule:
    """One `google.api.http` binding: verb, path template and body selector."""

    verb: str
    path: str
    body: str


@dataclasses.dataclass(frozen=True)
class Method:
    """An rpc with its http rule (None for gRPC-only methods)."""

    service: str
    name: str
    input_type: str
    output_type: str
    server_streaming: bool
    comment: str
    service_comment: str
    rule: HttpRule | None

    @property
    def grpc_path(self) -> str:
        """`/todo.v1.TaskService/CreateTask`, the path Envoy routes after transcoding."""
        return f"/{self.service}/{self.name}"


def _clean(comment: str) -> str:
    """A proto comment as prose: common indentation gone, lint directives dropped."""
    lines = [line[1:] if line.startswith(" ") else line for line in comment.split("\n")]
    kept = [line for line in lines if not line.startswith("buf:lint:")]
    return "\n".join(kept).strip()


def _rule(method: descriptor_pb2.MethodDescriptorProto) -> HttpRule | None:
    if not method.options.HasExtension(annotations_pb2.http):
        return None
    rule: http_pb2.HttpRule = method.options.Extensions[annotations_pb2.http]
    if rule.additional_bindings:
        raise ValueError(f"{method.name}: additional_bindings are not supported")
    verb = rule.WhichOneof("pattern")
    if verb not in VERBS:
        raise ValueError(f"{method.name}: http pattern {verb!r} is not supported")
    return HttpRule(verb=verb, path=getattr(rule, verb), body=rule.body)


class ProtoIndex:
    """Every message, enum and commented element of a descriptor set, by full name."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self._comments: dict[str, str] = {}
        self._methods: list[Method] = []
        for file in files.file:
            self._index_file(file)

    @classmethod
    def load(cls, path: Path) -> ProtoIndex:
        """Read a binary FileDescriptorSet (`protoc --descriptor_set_out`)."""
        return cls(descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()))

    def comment(self, full_name: str) -> str:
        """The leading comment of a message, enum, field (`Msg.field`) or value, or ""."""
        return self._comments.get(full_name, "")

    def methods(self, services: tuple[str, ...]) -> Iterator[Method]:
        """The methods of the named services, in the order given, then in declaration order."""
        ordered = sorted(
            (m for m in self._methods if m.service in services),
            key=lambda m: services.index(m.service),
        )
        return iter(ordered)

    def _index_file(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        comments = {
            tuple(loc.path): _clean(loc.leading_comments)
            for loc in file.source_code_info.location
            if loc.leading_comments
        }
        prefix = f".{file.package}" if file.package else ""
        for i, message in enumerate(file.message_type):
            self._index_message(message, prefix, (_MESSAGE, i), comments)
        for i, enum in enumerate(file.enum_type):
            self._index_enum(enum, prefix, (_ENUM, i), comments)
        for si, service in enumerate(file.service):
            full = f"{file.package}.{service.name}"
            service_comment = comments.get((_SERVICE, si), "")
            for mi, method in enumerate(service.method):
                self._methods.append(
                    Method(
                        service=full,
                        name=method.name,
                        input_type=method.input_type,
                        output_type=method.output_type,
                        server_streaming=method.server_streaming,
                        comment=comments.get((_SERVICE, si, _METHOD, mi), ""),
                        service_comment=service_comment,
                        rule=_rule(method),
                    )
                )

    def _index_message(
        self,
        message: descriptor_pb2.DescriptorProto,
        prefix: str,
        path: tuple[int, ...],
        comments: dict[tuple[int, ...], str],
    ) -> None:
        full = f"{prefix}.{message.name}"
        self.messages[full] = message
        self._comments[full] = comments.get(path, "")
        for fi, field in enumerate(message.field):
            self._comments[f"{full}.{field.name}"] = comments.get((*path, _FIELD, fi), "")
        for ni, nested in enumerate(message.nested_type):
            self._index_message(nested, full, (*path, _NESTED, ni), comments)
        for ei, enum in enumerate(message.enum_type):
            self._index_enum(enum, full, (*path, 4, ei), comments)

    def _index_enum(
        self,
        enum: descriptor_pb2.EnumDescriptorProto,
        prefix: str,
        path: tuple[int, ...],
        comments: dict[tuple[int, ...], str],
    ) -> None:
        full = f"{prefix}.{enum.name}"
        self.enums[full] = enum
        self._comments[full] = comments.get(path, "")
        for vi, value in enumerate(enum.value):
            self._comments[f"{full}.{value.name}"] = comments.get((*path, _ENUM_VALUE, vi), "")
