"""The authenticated caller of the current RPC, held in a contextvar.

The auth interceptor sets it inside the wrapped handler call and resets it in
`finally`; servicers read it with `current()`.
"""

from __future__ import annotations

import contextvars

from server import domain, errors

_principal: contextvars.ContextVar[domain.Principal | None] = contextvars.ContextVar(
    "principal", default=None
)


def current() -> domain.Principal:
    """The caller; raises Unauthenticated if the RPC was not authenticated."""
    principal = _principal.get()
    if principal is None:
        raise errors.Unauthenticated("authentication required", reason="MISSING_TOKEN")
    return principal


def peek() -> domain.Principal | None:
    """The caller, or None for a public (unauthenticated) call."""
    return _principal.get()


def bind(principal: domain.Principal) -> contextvars.Token[domain.Principal | None]:
    """Make `principal` the caller for the current context; returns the reset token."""
    return _principal.set(principal)


def unbind(token: contextvars.Token[domain.Principal | None]) -> None:
    """Undo a `bind`."""
    _principal.reset(token)
