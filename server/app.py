"""Composition root: builds and serves one server process (see supervisor.py for all of them).

Interceptor order, outermost first:

1. TelemetryInterceptor: request id, trace context and log context bound once per call;
   the rpc span, RED metrics and one access line, whatever happened inside;
2. ErrorInterceptor: DomainError -> status with details (and its security event),
   anything else -> INTERNAL, logged once with its traceback;
3. AuthInterceptor: verifies the bearer token, binds the Principal (and the user id
   into the log context);
4. RateLimitInterceptor: the caller's per-user request limit (when configured);
5. TextSafetyInterceptor: refuses NUL and other control characters in any
   string of the request (after auth, so anonymous callers learn nothing more);
6. UseCaseSpanInterceptor: the use-case span (only when tracing is on);
7. ReadRetryInterceptor: a read that lost its database connection runs once more.

So an authentication failure or a refused call is mapped by (2) and logged by (1).
They run as one grpc.aio interceptor (interceptors/pipeline.py), which wraps each
method's handler in them once, on its first call, not on every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from todo.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    task_service_pb2,
    task_service_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)

from server import housekeeping
from server.adapters.change_feed import ChangeFeed
from server.adapters.revocation_barrier import RevocationBarrier
from server.adapters.revocations import SessionRevocations
from server.adapters.session_check import DatabaseSessionCheck
from server.adapters.unit_of_work import UnitOfWork
from server.auth.hash_pool import HashPool
from server.auth.passwords import PasswordHasher
from server.auth.tokens import LEEWAY_S, TokenCodec
from server.config import Settings
from server.db.availability import Availability
from server.db.connections import Connections
from server.db.listener import NotificationListener, ready_listeners
from server.db.pool import Pool, make_pool
from server.health import HealthMonitor
from server.interceptors.auth import AuthInterceptor
from server.interceptors.base import WrappingInterceptor
from server.interceptors.errors import ErrorInterceptor
from server.interceptors.pipeline import Pipeline
from server.interceptors.rate_limit import RateLimitInterceptor
from server.interceptors.retry import ReadRetryInterceptor, read_methods
from server.interceptors.telemetry import TelemetryInterceptor, UseCaseSpanInterceptor
from server.interceptors.text_safety import TextSafetyInterceptor
from server.observability import metrics, tracing
from server.servicers.auth_servicer import AuthServicer
from server.servicers.task_servicer import TaskServicer
from server.servicers.user_servicer import UserServicer
from server.services.page_tokens import PageTokens, ResumeTokens
from server.services.ports import UnitOfWork as UnitOfWorkPort
from server.services.throttle import Limits, Throttle

log = logging.getLogger(__name__)
SERVICE_NAMES = [
    auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
    user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name,
    task_service_pb2.DESCRIPTOR.services_by_name["TaskService"].full_name,
]
SAMPLE_EVERY_S = 2.0
"""How often each process copies its pool and resource state into the gauges."""
SERVER_OPTIONS = [
    ("grpc.so_reuseport", 0),  # a second process on the same port must fail, not share it
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]


async def create_server(
    settings: Settings,
    stack: contextlib.AsyncExitStack,
    port: int = 0,
    stopping: asyncio.Event | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Build (not start) one server process's gRPC server bound to `port` (0: any).

    Resources it opens (the connection pool, the listener, background tasks)
    are closed by `stack`; close the stack after stopping the server. When
    `stopping` is set, health turns NOT_SERVING (Envoy stops sending new
    calls) and open watch streams end at once (UNAVAILABLE, with their resume
    token in hand) instead of waiting out the grace period.
    """
    if settings.database_url is None:
        raise ValueError("create_server needs settings.database_url (resolved by the launcher)")
    availability = Availability(settings.database_url)
    stack.push_async_callback(availability.close)  # after the probing task below is cancelled
    await availability.confirm()
    _background(stack, availability.run())
    pool = make_pool(settings.database_url, settings, timeout=settings.db_acquire_timeout_s)
    await pool.open(wait=False)
    stack.push_async_callback(pool.close)
    connections = Connections(pool, availability, settings.db_acquire_timeout_s)

    listener = NotificationListener(settings.database_url)

    async def live_listeners() -> list[str]:
        connection = await connections.getconn()
        try:
            return await ready_listeners(connection)
        finally:
            await connections.putconn(connection)

    barrier = RevocationBarrier(listener, live_listeners, settings.revocation_barrier_timeout_s)

    def uow() -> UnitOfWorkPort:
        return UnitOfWork(connections, barrier.wait)

    revocations = SessionRevocations(
        listener,
        settings.access_token_ttl_s + LEEWAY_S,
        DatabaseSessionCheck(uow),
        acknowledge=barrier.acknowledge,
    )
    feed = ChangeFeed(listener)
    listener.start()
    stack.push_async_callback(listener.stop)
    _background(stack, _sample_forever(pool, revocations))
    _background(stack, housekeeping.run(uow, settings))
    tokens = TokenCodec(settings)
    pipeline = Pipeline(
        [
            *_interceptors(settings, tokens, revocations),
            ReadRetryInterceptor(read_methods(_services()), availability.confirm),
        ]
    )
    server = grpc.aio.server(interceptors=[pipeline], options=SERVER_OPTIONS)
    hasher = PasswordHasher(settings.bcrypt_rounds, _hash_pool(settings, stack))
    _add_servicers(server, settings, tokens, hasher, uow, feed, revocations)
    monitor = await _add_health(server, stack, availability)
    _background(stack, _drain_when(stopping, monitor, feed) if stopping else None)
    if settings.reflection_enabled:
        names = [*SERVICE_NAMES, "grpc.health.v1.Health", reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, server)
    bound = server.add_insecure_port(f"{settings.grpc_host}:{port}")
    return server, bound


