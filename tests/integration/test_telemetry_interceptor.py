"""The telemetry layer on a real in-process server: ids on every line, one traceback."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import grpc.aio
import pytest
from prometheus_client import REGISTRY
from todo.v1 import auth_pb2, auth_pb2_grpc

from server import app
from server.config import Settings
from server.observability import logs

BROKEN = "/test.Broken/Fail"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class BrokenHandler(grpc.GenericRpcHandler):
    """A method whose handler raises an unexpected error after logging a line."""

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        if handler_call_details.method != BROKEN:
            return None

        async def fail(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            logging.getLogger("test.handler").info("about to fail")
            raise RuntimeError("unexpected: the handler broke")

        return grpc.unary_unary_rpc_method_handler(fail)


@pytest.fixture
async def channel(database_url: str) -> AsyncIterator[grpc.aio.Channel]:
    settings = Settings(database_url=database_url, bcrypt_rounds=4, workers=1)
    async with contextlib.AsyncExitStack() as stack:
        server, port = await app.create_server(settings, stack)
        server.add_generic_rpc_handlers((BrokenHandler(),))
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                yield ch
        finally:
            await server.stop(0)


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _broken(channel: grpc.aio.Channel) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(BROKEN)


async def _auth(channel: grpc.aio.Channel) -> tuple[str, str]:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    email = f"tel-{uuid.uuid4().hex[:10]}@example.com"
    await stub.Register(auth_pb2.RegisterRequest(email=email, password="password1", name="T"))
    tokens = await stub.Login(auth_pb2.LoginRequest(email=email, password="password1"))
    return ("authorization", f"Bearer {tokens.access_token}")


async def _logged(json_lines: io.StringIO) -> list[dict[str, Any]]:
    """The log lines, once the server has written the broken call's access line.

    The server writes it as the call ends, after the status went out: the client (same
    event loop) may look first.
    """
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
        done = any(ln.get("rpc") == BROKEN and ln["logger"] == "todo.access" for ln in lines)
        if done or time.monotonic() > deadline:
            return lines
        await asyncio.sleep(0.01)


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_an_unhandled_error_is_logged_once_with_traceback_and_ids(
    channel: grpc.aio.Channel, json_lines: io.StringIO
) -> None:
    before = _sample("todo_rpc_requests_total", {"rpc": BROKEN, "code": "INTERNAL"})
    metadata = (
        await _auth(channel),
        ("x-request-id", "req-broken-1"),
        ("traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-01"),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _broken(channel)(b"", metadata=metadata)
    assert caught.value.code() is grpc.StatusCode.INTERNAL
    assert "broke" not in (caught.value.details() or "")
    lines = await _logged(json_lines)
    mine = [line for line in lines if line.get("request_id") == "req-broken-1"]
    assert mine and all(len(line.get("user_id", "")) == 36 for line in mine)
    assert {line["trace_id"] for line in mine} == {TRACE_ID}
    assert {line["rpc"] for line in mine} == {BROKEN}
    with_traceback = [line for line in mine if "traceback" in line]
    assert len(with_traceback) == 1
    assert "RuntimeError: unexpected: the handler broke" in with_traceback[0]["traceback"]
    assert with_traceback[0]["level"] == "error"
    access = [line for line in mine if line["logger"] == "todo.access"]
    assert len(access) == 1 and access[0]["code"] == "INTERNAL" and access[0]["duration_ms"] > 0
    assert any(line["message"] == "about to fail" for line in mine)
    after = _sample("todo_rpc_requests_total", {"rpc": BROKEN, "code": "INTERNAL"})
    assert after == before + 1


async def test_a_direct_call_without_a_request_id_gets_one(
    channel: grpc.aio.Channel, json_lines: io.StringIO
) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await _broken(channel)(b"", metadata=(await _auth(channel),))
    lines = await _logged(json_lines)
    access = [
        line for line in lines if line.get("rpc") == BROKEN and line["logger"] == "todo.access"
    ]
    assert len(access) == 1
    assert len(access[0]["request_id"]) == 36 and access[0]["trace_id"] == ""
