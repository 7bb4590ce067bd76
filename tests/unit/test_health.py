from __future__ import annotations

from grpc_health.v1 import health, health_pb2

from server.health import HealthMonitor

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _status(servicer: health.aio.HealthServicer, service: str) -> int:
    request = health_pb2.HealthCheckRequest(service=service)
    return (await servicer.Check(request, None)).status


async def test_status_follows_the_database_probe() -> None:
    servicer = health.aio.HealthServicer()
    up = True

    async def probe() -> None:
        if not up:
            raise ConnectionError("database down")

    monitor = HealthMonitor(servicer, ["todo.v1.TaskService"], probe, interval_s=0.1)
    assert await monitor.check_once()
    assert await _status(servicer, "") == SERVING
    assert await _status(servicer, "todo.v1.TaskService") == SERVING
    up = False
    assert not await monitor.check_once()
    assert await _status(servicer, "") == NOT_SERVING
    assert await _status(servicer, "todo.v1.TaskService") == NOT_SERVING
    up = True
    assert await monitor.check_once()
    assert await _status(servicer, "") == SERVING
