"""Turns DomainErrors into gRPC statuses with rich details; hides everything else.

`CODES` is the one table from error type to status code (a unit test proves
it covers every DomainError). Each status carries an ErrorInfo (reason,
domain `todo.v1`), validation errors a BadRequest naming every bad field, and
throttling a RetryInfo plus `retry-after` metadata (Envoy turns it into the
`Retry-After` header). Any other exception is logged with its traceback and
answered INTERNAL "internal error".
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from server import errors
from server.interceptors.base import StreamBehavior, UnaryBehavior, WrappingInterceptor
from server.observability import events
from server.servicers import peers

DOMAIN = "todo.v1"
log = logging.getLogger(__name__)

CODES: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def code_for(error: errors.DomainError) -> grpc.StatusCode:
    """The status code of a domain error (by its most specific mapped type)."""
    for cls in type(error).__mro__:
        if cls in CODES:
            return CODES[cls]
    return grpc.StatusCode.UNKNOWN


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status(error: errors.DomainError) -> grpc.Status:
    """Build the rich gRPC status for a domain error."""
    code = code_for(error)
    details = []
    if isinstance(error, errors.InvalidArgument):
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.violations
        ]
        details.append(_pack(error_details_pb2.BadRequest(field_violations=violations)))
    details.append(_pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN)))
    if isinstance(error, errors.ResourceExhausted):
        delay = duration_pb2.Duration(seconds=error.retry_after_s)
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    status = status_pb2.Status(code=code.value[0], message=error.message, details=details)
    converted: grpc.Status = rpc_status.to_status(status)
    if isinstance(error, errors.ResourceExhausted):
        metadata = (
            *converted.trailing_metadata,
            ("retry-after", str(error.retry_after_s)),
            *error.metadata,
        )
        return _Status(converted.code, converted.details, metadata)
    return converted


def internal_status() -> grpc.Status:
    """The status for an unexpected failure: no traceback, no SQL, just a reason."""
    info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN)
    status = status_pb2.Status(
        code=code_pb2.INTERNAL, message="internal error", details=[_pack(info)]
    )
    converted: grpc.Status = rpc_status.to_status(status)
    return converted


class _Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, metadata: Any) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = metadata


class ErrorInterceptor(WrappingInterceptor):
    """Aborts the call with the mapped status when the handler raises."""

    async def around_unary(
        self,
        method: str,
        behavior: UnaryBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        """Run the call; turn a raised error into a status."""
        try:
            return await behavior(request, context)
        except Exception as exc:
            await self._abort(method, exc, context)

    async def around_stream(
        self,
        method: str,
        behavior: StreamBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        """Relay the stream; turn a raised error into a status."""
        try:
            async for response in behavior(request, context):
                yield response
        except Exception as exc:
            await self._abort(method, exc, context)

    @staticmethod
    async def _abort(
        method: str, exc: Exception, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        if isinstance(exc, grpc.aio.AbortError):
            raise exc
        if isinstance(exc, errors.DomainError):
            events.on_error(method, exc, peers.client_address(context))
            await context.abort_with_status(to_status(exc))
        log.exception("unhandled error in %s", method)
        await context.abort_with_status(internal_status())
