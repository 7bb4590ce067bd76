"""The current call's identifiers, bound once per call by the telemetry interceptor.

Every log line written while a call runs carries them (see `logs.py`). The object is
mutable so that inner layers can fill in what only they learn: the auth interceptor
sets the user id once the token is verified, and the outer interceptor sees it when it
writes the call's access line.
"""

from __future__ import annotations

import contextvars
import dataclasses
import uuid


@dataclasses.dataclass(slots=True)
class CallContext:
    """Identifiers of one RPC; never a token, a password or a task's text."""

    request_id: str
    """Envoy's `x-request-id`, or a new UUID for a direct gRPC call without one."""
    rpc: str
    """The full gRPC method name, e.g. `/todo.v1.TaskService/GetTask`."""
    trace_id: str = ""
    """W3C trace id (32 hex digits) of the call's trace; empty when the call has none."""
    span_id: str = ""
    """The server span's id when tracing is on, else the caller's span id from `traceparent`."""
    user_id: str = ""
    """The authenticated caller's user id (set by the auth interceptor)."""


_current: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar(
    "call_context", default=None
)


def current() -> CallContext | None:
    """The running call's context, or None outside a call."""
    return _current.get()


def bind(context: CallContext) -> contextvars.Token[CallContext | None]:
    """Make `context` the current call's; returns the reset token."""
    return _current.set(context)


def unbind(token: contextvars.Token[CallContext | None]) -> None:
    """Undo a `bind`."""
    _current.reset(token)


def set_user(user_id: uuid.UUID) -> None:
    """Record the authenticated caller on the current call (a no-op outside a call)."""
    context = _current.get()
    if context is not None:
        context.user_id = str(user_id)


def new_request_id() -> str:
    """A request id for a call that arrived without one (direct gRPC)."""
    return str(uuid.uuid4())
