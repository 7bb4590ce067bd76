"""Per-user request limits for every authenticated RPC, on both wires, without a query.

Each server process keeps a token bucket per user in memory holding the whole limit
(`rate` per minute, `burst` at once). Envoy sends every call of one user to the same
process: it hashes the user (the access token's `sub`, read by a Lua filter) onto the
healthy processes with Maglev consistent hashing, so one process sees all of a user's
calls, and when it goes down its users move to the others (whose buckets for them start
full). See the README's "Per-user request limit" for the trade-offs. Over the limit, the
call is refused with RESOURCE_EXHAUSTED, a RetryInfo and `retry-after`.

Transcoded REST calls (Envoy sets `x-envoy-original-path`) also get the IETF draft's
`RateLimit-Limit` (the burst), `RateLimit-Remaining` and `RateLimit-Reset` (seconds until
the bucket is full) as response headers: on a unary success as trailing metadata, which
Envoy's response Lua filter moves into the REST reply's headers (server/envoy/envoy.yaml);
before a stream's first message as initial metadata; on the limit's own refusal with the
error's trailers (a trailers-only reply, whose trailers the transcoder makes headers).
A unary success used to send them as initial metadata, one more gRPC operation and event
loop round trip per call (a tenth of a REST get's server CPU, `make profile`); sending
them earlier is not an option either: an error after initial metadata is no longer
"trailers-only", and Envoy's transcoder then drops its trailers (`retry-after` among them)
from the headers. Other errors carry no RateLimit-* headers.

`RateLimit-Remaining` is `Decision.remaining`: the whole calls the answering bucket still
admits right now, so it never promises more than that bucket gives the next call, and a
refusal always says 0. Since Envoy sends all of a user's calls to one process, that
bucket is the user's whole allowance and the figure is exact; only after the user moves
to another process (theirs went down) does a fresh, full bucket answer.

Public calls (no Principal: register, login, refresh, health, reflection) pass
untouched; the credential endpoints have their own throttle (services/throttle.py).
"""

from __future__ import annotations

import dataclasses
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc.aio

from server import errors, metadata
from server.auth import principal as principal_ctx
from server.interceptors.base import StreamBehavior, UnaryBehavior, WrappingInterceptor
from server.observability import metrics

TRANSCODED = "x-envoy-original-path"
PRUNE_EVERY_S = 60.0


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome of taking one token."""

    allowed: bool
    tokens: float
    """Tokens left in the bucket."""
    retry_after_s: float
    """When refused: seconds until a token is there."""
    full_in_s: float
    """Seconds until the bucket is full again."""

    @property
    def remaining(self) -> int:
        """Calls the bucket admits right now after this one; always 0 after a refusal."""
        return math.floor(self.tokens) if self.allowed else 0


class TokenBuckets:
    """Token buckets by key, refilled at `rate_per_s` up to `capacity`."""

    def __init__(
        self,
        rate_per_s: float,
        capacity: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate_per_s
        self._capacity = capacity
        self._clock = clock
        self._buckets: dict[uuid.UUID, tuple[float, float]] = {}
        self._pruned_at = clock()

    def take(self, key: uuid.UUID) -> Decision:
        """Take one token for `key` if there is one."""
        now = self._clock()
        tokens, then = self._buckets.get(key, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - then) * self._rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        if now - self._pruned_at > PRUNE_EVERY_S:
            self._prune(now)
        return Decision(
            allowed=allowed,
            tokens=tokens,
            retry_after_s=0.0 if allowed else (1.0 - tokens) / self._rate,
            full_in_s=(self._capacity - tokens) / self._rate,
        )

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled: they are the same as new ones."""
        self._pruned_at = now
        full = [
            key
            for key, (tokens, then) in self._buckets.items()
            if tokens + (now - then) * self._rate >= self._capacity
        ]
        for key in full:
            del self._buckets[key]


class RateLimitInterceptor(WrappingInterceptor):
    """Refuses a user's calls over their limit; innermost, after AuthInterceptor."""

    def __init__(
        self,
        per_minute: int,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._buckets = TokenBuckets(per_minute / 60, float(burst), clock)
        self._burst = burst

    async def around_unary(
        self,
        method: str,
        behavior: UnaryBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        """Admit the call, then run it."""
        headers = self._admit(context)
        response = await behavior(request, context)
        if headers:
            context.set_trailing_metadata(headers)  # Envoy makes them headers (see above)
        return response

    async def around_stream(
        self,
        method: str,
        behavior: StreamBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        """Admit the call (a stream counts once), then relay it."""
        headers = self._admit(context)
        async for response in behavior(request, context):
            if headers:
                await context.send_initial_metadata(headers)
                headers = ()
            yield response

    def _admit(self, context: grpc.aio.ServicerContext[Any, Any]) -> tuple[tuple[str, str], ...]:
        """Take a token for the caller; the RateLimit-* headers to send (REST only)."""
        caller = principal_ctx.peek()
        if caller is None:
            return ()
        decision = self._buckets.take(caller.user_id)
        headers = self._headers(decision) if _transcoded(context) else ()
        if not decision.allowed:
            metrics.REFUSAL_USER_RATE.inc()
            seconds = max(1, math.ceil(decision.retry_after_s))
            raise errors.ResourceExhausted(
                f"too many requests; retry in {seconds} seconds",
                retry_after_s=seconds,
                reason="RATE_LIMITED",
                metadata=headers,
            )
        return headers

    def _headers(self, decision: Decision) -> tuple[tuple[str, str], ...]:
        remaining = min(self._burst, decision.remaining)
        return (
            ("ratelimit-limit", str(self._burst)),
            ("ratelimit-remaining", str(remaining)),
            ("ratelimit-reset", str(math.ceil(decision.full_in_s))),
        )


def _transcoded(context: grpc.aio.ServicerContext[Any, Any]) -> bool:
    return metadata.first(context, TRANSCODED) is not None
