"""`check-health`: gRPC Health/Check against the server processes (the image's HEALTHCHECK)."""

from __future__ import annotations

import argparse
import dataclasses

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server import edge
from server.config import Settings

OK, FAILED = 0, 1


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `check-health` on the CLI's subparsers."""
    check = commands.add_parser(
        "check-health",
        help="exit 0 if every server process answers SERVING",
        description=check_health_command.__doc__,
    )
    check.add_argument(
        "--target",
        action="append",
        metavar="HOST:PORT",
        help="where to ask (repeatable; default: every local server process)",
    )
    check.add_argument("--service", default="", help="health service name (default: overall)")
    check.add_argument("--timeout", type=float, default=3.0, help="seconds per target")
    check.set_defaults(handler=check_health_command)


def check_health_command(settings: Settings, args: argparse.Namespace) -> int:
    """Ask grpc.health.v1.Health/Check on each target; exit 0 only if all are SERVING.

    Targets default to the processes `serve` starts here (TODO_GRPC_HOST, TODO_GRPC_PORT,
    TODO_WORKERS); Envoy's port works too, as it routes Health calls to a server process.
    """
    local = dataclasses.replace(settings, envoy_upstreams=(), require_secrets=False)
    targets = args.target or [f"{host}:{port}" for host, port in edge.upstream_addresses(local)]
    failed = 0
    for target in targets:
        status = _check(target, args.service, args.timeout)
        print(f"{target}: {status}", flush=True)
        failed += status != "SERVING"
    return OK if failed == 0 else FAILED


def _check(target: str, service: str, timeout: float) -> str:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            if isinstance(error, grpc.Call):
                return f"{error.code().name} {error.details() or ''}".strip()
            return "no answer"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
