"""RateLimit-Remaining never promises more than the next call gets; a refusal says 0."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest

from server import domain, errors
from server.auth import principal as principal_ctx
from server.interceptors.rate_limit import TRANSCODED, RateLimitInterceptor, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("seed", range(20))
def test_remaining_calls_are_all_admitted_and_a_refusal_says_zero(seed: int) -> None:
    rng = random.Random(seed)
    clock = Clock()
    buckets = TokenBuckets(rate_per_s=rng.choice([0.5, 2.0, 10.0]), capacity=5.0, clock=clock)
    user = uuid.uuid4()
    for _ in range(300):
        clock.now += rng.choice([0.0, 0.0, 0.01, 0.05, 0.3, 1.0])
        decision = buckets.take(user)
        if not decision.allowed:
            assert decision.remaining == 0
            continue
        promised = decision.remaining
        assert 0 <= promised <= 4
        followers = [buckets.take(user) for _ in range(promised)]  # at the same instant
        assert all(f.allowed for f in followers), (promised, followers)
        if promised:
            assert followers[-1].remaining == 0


class Context:
    def __init__(self) -> None:
        self.initial: tuple[tuple[str, str], ...] = ()
        self.trailing: tuple[tuple[str, str], ...] = ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((TRANSCODED, "/api/v1/users/me"),)

    async def send_initial_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.initial = metadata

    def set_trailing_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.trailing = metadata  # a unary success: Envoy's Lua makes them headers


async def _call(interceptor: RateLimitInterceptor, user: uuid.UUID) -> dict[str, str]:
    """One REST call through the interceptor: its RateLimit-* headers, or the refusal's."""
    principal = domain.Principal(user, uuid.uuid4())
    token = principal_ctx.bind(principal)
    context = Context()

    async def behavior(request: Any, ctx: Any) -> str:
        return "ok"

    try:
        await interceptor.around_unary("/m", behavior, None, context)  # type: ignore[arg-type]
    except errors.ResourceExhausted as refused:
        return {"status": "429", **dict(refused.metadata)}
    finally:
        principal_ctx.unbind(token)
    return {"status": "200", **dict(context.initial), **dict(context.trailing)}


async def test_a_refusal_never_says_remaining_1_with_several_processes() -> None:
    """The reported case: half a token left (once scaled by 2 processes, it said 1)."""
    clock = Clock()
    # The bucket that answers holds 2 and refills 1 a second.
    interceptor = RateLimitInterceptor(per_minute=60, burst=2, clock=clock)
    user = uuid.uuid4()
    answers = [await _call(interceptor, user) for _ in range(2)]
    assert [a["ratelimit-remaining"] for a in answers] == ["1", "0"]
    clock.now += 0.6  # 0.6 tokens: not enough for a call
    refused = await _call(interceptor, user)
    assert refused["status"] == "429"
    assert refused["ratelimit-remaining"] == "0"
    assert refused["ratelimit-limit"] == "2"
    clock.now += 0.4
    again = await _call(interceptor, user)
    assert again["status"] == "200" and again["ratelimit-remaining"] == "0"


async def test_remaining_is_never_more_than_the_answering_bucket_admits() -> None:
    clock = Clock()
    interceptor = RateLimitInterceptor(per_minute=300, burst=5, clock=clock)
    user = uuid.uuid4()
    rng = random.Random(7)
    for _ in range(200):
        clock.now += rng.choice([0.0, 0.05, 0.2, 1.0])
        answer = await _call(interceptor, user)
        promised = int(answer["ratelimit-remaining"])
        if answer["status"] == "429":
            assert promised == 0
        for _ in range(promised):
            assert (await _call(interceptor, user))["status"] == "200"