def _interceptors(
    settings: Settings, tokens: TokenCodec, sessions: SessionRevocations
) -> list[WrappingInterceptor]:
    """The interceptors in the order of the module docstring."""
    interceptors: list[WrappingInterceptor] = [
        TelemetryInterceptor(),
        ErrorInterceptor(),
        AuthInterceptor(tokens, sessions),
    ]
    if settings.user_rate_limit > 0:
        limit = RateLimitInterceptor(settings.user_rate_limit, settings.user_rate_burst)
        interceptors.append(limit)
    interceptors.append(TextSafetyInterceptor())
    if tracing.enabled():
        interceptors.append(UseCaseSpanInterceptor())
    return interceptors


def _services() -> list[Any]:
    """The descriptors of the services in SERVICE_NAMES."""
    files = (auth_pb2.DESCRIPTOR, user_pb2.DESCRIPTOR, task_service_pb2.DESCRIPTOR)
    return [service for file in files for service in file.services_by_name.values()]


def _add_servicers(
    server: grpc.aio.Server,
    settings: Settings,
    tokens: TokenCodec,
    hasher: PasswordHasher,
    uow: Callable[[], UnitOfWorkPort],
    feed: ChangeFeed,
    revocations: SessionRevocations,
) -> None:
    throttle = Throttle(Limits.from_settings(settings))
    auth_pb2_grpc.add_AuthServiceServicer_to_server(
        AuthServicer(uow, hasher, tokens, throttle, revocations.revoked_here), server
    )
    user_pb2_grpc.add_UserServiceServicer_to_server(UserServicer(uow, hasher, throttle), server)
    task_servicer = TaskServicer(
        uow,
        PageTokens(settings.jwt_secret),
        feed,
        ResumeTokens(settings.jwt_secret),
        settings.watch_heartbeat_s,
    )
    task_service_pb2_grpc.add_TaskServiceServicer_to_server(task_servicer, server)


def _hash_pool(settings: Settings, stack: contextlib.AsyncExitStack) -> HashPool:
    """The process's password-hashing threads: few, low-priority, with a short queue."""
    pool = HashPool(
        slots=settings.hash_slots,
        queue=settings.hash_queue,
        max_wait_s=settings.hash_max_wait_ms / 1000,
        priority=settings.hash_priority,
        processes=settings.hash_processes,
        cgroup=settings.hash_cgroup or None,
    )
    stack.callback(pool.close)
    return pool


def _background(stack: contextlib.AsyncExitStack, work: Coroutine[Any, Any, None] | None) -> None:
    """Run `work` until the stack closes."""
    if work is None:
        return
    task = asyncio.get_running_loop().create_task(work)

    async def cancel() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(cancel)


async def _sample_forever(pool: Pool, revocations: SessionRevocations) -> None:
    """Copy the pool's, the revocation cache's, in-flight and the process's state into metrics."""
    sampler = metrics.ProcessSampler()
    metrics.PROCESSES.set(1)
    while True:
        stats = pool.pop_stats()  # counters since the last pop, gauges as they are
        size = stats.get("pool_size", 0)
        metrics.POOL_SIZE.set(size)
        metrics.POOL_IN_USE.set(size - stats.get("pool_available", 0))
        metrics.POOL_WAITING.set(stats.get("requests_waiting", 0))
        metrics.POOL_MAX.set(stats.get("pool_max", 0))
        metrics.POOL_ACQUISITIONS.inc(stats.get("requests_num", 0))
        metrics.POOL_ACQUIRE_WAIT.inc(stats.get("requests_wait_ms", 0) / 1000)
        metrics.POOL_ACQUIRE_ERRORS.inc(stats.get("requests_errors", 0))
        metrics.RPC_IN_FLIGHT.set(metrics.in_flight.value)
        metrics.REVOCATIONS.set(revocations.size)
        sampler.sample()
        await asyncio.sleep(SAMPLE_EVERY_S)


async def _drain_when(stopping: asyncio.Event, monitor: HealthMonitor, feed: ChangeFeed) -> None:
    await stopping.wait()
    await monitor.drain()
    feed.close()


async def _add_health(
    server: grpc.aio.Server, stack: contextlib.AsyncExitStack, availability: Availability
) -> HealthMonitor:
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    monitor = HealthMonitor(servicer, SERVICE_NAMES)
    await monitor.database_changed(availability.available)
    availability.on_change(monitor.database_changed)
    stack.push_async_callback(monitor.drain)
    return monitor


def _version() -> str:
    try:
        return importlib.metadata.version("todo-service")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


async def serve(settings: Settings, port: int) -> None:
    """Run one server process until SIGTERM, then drain and return (exit status 0).

    Draining: health turns NOT_SERVING and watch streams end (UNAVAILABLE,
    reason SHUTTING_DOWN) at once; calls keep being served for
    `drain_delay_s`, long enough for Envoy's health checks to stop sending
    any; then the server stops taking calls and lets the in-flight ones
    finish for up to `grace_period_s`.
    """
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    metrics.BUILD_INFO.labels(_version(), settings.build_commit or "unknown").set(1)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(tracing.configure(settings.otlp_endpoint, settings.trace_sample_percent))
        server, bound = await create_server(settings, stack, port, stopping)
        await server.start()
        log.info("worker listening on %s:%d", settings.grpc_host, bound)
        await stopping.wait()
        log.info(
            "worker on port %d draining: NOT_SERVING now, stops taking calls in %.1fs, "
            "then lets calls finish for up to %.1fs",
            bound,
            settings.drain_delay_s,
            settings.grace_period_s,
        )
        await asyncio.sleep(settings.drain_delay_s)
        await server.stop(settings.grace_period_s)
    log.info("worker on port %d drained", bound)
