"""Security events: one log line with `event=<kind>` (logger `todo.security`) plus a counter.

- `login_failed` (reason `invalid_credentials`): Login refused, whether the email is
  unknown or the password wrong: one kind, so the log cannot tell which accounts exist;
- `login_throttled` (`too_many_attempts`): Login refused by a credential throttle (which
  key refused is counted in `todo_rate_limit_refusals_total{reason="throttle_*"}`);
- `refresh_token_reused` (`reuse`): a used refresh token came back; its family (the
  session) is revoked, `family_size` sessions;
- `token_rejected` (the ErrorInfo reason, lowercased: `token_expired`, `invalid_token`,
  `token_revoked`, `missing_token`, ...): a bearer or refresh token was refused;
- `access_denied` (the ErrorInfo reason, lowercased): PERMISSION_DENIED, a user id other
  than the caller's;
- `password_changed`, `account_deleted` (`ok`): ChangePassword or DeleteUser succeeded;
- `password_hash_shed` (`password_checks_busy`): a password check refused because the
  process's hashing pool was full (a login flood, `auth/hash_pool.py`). Counted per refusal
  here and in `todo_rate_limit_refusals_total{reason="password_checks_busy"}`; its log line
  is the hash pool's own, at most one a second with a count, so a flood cannot flood the log.

`cors_origin_refused` is Envoy's: see the README (Envoy's `cors.origin_invalid` stat and
access-log field). Lines carry the call context (request id, trace id, rpc, user id when
known) and the client address, never an email, a token or a password.
"""

from __future__ import annotations

import logging
from typing import Any

from server import errors
from server.observability import metrics
from server.observability.logs import FIELDS

log = logging.getLogger("todo.security")
LOGIN = "/todo.v1.AuthService/Login"
REFRESH = "/todo.v1.AuthService/Refresh"
ON_SUCCESS = {
    "/todo.v1.UserService/ChangePassword": "password_changed",
    "/todo.v1.UserService/DeleteUser": "account_deleted",
}
"""Successful RPCs that are security events of their own."""
PASSWORD_CHECKS_BUSY = "PASSWORD_CHECKS_BUSY"
"""The ErrorInfo reason of a password check shed by the hash pool."""
_TOKEN_REASONS = frozenset(
    {
        "MISSING_TOKEN",
        "TOKEN_EXPIRED",
        "TOKEN_NOT_YET_VALID",
        "INVALID_TOKEN",
        "WRONG_TOKEN_TYPE",
        "UNKNOWN_KEY",
        "TOKEN_REVOKED",
        "REFRESH_TOKEN_REVOKED",
    }
)


def emit(event: str, reason: str, client_address: str = "", **fields: Any) -> None:
    """Count the event and write its log line (WARNING: it is news for the on-call)."""
    metrics.SECURITY_EVENTS.labels(event, reason).inc()
    line = {"event": event, "reason": reason, **fields}
    if client_address:
        line["client_address"] = client_address
    log.warning("security event %s", event, extra={FIELDS: line})


def on_error(method: str, error: errors.DomainError, client_address: str) -> None:
    """Emit the security event a refused call stands for, if any."""
    if isinstance(error, errors.Unauthenticated):
        if method == LOGIN and error.reason == "INVALID_CREDENTIALS":
            emit("login_failed", "invalid_credentials", client_address)
        elif error.reason in _TOKEN_REASONS:
            emit("token_rejected", error.reason.lower(), client_address)
    elif isinstance(error, errors.PermissionDenied):
        emit("access_denied", error.reason.lower(), client_address)
    elif isinstance(error, errors.ResourceExhausted):
        if method == LOGIN and error.reason == "TOO_MANY_ATTEMPTS":
            emit("login_throttled", "too_many_attempts", client_address)
        elif error.reason == PASSWORD_CHECKS_BUSY:
            metrics.SECURITY_EVENTS.labels("password_hash_shed", "password_checks_busy").inc()
            metrics.REFUSALS.labels("password_checks_busy").inc()


def on_success(method: str) -> None:
    """Emit the security event a successful call stands for, if any (one dict lookup)."""
    event = ON_SUCCESS.get(method)
    if event is not None:
        emit(event, "ok")


def refresh_token_reused(user_id: str, family_size: int) -> None:
    """A used refresh token came back: its family was revoked (`family_size` sessions)."""
    emit("refresh_token_reused", "reuse", user_id=user_id, family_size=family_size)
