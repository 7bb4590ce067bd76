"""gRPC health: SERVING only while the database answers and the process is not draining.

`HealthMonitor` listens to `db.availability.Availability` (which probes
PostgreSQL) and flips the overall status ("") and each service's status
between SERVING and NOT_SERVING. `drain()` turns them NOT_SERVING for good:
Envoy's active health checks then stop sending this process new calls while
it finishes the ones it has (see `app.serve`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from grpc_health.v1 import health, health_pb2

log = logging.getLogger(__name__)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthMonitor:
    """Keeps a health servicer's statuses in step with the database and draining."""

    def __init__(self, servicer: health.aio.HealthServicer, services: Sequence[str]) -> None:
        self._servicer = servicer
        self._names = ["", *services]
        self._database_up = True
        self._draining = False
        self._serving: bool | None = None

    @property
    def serving(self) -> bool:
        """What is published now."""
        return bool(self._serving)

    async def database_changed(self, available: bool) -> None:
        """Follow the database (an `Availability.on_change` listener)."""
        self._database_up = available
        await self._publish()

    async def drain(self) -> None:
        """Report NOT_SERVING from now on: the process is going away."""
        self._draining = True
        await self._publish()
        await self._servicer.enter_graceful_shutdown()

    async def _publish(self) -> None:
        serving = self._database_up and not self._draining
        if serving == self._serving:
            return
        self._serving = serving
        for name in self._names:
            await self._servicer.set(name, SERVING if serving else NOT_SERVING)
