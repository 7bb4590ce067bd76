"""JWT access and refresh tokens (RFC 8725 checks).

Both kinds are HS256 JWTs with `iss`, `aud`, `sub` (user id), `sid` (the
login session, i.e. the refresh family), `jti`, `iat`, `exp` and `typ`
(`access` or `refresh`). Decoding pins the algorithm, requires every claim,
checks issuer, audience and expiry (with a small leeway) and refuses a token
of the other type.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import uuid
from typing import Any, Literal

import jwt

from server import errors
from server.config import Settings

ALGORITHM = "HS256"
LEEWAY_S = 5
_REQUIRED = ["iss", "aud", "sub", "sid", "jti", "iat", "exp", "typ"]
TokenType = Literal["access", "refresh"]


@dataclasses.dataclass(frozen=True)
class Claims:
    """The verified claims of a token."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: str
    expires_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class IssuedToken:
    """A freshly signed token and its claims."""

    token: str
    claims: Claims


class TokenCodec:
    """Signs and verifies tokens with the configured key, issuer and audience."""

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._ttl = {
            "access": dt.timedelta(seconds=settings.access_token_ttl_s),
            "refresh": dt.timedelta(seconds=settings.refresh_token_ttl_s),
        }

    def ttl(self, kind: TokenType) -> dt.timedelta:
        """The lifetime of a token of this kind."""
        return self._ttl[kind]

    def issue(self, kind: TokenType, user_id: uuid.UUID, session_id: uuid.UUID) -> IssuedToken:
        """Sign a new token of `kind` for this user and session."""
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        expires_at = now + self._ttl[kind]
        jti = secrets.token_urlsafe(16)
        payload = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "sid": str(session_id),
            "jti": jti,
            "iat": now,
            "exp": expires_at,
            "typ": kind,
        }
        token = jwt.encode(payload, self._secret, algorithm=ALGORITHM)
        return IssuedToken(token, Claims(user_id, session_id, jti, expires_at))

    def verify(self, token: str, kind: TokenType) -> Claims:
        """Verify a token of `kind`; raises errors.Unauthenticated on any problem."""
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_S,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise errors.Unauthenticated("token has expired", reason="TOKEN_EXPIRED") from None
        except jwt.PyJWTError:
            raise errors.Unauthenticated("token is invalid", reason="INVALID_TOKEN") from None
        if payload["typ"] != kind:
            raise errors.Unauthenticated(f"not an {kind} token", reason="WRONG_TOKEN_TYPE")
        try:
            return Claims(
                user_id=uuid.UUID(payload["sub"]),
                session_id=uuid.UUID(payload["sid"]),
                token_id=str(payload["jti"]),
                expires_at=dt.datetime.fromtimestamp(int(payload["exp"]), dt.UTC),
            )
        except (TypeError, ValueError):
            raise errors.Unauthenticated("token is invalid", reason="INVALID_TOKEN") from None
