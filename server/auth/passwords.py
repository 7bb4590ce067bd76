"""Password rules and hashing.

Passwords are NFKC-normalised, must be 8 to 128 code points, and every
character counts: the normalised password is SHA-256'd and base64-encoded
(44 ASCII bytes) before bcrypt, so nothing is cut at bcrypt's 72-byte limit
and no NUL byte reaches it. bcrypt runs on the process's `HashPool`: a few
low-priority threads (bcrypt releases the GIL), so a 250 ms hash never blocks
the event loop and a flood of them cannot starve other calls. When the pool is
full the hash is refused at once with ResourceExhausted (PASSWORD_CHECKS_BUSY),
before the password is looked at, so the refusal says nothing about it.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import secrets
import time
import unicodedata
from collections.abc import Callable
from typing import TypeVar

import bcrypt

from server import errors
from server.auth.hash_pool import HashPool, Shed
from server.observability import metrics, tracing

T = TypeVar("T")
MIN_LENGTH = 8
MAX_LENGTH = 128
BUSY_RETRY_AFTER_S = 1
"""Retry-After of a refused hash: the pool turns over several times a second."""


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
    """bcrypt with a configurable cost, on a bounded pool of low-priority threads."""

    def __init__(self, rounds: int, pool: HashPool) -> None:
        self._rounds = rounds
        self._pool = pool
        self._dummy: bytes | None = None

    @property
    def pool(self) -> HashPool:
        """The pool the hashes run on (its `shed_total` counts refusals)."""
        return self._pool

    def refuse_if_busy(self) -> None:
        """Refuse now, before a use case does other work, if a hash would be refused.

        Raises:
            errors.ResourceExhausted: the pool is full (reason PASSWORD_CHECKS_BUSY).
        """
        try:
            self._pool.refuse_if_full()
        except Shed:
            raise busy() from None

    async def hash(self, normalized: str) -> str:
        """Hash an already normalised password.

        Raises:
            errors.ResourceExhausted: the pool is full (reason PASSWORD_CHECKS_BUSY).
        """
        salt = bcrypt.gensalt(self._rounds)
        digest = await self._run("hash", bcrypt.hashpw, _prehash(normalized), salt)
        return digest.decode("ascii")

    async def verify(self, normalized: str, stored: str | None) -> bool:
        """Check a password against a stored hash.

        With `stored=None` (unknown account) a dummy hash of the same cost is
        checked, so an unknown email takes as long as a wrong password.

        Raises:
            errors.ResourceExhausted: the pool is full (reason PASSWORD_CHECKS_BUSY).
        """
        if stored is None:
            await self._run(
                "verify", bcrypt.checkpw, _prehash(normalized), await self._dummy_hash()
            )
            return False
        return await self._run(
            "verify", bcrypt.checkpw, _prehash(normalized), stored.encode("ascii")
        )

    async def _run(
        self, op: str, fn: Callable[[bytes, bytes], T], password: bytes, other: bytes
    ) -> T:
        """One bcrypt call on the pool, timed and (when tracing) in a span."""
        started = time.perf_counter()
        try:
            with tracing.span("bcrypt." + op):
                result = await self._pool.run(fn, password, other)
        except Shed:
            raise busy() from None
        except concurrent.futures.BrokenExecutor:
            raise errors.Unavailable(
                "password checks are restarting; retry", reason="PASSWORD_CHECKS_RESTARTING"
            ) from None
        _BCRYPT[op].observe(time.perf_counter() - started)
        return result

    async def _dummy_hash(self) -> bytes:
        if self._dummy is None:
            self._dummy = (await self.hash(secrets.token_urlsafe(16))).encode("ascii")
        return self._dummy


def busy() -> errors.ResourceExhausted:
    """The refusal of a hash the pool has no room for: the same whatever the password."""
    return errors.ResourceExhausted(
        "too many password checks at once; retry shortly",
        retry_after_s=BUSY_RETRY_AFTER_S,
        reason="PASSWORD_CHECKS_BUSY",
    )


_BCRYPT = {op: metrics.BCRYPT.labels(op) for op in ("hash", "verify")}
