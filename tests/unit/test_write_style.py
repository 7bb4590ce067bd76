"""Write-style streaming handlers (context.write) adapted to generators."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any, cast

import pytest

from server.interceptors import write_style


class _Context:
    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"


async def test_writes_are_yielded_in_order_and_other_context_calls_pass_through() -> None:
    async def handler(request: int, context: Any) -> None:
        assert context.peer() == "ipv4:127.0.0.1:1"
        for i in range(request):
            await context.write(i)

    assert write_style.is_write_style(handler)
    stream = write_style.as_generator(handler)
    assert [m async for m in stream(3, _Context())] == [0, 1, 2]  # type: ignore[arg-type]


async def test_an_exception_of_the_handler_comes_out_of_the_generator() -> None:
    async def handler(request: int, context: Any) -> None:
        await context.write("first")
        raise LookupError("boom")

    stream = write_style.as_generator(handler)(0, _Context())  # type: ignore[arg-type]
    assert await anext(stream) == "first"
    with pytest.raises(LookupError):
        await anext(stream)


async def test_closing_the_generator_cancels_the_handler() -> None:
    cancelled = asyncio.Event()

    async def handler(request: int, context: Any) -> None:
        await context.write("hello")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    stream = cast(AsyncGenerator[Any, None], write_style.as_generator(handler)(0, _Context()))  # type: ignore[arg-type]
    assert await anext(stream) == "hello"
    await stream.aclose()
    assert cancelled.is_set()


def test_generators_are_not_write_style() -> None:
    async def generator(request: int, context: Any) -> Any:
        yield request

    assert not write_style.is_write_style(generator)
