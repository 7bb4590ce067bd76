"""Refuses requests carrying NUL or other control characters, before any handler.

One check for both wires and every RPC (`server/text_safety.py` says what is
refused and why): REST bodies, path and query parameters arrive as fields of
the same request message as native gRPC calls. A refused call is
INVALID_ARGUMENT (HTTP 400) with reason INVALID_CHARACTER and a BadRequest
naming each bad field, raised as a DomainError for the error interceptor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc.aio

from server import text_safety
from server.interceptors.base import StreamBehavior, UnaryBehavior, WrappingInterceptor


class TextSafetyInterceptor(WrappingInterceptor):
    """Checks every string of the request message before the handler runs."""

    async def around_unary(
        self,
        method: str,
        behavior: UnaryBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        """Check the request, then run the call."""
        text_safety.check(request)
        return await behavior(request, context)

    async def around_stream(
        self,
        method: str,
        behavior: StreamBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        """Check the request before the first message, then relay the stream."""
        text_safety.check(request)
        async for response in behavior(request, context):
            yield response
