"""Pipeline: the interceptors wrap a method's handler once, in order, on its first call."""

from __future__ import annotations

from typing import Any, cast

import grpc
import grpc.aio

from server.interceptors.base import Handler, UnaryBehavior, WrappingInterceptor
from server.interceptors.pipeline import Pipeline

NO_CONTEXT = cast(grpc.aio.ServicerContext[Any, Any], None)


class Tagging(WrappingInterceptor):
    """Records its name around each call; applies to every method but `skip`."""

    def __init__(self, name: str, trail: list[str], skip: str = "") -> None:
        self.name, self.trail, self.skip = name, trail, skip

    def applies(self, method: str) -> bool:
        return method != self.skip

    async def around_unary(
        self, method: str, behavior: UnaryBehavior, request: Any, context: Any
    ) -> Any:
        self.trail.append(f"{self.name}>")
        answer = await behavior(request, context)
        self.trail.append(f"<{self.name}")
        return answer


class Details:
    def __init__(self, method: str) -> None:
        self.method = method


async def test_handlers_are_wrapped_once_per_method_in_order() -> None:
    trail: list[str] = []
    lookups: list[str] = []

    async def answer(request: Any, context: Any) -> str:
        trail.append("handler")
        return f"answer to {request}"

    async def continuation(details: grpc.HandlerCallDetails) -> Handler | None:
        lookups.append(details.method)
        return grpc.unary_unary_rpc_method_handler(answer)

    pipeline = Pipeline([Tagging("outer", trail), Tagging("inner", trail, skip="/s/B")])
    for method in ("/s/A", "/s/A", "/s/B"):
        handler = await pipeline.intercept_service(continuation, cast(Any, Details(method)))
        assert handler is not None and handler.unary_unary is not None
        assert await handler.unary_unary("q", cast(Any, NO_CONTEXT)) == "answer to q"
    assert lookups == ["/s/A", "/s/B"]
    assert trail == [
        *("outer>", "inner>", "handler", "<inner", "<outer") * 2,
        *("outer>", "handler", "<outer"),
    ]


async def test_an_unknown_method_is_not_kept() -> None:
    lookups: list[str] = []

    async def continuation(details: grpc.HandlerCallDetails) -> Handler | None:
        lookups.append(details.method)
        return None

    pipeline = Pipeline([Tagging("outer", [])])
    for _ in range(2):
        assert await pipeline.intercept_service(continuation, cast(Any, Details("/x/Y"))) is None
    assert lookups == ["/x/Y", "/x/Y"]
