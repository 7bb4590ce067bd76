"""Domain errors: what a use case can refuse, independent of any wire.

The tree (each maps to one gRPC code in `interceptors/errors.py`)::

    DomainError
    ├── InvalidArgument       bad input; carries one FieldViolation per bad field
    ├── FailedPrecondition    the request is valid but the state does not allow it
    ├── Unauthenticated       no, bad, expired or revoked credentials
    ├── PermissionDenied      authenticated, but not allowed (another user's id)
    ├── NotFound              missing, or owned by someone else
    ├── AlreadyExists         a unique value is taken
    ├── Aborted               a stale etag or a concurrent conflict
    ├── ResourceExhausted     throttled; carries retry_after_s
    └── Unavailable           a dependency (the database) is unreachable

Every error carries a stable, machine-readable `reason` (ErrorInfo) and a
message meant for people: it names the field and the rule, never internals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class FieldViolation:
    """One bad field: its name (snake_case, dotted for nesting) and the rule it broke."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error a use case raises on purpose."""

    default_reason = "ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason


class InvalidArgument(DomainError):
    """The request is malformed; `violations` names each bad field."""

    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        violations: list[FieldViolation] | FieldViolation,
        *,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        if isinstance(violations, FieldViolation):
            violations = [violations]
        self.violations = list(violations)
        text = message or "; ".join(f"{v.field} {v.description}" for v in self.violations)
        super().__init__(text, reason=reason)


class FailedPrecondition(DomainError):
    """The request is valid but the current state does not allow it."""

    default_reason = "FAILED_PRECONDITION"


class Unauthenticated(DomainError):
    """Credentials are missing, malformed, expired or revoked."""

    default_reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    """The caller may not act on this resource."""

    default_reason = "PERMISSION_DENIED"


class NotFound(DomainError):
    """The resource does not exist or belongs to another user."""

    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    """A value that must be unique is taken."""

    default_reason = "ALREADY_EXISTS"


class Aborted(DomainError):
    """A conflicting concurrent change, such as a stale etag."""

    default_reason = "ABORTED"


class ResourceExhausted(DomainError):
    """Too many requests; retry after `retry_after_s` seconds.

    `metadata` are extra (name, value) pairs for the response, such as the RateLimit-*
    headers of the per-user limit.
    """

    default_reason = "RATE_LIMITED"

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: int,
        reason: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after_s = retry_after_s
        self.metadata = tuple(metadata)


class Unavailable(DomainError):
    """A dependency is unreachable; the call may be retried."""

    default_reason = "UNAVAILABLE"
