"""JWT access and refresh tokens (RFC 8725 checks).

Both kinds are HS256 JWTs with `iss`, `aud`, `sub` (user id), `sid` (the
login session, i.e. the refresh family), `jti`, `iat`, `nbf`, `exp` and `typ`
(`access` or `refresh`), and a `kid` header naming the key. Decoding pins the
algorithm, picks the key by `kid` (the current key or the one before the last
rotation; any other `kid`, or none, is refused), requires every claim, checks
issuer, audience, `nbf` and expiry (with a small leeway) and refuses a token
of the other type.

Verified access and refresh tokens are remembered (`VerifiedCache`, a small bounded map
from the token's exact text to its claims): a client sends the same access token on every
call, and decoding and checking it again (base64, JSON, HMAC) was about a tenth of a
get-task's server CPU. A hit is still checked against the clock (expiry and `nbf`, with
the same leeway) and its type on every call; revocation is not the codec's business and
is checked by the caller on every call, cached or not. Only tokens that verified are kept,
so a forged or garbled token is decoded (and refused) every time.

A key's id is derived from the key itself (a truncated SHA-256), so every
process agrees on it and rotating needs no extra setting: set the new
`jwt_secret`, move the old one to `jwt_previous_secret`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
import time
import uuid
from typing import Any, Literal

import jwt

from server import errors
from server.config import Settings

ALGORITHM = "HS256"
LEEWAY_S = 5
_REQUIRED = ["iss", "aud", "sub", "sid", "jti", "iat", "nbf", "exp", "typ"]
TokenType = Literal["access", "refresh"]
CACHE_SIZE = 4096
"""Verified tokens a process remembers (a few hundred bytes each)."""


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


def key_id(secret: str) -> str:
    """The `kid` of a signing key: 16 hex digits of a SHA-256 over it (not reversible)."""
    return hashlib.sha256(b"todo.v1 jwt kid\0" + secret.encode("utf-8")).hexdigest()[:16]


@dataclasses.dataclass(frozen=True, slots=True)
class _Verified:
    claims: Claims
    kind: str
    not_before: float
    expires: float


class VerifiedCache:
    """Tokens that verified, by their exact text; the oldest entry goes when it is full."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._entries: dict[str, _Verified] = {}

    def get(self, token: str) -> _Verified | None:
        """The remembered verification of `token`, if any."""
        return self._entries.get(token)

    def put(self, token: str, verified: _Verified) -> None:
        """Remember a verified token, forgetting the oldest one when full."""
        if len(self._entries) >= self._size:
            del self._entries[next(iter(self._entries))]
        self._entries[token] = verified

    def forget(self, token: str) -> None:
        """Drop a token (it has expired)."""
        self._entries.pop(token, None)


class TokenCodec:
    """Signs with the current key; verifies with the current or the previous one, by `kid`."""

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret
        self._kid = key_id(settings.jwt_secret)
        self._keys = {self._kid: settings.jwt_secret}
        if settings.jwt_previous_secret is not None:
            self._keys[key_id(settings.jwt_previous_secret)] = settings.jwt_previous_secret
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._ttl = {
            "access": dt.timedelta(seconds=settings.access_token_ttl_s),
            "refresh": dt.timedelta(seconds=settings.refresh_token_ttl_s),
        }
        self._verified = VerifiedCache()

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
            "nbf": now,
            "exp": expires_at,
            "typ": kind,
        }
        token = jwt.encode(payload, self._secret, algorithm=ALGORITHM, headers={"kid": self._kid})
        return IssuedToken(token, Claims(user_id, session_id, jti, expires_at))

    def verify(self, token: str, kind: TokenType) -> Claims:
        """Verify a token of `kind`; raises errors.Unauthenticated on any problem.

        A token verified before is not decoded again, but its type and its time window
        are checked again, as `jwt.decode` would.
        """
        known = self._verified.get(token)
        if known is None:
            known = self._decode(token)
            self._verified.put(token, known)
        now = time.time()
        if known.expires <= now - LEEWAY_S:
            self._verified.forget(token)
            raise errors.Unauthenticated("token has expired", reason="TOKEN_EXPIRED")
        if known.not_before > now + LEEWAY_S:
            raise errors.Unauthenticated("token is not valid yet", reason="TOKEN_NOT_YET_VALID")
        if known.kind != kind:
            raise errors.Unauthenticated(f"not an {kind} token", reason="WRONG_TOKEN_TYPE")
        return known.claims

    def _decode(self, token: str) -> _Verified:
        """Decode and check a token (signature, claims, time window) with PyJWT."""
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                self._key_for(token),
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_S,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise errors.Unauthenticated("token has expired", reason="TOKEN_EXPIRED") from None
        except jwt.ImmatureSignatureError:
            raise errors.Unauthenticated(
                "token is not valid yet", reason="TOKEN_NOT_YET_VALID"
            ) from None
        except jwt.PyJWTError:
            raise errors.Unauthenticated("token is invalid", reason="INVALID_TOKEN") from None
        try:
            claims = Claims(
                user_id=uuid.UUID(payload["sub"]),
                session_id=uuid.UUID(payload["sid"]),
                token_id=str(payload["jti"]),
                expires_at=dt.datetime.fromtimestamp(int(payload["exp"]), dt.UTC),
            )
            return _Verified(
                claims, str(payload["typ"]), float(payload["nbf"]), float(payload["exp"])
            )
        except (TypeError, ValueError):
            raise errors.Unauthenticated("token is invalid", reason="INVALID_TOKEN") from None

    def _key_for(self, token: str) -> str:
        """The key named by the token's `kid` header; refuses an unknown or missing one."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise errors.Unauthenticated("token is invalid", reason="INVALID_TOKEN") from None
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise errors.Unauthenticated(
                "token is signed with an unknown key", reason="UNKNOWN_KEY"
            )
        return key
