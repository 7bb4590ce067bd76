"""The outermost interceptor: one call's ids, span, metrics and access line.

Per call it reads the metadata once (`x-request-id`, `traceparent`, `tracestate`), binds
the call context that every log line below shows (`observability.context`), opens the rpc
span when tracing is on, counts the call in flight (and the open stream by kind), and
when the call has ended, however it ended: observes its latency, counts it by code,
emits the success security events, and writes one access line (`todo.access`, INFO;
successful health checks are skipped: Envoy probes every 2 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio

from server.interceptors.base import StreamBehavior, UnaryBehavior, WrappingInterceptor
from server.observability import context, events, logs, metrics, tracing

log = logging.getLogger("todo.access")
HEALTH_PREFIX = "/grpc.health.v1.Health/"
STREAM_KINDS = {
    "/todo.v1.TaskService/StreamTasks": "stream",
    "/todo.v1.TaskService/StreamTasksNdjson": "stream",
    "/todo.v1.TaskService/WatchTasks": "watch",
}
_TRACE_HEADERS = ("traceparent", "tracestate")
MAX_REQUEST_ID = 128


class _Call:
    """What the interceptor holds for one call between its start and its end."""

    __slots__ = ("call", "children", "peer", "span", "started", "token")

    def __init__(self, method: str, ctx: grpc.aio.ServicerContext[Any, Any]) -> None:
        request_id = ""
        carrier: dict[str, str] = {}
        for key, value in ctx.invocation_metadata() or ():
            if key == "x-request-id":
                request_id = str(value)[:MAX_REQUEST_ID]  # a client's own: keep lines small
            elif key in _TRACE_HEADERS:
                carrier[key] = str(value)
        self.span = tracing.start_server_span(method, carrier)
        if self.span is not None:
            trace_id, span_id = tracing.ids(self.span)
        else:
            trace_id, span_id = tracing.parse_traceparent(carrier.get("traceparent", ""))
        self.call = context.CallContext(
            request_id or context.new_request_id(), method, trace_id, span_id
        )
        if self.span is not None:
            self.span[0].set_attribute("request_id", self.call.request_id)
        self.token = context.bind(self.call)
        self.children = metrics.rpc_children(method)
        # Read now, not in end(): a stream's end can run after gRPC has freed the call
        # (the client cancelled it), and peer() on a freed call crashes the process.
        self.peer = ctx.peer()
        self.started = time.perf_counter()
        metrics.in_flight.value += 1

    def end(self, ctx: grpc.aio.ServicerContext[Any, Any], cancelled: bool) -> None:
        elapsed = time.perf_counter() - self.started
        metrics.in_flight.value -= 1
        code = "CANCELLED" if cancelled else _code(ctx)
        self.children.duration.observe(elapsed)
        self.children.requests(code).inc()
        method = self.call.rpc
        if code == "OK":
            events.on_success(method)
        if log.isEnabledFor(logging.INFO) and not (
            code == "OK" and method.startswith(HEALTH_PREFIX)
        ):
            fields = {"code": code, "duration_ms": round(elapsed * 1000, 3), "peer": self.peer}
            logs.info(log, f"rpc {method} {code}", fields)
        if self.span is not None:
            tracing.end_server_span(self.span, code)
        with contextlib.suppress(ValueError):  # a stream closed from another context
            context.unbind(self.token)


def _code(ctx: grpc.aio.ServicerContext[Any, Any]) -> str:
    code = ctx.code()
    return code.name if isinstance(code, grpc.StatusCode) else "OK"


class TelemetryInterceptor(WrappingInterceptor):
    """Request id, trace, metrics and the access line of every call."""

    async def around_unary(
        self,
        method: str,
        behavior: UnaryBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        """Run one unary call inside its context and span."""
        call = _Call(method, context)
        cancelled = False
        try:
            return await behavior(request, context)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            call.end(context, cancelled)

    async def around_stream(
        self,
        method: str,
        behavior: StreamBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        """Relay one server stream inside its context and span, counted as open."""
        call = _Call(method, context)
        kind = STREAM_KINDS.get(method)
        gauge = metrics.STREAMS_OPEN.labels(kind) if kind else None
        if gauge is not None:
            gauge.inc()
        cancelled = False
        try:
            async for response in behavior(request, context):
                yield response
        except (asyncio.CancelledError, GeneratorExit):
            cancelled = True
            raise
        finally:
            if gauge is not None:
                gauge.dec()
            call.end(context, cancelled)


class UseCaseSpanInterceptor(WrappingInterceptor):
    """The innermost interceptor, installed only when tracing is on: the use-case span.

    The servicer is a translator around one use-case call, so the span around it is the
    use case's; auth and rate limiting stay in the rpc span above it.
    """

    async def around_unary(
        self,
        method: str,
        behavior: UnaryBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        """Run the use case inside its span."""
        with tracing.span("usecase " + method.rpartition("/")[2]):
            return await behavior(request, context)

    async def around_stream(
        self,
        method: str,
        behavior: StreamBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        """Relay the streaming use case inside its span."""
        with tracing.span("usecase " + method.rpartition("/")[2]):
            async for response in behavior(request, context):
                yield response
