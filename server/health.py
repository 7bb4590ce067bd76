"""gRPC health: SERVING only while the database answers.

A background task pings PostgreSQL every `interval_s` and flips the overall
status ("") and each service's status between SERVING and NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from grpc_health.v1 import health, health_pb2

log = logging.getLogger(__name__)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthMonitor:
    """Keeps a health servicer's statuses in step with a probe."""

    def __init__(
        self,
        servicer: health.aio.HealthServicer,
        services: Sequence[str],
        probe: Callable[[], Awaitable[None]],
        interval_s: float = 2.0,
    ) -> None:
        self._servicer = servicer
        self._names = ["", *services]
        self._probe = probe
        self._interval_s = interval_s
        self._serving: bool | None = None
        self._task: asyncio.Task[None] | None = None

    async def check_once(self) -> bool:
        """Probe now and publish the result; returns whether serving."""
        try:
            await asyncio.wait_for(self._probe(), timeout=self._interval_s)
            serving = True
        except Exception as exc:
            serving = False
            if self._serving is not False:
                log.warning("database unreachable, reporting NOT_SERVING: %s", type(exc).__name__)
        if serving != self._serving:
            for name in self._names:
                await self._servicer.set(name, SERVING if serving else NOT_SERVING)
            self._serving = serving
        return serving

    def start(self) -> None:
        """Start probing in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop probing and report NOT_SERVING (the server is going away)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._servicer.enter_graceful_shutdown()

    async def _run(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(self._interval_s)
