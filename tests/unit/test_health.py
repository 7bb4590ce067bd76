from __future__ import annotations

from grpc_health.v1 import health, health_pb2

from server.health import HealthMonitor

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _status(servicer: health.aio.HealthServicer, service: str) -> int:
    request = health_pb2.HealthCheckRequest(service=service)
    return (await servicer.Check(request, None)).status


async def test_status_follows_the_database() -> None:
    servicer = health.aio.HealthServicer()
    monitor = HealthMonitor(servicer, ["todo.v1.TaskService"])
    await monitor.database_changed(True)
    assert await _status(servicer, "") == SERVING
    assert await _status(servicer, "todo.v1.TaskService") == SERVING
    await monitor.database_changed(False)
    assert await _status(servicer, "") == NOT_SERVING
    assert await _status(servicer, "todo.v1.TaskService") == NOT_SERVING
    await monitor.database_changed(True)
    assert await _status(servicer, "") == SERVING


async def test_draining_is_not_serving_for_good() -> None:
    servicer = health.aio.HealthServicer()
    monitor = HealthMonitor(servicer, ["todo.v1.TaskService"])
    await monitor.database_changed(True)
    await monitor.drain()
    assert await _status(servicer, "") == NOT_SERVING
    await monitor.database_changed(True)  # the database answering does not bring it back
    assert await _status(servicer, "todo.v1.TaskService") == NOT_SERVING
    assert not monitor.serving
