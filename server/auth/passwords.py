"""Password rules and hashing.

Passwords are NFKC-normalised, must be 8 to 128 code points, and every
character counts: the normalised password is SHA-256'd and base64-encoded
(44 ASCII bytes) before bcrypt, so nothing is cut at bcrypt's 72-byte limit
and no NUL byte reaches it. bcrypt runs in a worker thread (it releases the
GIL), so a 200 ms hash never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
import unicodedata
from collections.abc import Callable
from typing import TypeVar

import bcrypt

from server import errors
from server.observability import metrics, tracing

T = TypeVar("T")
MIN_LENGTH = 8
MAX_LENGTH = 128


def normalize(password: str, *, field: str = "password") -> str:
    """NFKC-normalise a password and check its length; raises InvalidArgument."""
    normalized = unicodedata.normalize("NFKC", password)
    if not MIN_LENGTH <= len(normalized) <= MAX_LENGTH:
        raise errors.InvalidArgument(
            errors.FieldViolation(field, f"must be {MIN_LENGTH} to {MAX_LENGTH} characters long"),
            reason="INVALID_PASSWORD",
        )
    return normalized


def normalized_or_none(password: str) -> str | None:
    """The normalised password, or None when it could not be a valid one (to check logins)."""
    try:
        return normalize(password)
    except errors.InvalidArgument:
        return None


def _prehash(normalized: str) -> bytes:
    return base64.b64encode(hashlib.sha256(normalized.encode("utf-8")).digest())


class PasswordHasher:
    """bcrypt with a configurable cost, off the event loop."""

    def __init__(self, rounds: int) -> None:
        self._rounds = rounds
        self._dummy: bytes | None = None

    async def hash(self, normalized: str) -> str:
        """Hash an already normalised password."""
        salt = bcrypt.gensalt(self._rounds)
        digest = await _timed("hash", bcrypt.hashpw, _prehash(normalized), salt)
        return digest.decode("ascii")

    async def verify(self, normalized: str, stored: str | None) -> bool:
        """Check a password against a stored hash.

        With `stored=None` (unknown account) a dummy hash of the same cost is
        checked, so an unknown email takes as long as a wrong password.
        """
        if stored is None:
            await _timed("verify", bcrypt.checkpw, _prehash(normalized), await self._dummy_hash())
            return False
        return await _timed("verify", bcrypt.checkpw, _prehash(normalized), stored.encode("ascii"))

    async def _dummy_hash(self) -> bytes:
        if self._dummy is None:
            self._dummy = (await self.hash(secrets.token_urlsafe(16))).encode("ascii")
        return self._dummy


_BCRYPT = {op: metrics.BCRYPT.labels(op) for op in ("hash", "verify")}


async def _timed(op: str, function: Callable[[bytes, bytes], T], a: bytes, b: bytes) -> T:
    """Run one bcrypt call in a worker thread, timed and (when tracing) in a span."""
    started = time.perf_counter()
    with tracing.span("bcrypt." + op):
        result = await asyncio.to_thread(function, a, b)
    _BCRYPT[op].observe(time.perf_counter() - started)
    return result
