"""Adapts write-style streaming handlers to the async-generator style.

grpc.aio accepts two kinds of server-streaming handler: an async generator
that yields its responses, and a coroutine that sends them with
`await context.write(...)` (grpcio-health-checking's `Health/Watch` is one).
The interceptors wrap a stream by iterating it, which only works for the
first kind: iterating a coroutine raised TypeError and Watch answered
INTERNAL. `as_generator` runs a write-style handler as a task whose writes
go through a queue, and yields them, so every wrapper sees a generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc.aio

WriteStyleBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[None]]
StreamBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]
_END = object()


def is_write_style(behavior: Callable[..., Any]) -> bool:
    """Whether `behavior` is a coroutine function (sends with `context.write`)."""
    return not inspect.isasyncgenfunction(behavior) and inspect.iscoroutinefunction(behavior)


class _WritesToQueue:
    """The call's context, except that `write` hands the message to a queue."""

    def __init__(self, context: grpc.aio.ServicerContext[Any, Any], queue: asyncio.Queue[Any]):
        self._context = context
        self._queue = queue

    async def write(self, message: Any) -> None:
        """Queue `message` for the generator to yield."""
        self._queue.put_nowait(message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def as_generator(behavior: WriteStyleBehavior) -> StreamBehavior:
    """Wrap a write-style handler as an async-generator handler.

    The handler runs as a task; closing the generator (the client went away)
    cancels it, and an exception it raises comes out of the generator. The
    queue is unbounded, which suits handlers that write rarely (health).
    """

    async def generator(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def run() -> None:
            try:
                await behavior(request, _WritesToQueue(context, queue))  # type: ignore[arg-type]
            finally:
                queue.put_nowait(_END)

        task = asyncio.get_running_loop().create_task(run())
        try:
            while (message := await queue.get()) is not _END:
                yield message
            await task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return generator
