"""A grpc.aio interceptor base that wraps the handler's behaviour.

Subclasses implement `around_unary` (an awaitable around one unary call) and
`around_stream` (an async generator around a server-streaming call), so the
interceptor's code runs in the handler's own context: a contextvar set there
is seen by the handler. A streaming handler that sends with `context.write`
is adapted to a generator first (`write_style.py`). Client-streaming handlers
are not used by this service (reflection's are passed through unwrapped).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, cast

import grpc
import grpc.aio

from server.interceptors import write_style

UnaryBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
StreamBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Deserializer = Callable[[bytes], Any]


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """Base class: wraps unary-unary and unary-stream handlers.

    Used on its own (`intercept_service`), it wraps the handler on every call, as any
    grpc.aio interceptor does; the server composes its interceptors with `Pipeline`
    (pipeline.py) instead, which calls `wrap` once per method.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        """Wrap the next handler's behaviour with this interceptor's."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return self.wrap(handler_call_details.method, handler)

    def applies(self, method: str) -> bool:
        """Whether this interceptor does anything for `method` (else `Pipeline` skips it)."""
        return True

    def wrap(self, method: str, handler: Handler) -> Handler:
        """`handler` with this interceptor's behaviour around it."""
        if handler.unary_unary is not None:
            inner_unary = cast(UnaryBehavior, handler.unary_unary)

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                return await self.around_unary(method, inner_unary, request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary, self.deserializer(handler.request_deserializer), handler.response_serializer
            )
        if handler.unary_stream is not None:
            inner_stream = cast(StreamBehavior, handler.unary_stream)
            if write_style.is_write_style(inner_stream):  # Health/Watch: see write_style.py
                write_behavior = cast(write_style.WriteStyleBehavior, handler.unary_stream)
                inner_stream = write_style.as_generator(write_behavior)

            async def stream(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                async for response in self.around_stream(method, inner_stream, request, context):
                    yield response

            return grpc.unary_stream_rpc_method_handler(
                stream, self.deserializer(handler.request_deserializer), handler.response_serializer
            )
        return handler

    def deserializer(self, inner: Deserializer | None) -> Deserializer | None:
        """The request deserializer to use instead of `inner`; the default keeps it."""
        return inner

    async def around_unary(
        self,
        method: str,
        behavior: UnaryBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        """Run one unary call; the default just calls the behaviour."""
        return await behavior(request, context)

    async def around_stream(
        self,
        method: str,
        behavior: StreamBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        """Run one server-streaming call; the default just relays it."""
        async for response in behavior(request, context):
            yield response
