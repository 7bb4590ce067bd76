"""Refuses requests carrying NUL or other control characters, before any handler.

One check for both wires and every RPC (`server/text_safety.py` says what is
refused and why): REST bodies, path and query parameters arrive as fields of
the same request message as native gRPC calls. A refused call is
INVALID_ARGUMENT (HTTP 400) with reason INVALID_CHARACTER and a BadRequest
naming each bad field, raised as a DomainError for the error interceptor.

A native gRPC request whose bytes protobuf cannot parse (a string that is not
valid UTF-8, say) would be answered UNKNOWN with the parser's exception text
by grpcio itself. This interceptor's deserializer catches that and hands on an
`Undecodable` marker instead, which it refuses as INVALID_ARGUMENT (reason
MALFORMED_REQUEST, as Envoy's for malformed JSON). So it must stay the
innermost interceptor: the ones outside it pass the request through unread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import grpc.aio
from google.protobuf import message

from server import errors, text_safety
from server.interceptors.base import (
    Deserializer,
    StreamBehavior,
    UnaryBehavior,
    WrappingInterceptor,
)

MALFORMED = "MALFORMED_REQUEST"


@dataclasses.dataclass(frozen=True)
class Undecodable:
    """Stands for a request whose bytes did not parse as its message type."""

    type_name: str


def _check(request: Any) -> None:
    if isinstance(request, Undecodable):
        raise errors.InvalidArgument(
            [],
            reason=MALFORMED,
            message=f"the request is not a valid {request.type_name}: "
            "it is not protobuf, or a string in it is not valid UTF-8",
        )
    if isinstance(request, message.Message):  # generic handlers may take raw bytes
        text_safety.check(request)


class TextSafetyInterceptor(WrappingInterceptor):
    """Checks every string of the request message before the handler runs."""

    def deserializer(self, inner: Deserializer | None) -> Deserializer | None:
        """Parse as `inner` does, but turn a parse failure into an Undecodable marker."""
        if inner is None:
            return None
        parse = inner
        type_name = getattr(getattr(inner, "__self__", None), "DESCRIPTOR", None)
        name = type_name.full_name if type_name is not None else "request"

        def lenient(data: bytes) -> Any:
            try:
                return parse(data)
            except message.DecodeError:
                return Undecodable(name)

        return lenient

    async def around_unary(
        self,
        method: str,
        behavior: UnaryBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        """Check the request, then run the call."""
        _check(request)
        return await behavior(request, context)

    async def around_stream(
        self,
        method: str,
        behavior: StreamBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        """Check the request before the first message, then relay the stream."""
        _check(request)
        async for response in behavior(request, context):
            yield response
