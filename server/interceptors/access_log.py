"""One log line per RPC: method, status code, duration, request id and peer."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio

from server import metadata
from server.interceptors.base import StreamBehavior, UnaryBehavior, WrappingInterceptor

log = logging.getLogger("todo.access")
HEALTH_PREFIX = "/grpc.health.v1.Health/"


def _request_id(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    return metadata.first(context, "x-request-id") or "-"


class AccessLogInterceptor(WrappingInterceptor):
    """Logs every call once it has ended, however it ended."""

    async def around_unary(
        self,
        method: str,
        behavior: UnaryBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        """Time and log one unary call."""
        started = time.perf_counter()
        try:
            return await behavior(request, context)
        finally:
            self._log(method, context, started)

    async def around_stream(
        self,
        method: str,
        behavior: StreamBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        """Time and log one streaming call, counting its messages."""
        started = time.perf_counter()
        try:
            async for response in behavior(request, context):
                yield response
        finally:
            self._log(method, context, started)

    @staticmethod
    def _log(method: str, context: grpc.aio.ServicerContext[Any, Any], started: float) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        code = context.code()
        name = code.name if isinstance(code, grpc.StatusCode) else "OK"
        if name == "OK" and method.startswith(HEALTH_PREFIX):
            return  # Envoy probes every 2 s; only failures are news
        log.info(
            "rpc method=%s code=%s ms=%.2f request_id=%s peer=%s",
            method,
            name,
            (time.perf_counter() - started) * 1000,
            _request_id(context),
            context.peer(),
        )
