"""All the server's interceptors as one, their handlers wrapped once per method.

grpc.aio runs every interceptor's `intercept_service` on every call: each awaits the
next one's continuation and builds a fresh `RpcMethodHandler` with new closures, so a
stack of seven costs a dozen coroutines and handler objects per call before the
handler runs (about a tenth of a get-task's server CPU, `make profile`). What each
interceptor does per call lives in its `around_unary`/`around_stream`; only the
wrapping is per method. So `Pipeline` is the one interceptor the server installs: the
first call of a method looks its handler up and wraps it in every layer that applies
to the method (`WrappingInterceptor.applies`), innermost first; later calls of the
method reuse that handler. The per-call behaviour, and its order, are unchanged.

Only methods that have a handler are kept (an unknown method is looked up again each
time and answered UNIMPLEMENTED), so the cache holds at most the registered methods.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import grpc
import grpc.aio

from server.interceptors.base import Handler, WrappingInterceptor


class Pipeline(grpc.aio.ServerInterceptor):
    """`layers` (outermost first) composed once per method."""

    def __init__(self, layers: Sequence[WrappingInterceptor]) -> None:
        self._layers = tuple(layers)
        self._handlers: dict[str, Handler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        """The method's wrapped handler: built on its first call, then reused."""
        method: str = handler_call_details.method
        handler = self._handlers.get(method)
        if handler is not None:
            return handler
        inner = await continuation(handler_call_details)
        if inner is None:
            return None
        handler = self.wrap(method, inner)
        self._handlers[method] = handler
        return handler

    def wrap(self, method: str, handler: Handler) -> Handler:
        """`handler` inside every layer that applies to `method`."""
        for layer in reversed(self._layers):
            if layer.applies(method):
                handler = layer.wrap(method, handler)
        return handler
