"""One real server process in-process (port 0): deadlines, per-user limits, throttling."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from todo.v1 import auth_pb2, auth_pb2_grpc, user_pb2, user_pb2_grpc

from server import app
from server.config import Settings

SLOW_METHOD = "/test.Slow/Sleep"


class SlowHandler(grpc.GenericRpcHandler):
    """A method that sleeps until cancelled, and records that it was."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        if handler_call_details.method != SLOW_METHOD:
            return None

        async def sleep(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            self.started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
            return b""

        return grpc.unary_unary_rpc_method_handler(sleep)


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[tuple[grpc.aio.Channel, SlowHandler]]:
    settings = Settings(
        database_url=database_url,
        bcrypt_rounds=4,
        workers=1,
        user_rate_limit=60,  # one a second, after a burst of 3
        user_rate_burst=3,
        throttle_per_account_address=2,
    )
    slow = SlowHandler()
    async with contextlib.AsyncExitStack() as stack:
        server, port = await app.create_server(settings, stack)
        server.add_generic_rpc_handlers((slow,))
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield channel, slow
        finally:
            await server.stop(0)


async def _login(channel: grpc.aio.Channel) -> tuple[tuple[str, str], ...]:
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    email = f"srv-{uuid.uuid4().hex[:10]}@example.com"
    await auth.Register(auth_pb2.RegisterRequest(email=email, password="password1", name="S"))
    tokens = await auth.Login(auth_pb2.LoginRequest(email=email, password="password1"))
    return (("authorization", f"Bearer {tokens.access_token}"),)


def _retry_delay(error: grpc.aio.AioRpcError) -> int:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds
    raise AssertionError("no RetryInfo")


async def test_a_client_deadline_cancels_the_handler(served) -> None:
    channel, slow = served
    md = await _login(channel)
    call = channel.unary_unary(SLOW_METHOD)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(b"", timeout=0.3, metadata=md)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert slow.started.is_set()
    await asyncio.wait_for(slow.cancelled.wait(), timeout=1.0)
    assert time.monotonic() - started < 1.5


async def test_a_cancelled_call_cancels_the_handler(served) -> None:
    channel, slow = served
    md = await _login(channel)
    call = channel.unary_unary(SLOW_METHOD)(b"", metadata=md)
    await asyncio.wait_for(slow.started.wait(), timeout=2.0)
    call.cancel()
    await asyncio.wait_for(slow.cancelled.wait(), timeout=1.0)


async def test_per_user_limit_is_resource_exhausted_with_retry_info(served) -> None:
    channel, _ = served
    md = await _login(channel)
    other = await _login(channel)
    users = user_pb2_grpc.UserServiceStub(channel)
    for _ in range(3):
        await users.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=md)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await users.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=md)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _retry_delay(caught.value) == 1
    assert ("retry-after", "1") in tuple(caught.value.trailing_metadata() or ())
    await users.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=other)  # per user
    await asyncio.sleep(1.05)
    await users.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=md)


async def test_transcoded_calls_get_rate_limit_headers(served) -> None:
    channel, _ = served
    md = (*await _login(channel), ("x-envoy-original-path", "/api/v1/users/me"))
    users = user_pb2_grpc.UserServiceStub(channel)
    call = users.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=md)
    await call
    # A unary success sends them as trailers; Envoy's response Lua makes them REST headers
    # (tests/e2e/test_hardened_edge.py sees them there).
    headers = dict(await call.trailing_metadata())
    assert headers["ratelimit-limit"] == "3"
    assert headers["ratelimit-remaining"] == "2"
    assert headers["ratelimit-reset"] == "1"
    assert "ratelimit-limit" not in dict(await call.initial_metadata())
    plain = users.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=md[:1])
    await plain
    assert "ratelimit-limit" not in dict(await plain.initial_metadata())
    assert "ratelimit-limit" not in dict(await plain.trailing_metadata())


async def test_login_throttle_is_resource_exhausted_never_unavailable(served) -> None:
    channel, _ = served
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    email = f"thr-{uuid.uuid4().hex[:10]}@example.com"
    md = (("x-forwarded-for", "198.51.100.23"),)
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await auth.Login(auth_pb2.LoginRequest(email=email, password="password1"), metadata=md)
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await auth.Login(auth_pb2.LoginRequest(email=email, password="password1"), metadata=md)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _retry_delay(caught.value) == 300  # 600 s / 2 attempts
    elsewhere = (("x-forwarded-for", "198.51.100.24"),)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await auth.Login(
            auth_pb2.LoginRequest(email=email, password="password1"), metadata=elsewhere
        )
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("environment", "reflection", "served"),
    [("development", None, True), ("production", None, False), ("production", True, True)],
)
async def test_reflection_is_off_in_production_unless_enabled(
    database_url: str, environment: str, reflection: bool | None, served: bool
) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    settings = Settings(
        database_url=database_url,
        environment=environment,  # type: ignore[arg-type]
        jwt_secret="a-real-secret-for-this-test-0123456789",
        reflection=reflection,
    )
    async with contextlib.AsyncExitStack() as stack:
        server, port = await app.create_server(settings, stack)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = reflection_pb2_grpc.ServerReflectionStub(channel)
                request = reflection_pb2.ServerReflectionRequest(list_services="")
                call = stub.ServerReflectionInfo(iter([request]))
                try:
                    answers = [answer async for answer in call]
                    listed = answers[0].list_services_response.service
                    assert served and "todo.v1.UserService" in {s.name for s in listed}
                except grpc.aio.AioRpcError as error:
                    assert not served and error.code() is grpc.StatusCode.UNIMPLEMENTED
        finally:
            await server.stop(0)
