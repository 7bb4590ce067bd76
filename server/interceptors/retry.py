"""One retry of a read that failed because its database connection dropped.

A read (an rpc whose `google.api.http` rule is a GET) that fails with
errors.Unavailable reason DATABASE_UNAVAILABLE is run once more if the
database answers a fresh probe: the connection it had was lost (a restart,
a network blip), and the pool has replaced it. Writes are never retried here:
a write whose connection broke may or may not have committed, so the client
decides (batch writes carry a `request_id` that makes a client retry safe).
Streams are not retried either: they may have sent messages already.

While the database is down the probe fails at once and the error goes out
as it is (UNAVAILABLE, 503), so a retry never adds a wait.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc.aio
from google.api import annotations_pb2
from google.protobuf import descriptor

from server import errors
from server.interceptors.base import UnaryBehavior, WrappingInterceptor

RETRIED_REASON = "DATABASE_UNAVAILABLE"


def read_methods(services: Iterable[descriptor.ServiceDescriptor]) -> frozenset[str]:
    """Full method paths (`/pkg.Service/Method`) of the rpcs routed as HTTP GET."""
    found = set()
    for service in services:
        for method in service.methods:
            rule = method.GetOptions().Extensions[annotations_pb2.http]
            if rule.WhichOneof("pattern") == "get":
                found.add(f"/{service.full_name}/{method.name}")
    return frozenset(found)


class ReadRetryInterceptor(WrappingInterceptor):
    """Retries a read once after a dropped connection; innermost."""

    def __init__(self, reads: frozenset[str], database_answers: Callable[[], Awaitable[bool]]):
        """Retry the methods in `reads` when `database_answers()` (a fresh probe) is True."""
        self._reads = reads
        self._database_answers = database_answers

    def applies(self, method: str) -> bool:
        """Only reads are retried."""
        return method in self._reads

    async def around_unary(
        self,
        method: str,
        behavior: UnaryBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        """Run the call; once more if it was a read that lost its connection."""
        if method not in self._reads:
            return await behavior(request, context)
        try:
            return await behavior(request, context)
        except errors.Unavailable as exc:
            if exc.reason != RETRIED_REASON or not await self._database_answers():
                raise
        return await behavior(request, context)
