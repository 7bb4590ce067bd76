"""Side-by-side throughput of the real stack: REST vs native gRPC vs a trivial RPC.

Starts `python -m server` (N worker processes + Envoy) on free loopback ports,
creates a user and some tasks, then runs each scenario for the same duration
and concurrency, one after another, and prints one table:

    req/s, p50 and p99 latency, and CPU milliseconds per request of the
    server processes, Envoy and PostgreSQL (from /proc, before and after).

REST load comes from wrk, gRPC load from h2load (both C, so the load
generator stays cheap); gRPC errors are HTTP 200, so every gRPC scenario is
checked once with a real stub first. Usage:

    make bench                     # or: .venv/bin/python bench/throughput.py --duration 10
    DATABASE_URL=postgresql://... make bench   # against another PostgreSQL

Needs h2load and wrk (`apt-get install nghttp2-client wrk`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from stack import Stack, cpu_seconds
from todo.v1 import task_service_pb2, task_service_pb2_grpc


@dataclasses.dataclass
class Result:
    name: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: dict[str, float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def grpc_frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def run_wrk(
    url: str, seconds: int, conns: int, headers: dict[str, str], script: Path | None
) -> tuple[int, float, float, int]:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", url]
    for key, value in headers.items():
        cmd += ["-H", f"{key}: {value}"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0

    def lat(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return total, lat("50%"), lat("99%"), errors


def run_h2load(
    url: str, seconds: int, conns: int, streams: int, body: Path, headers: dict[str, str]
) -> tuple[int, float, float, int]:
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        cmd = [
            "h2load",
            "-t1",
            f"-c{conns}",
            f"-m{streams}",
            f"-D{seconds}",
            "-d",
            str(body),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "--log-file",
            log.name,
            url,
        ]
        for key, value in headers.items():
            cmd += ["-H", f"{key}: {value}"]
        subprocess.run(cmd, capture_output=True, text=True, check=True)
        lines = [ln.split("\t") for ln in Path(log.name).read_text().splitlines() if ln]
    latencies = [int(parts[2]) / 1000 for parts in lines]
    errors = sum(1 for parts in lines if parts[1] != "200")
    return len(lines), percentile(latencies, 50), percentile(latencies, 99), errors


def measure(name: str, stack: Stack, seconds: int, load) -> Result:
    groups = stack.processes()
    before = cpu_seconds(groups)
    started = time.monotonic()
    total, p50, p99, errors = load()
    elapsed = time.monotonic() - started
    after = cpu_seconds(groups)
    cpu = {k: (after[k] - before[k]) * 1000 / max(total, 1) for k in before}
    return Result(name, total, min(elapsed, float(seconds)), p50, p99, errors, cpu)


def setup(stack: Stack, tasks: int) -> tuple[str, str, str]:
    """Register a user, create some tasks; returns (token, user id, a task id)."""
    with httpx.Client(base_url=stack.rest, timeout=30) as http:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        user = http.post(
            "/api/v1/auth/register", json={"email": email, "password": "benchmark1", "name": "B"}
        ).json()
        token = http.post(
            "/api/v1/auth/login", json={"email": email, "password": "benchmark1"}
        ).json()["access_token"]
        headers = {"authorization": f"Bearer {token}"}
        ids = [
            http.post(
                "/api/v1/users/me/tasks", json={"title": f"task {i}"}, headers=headers
            ).json()["id"]
            for i in range(tasks)
        ]
    return token, user["id"], ids[len(ids) // 2]


def more_tokens(stack: Stack, count: int) -> list[str]:
    """Access tokens of `count` further users (for writes spread over users)."""
    tokens = []
    with httpx.Client(base_url=stack.rest, timeout=30) as http:
        for _ in range(count):
            body = {"email": f"b-{uuid.uuid4().hex[:10]}@example.com", "password": "benchmark1"}
            http.post("/api/v1/auth/register", json={**body, "name": "B"})
            tokens.append(http.post("/api/v1/auth/login", json=body).json()["access_token"])
    return tokens


def check_grpc(target: str, token: str, task_id: str) -> None:
    """A real stub call per gRPC scenario, so an error hidden behind HTTP 200 cannot pass."""
    md = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(target) as channel:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        stub.GetTask(task_service_pb2.GetTaskRequest(user_id="me", task_id=task_id), metadata=md)
        stub.CreateTask(
            task_service_pb2.CreateTaskRequest(user_id="me", title="check"), metadata=md
        )
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())


def scenarios(stack: Stack, token: str, task_id: str, seconds: int, conns: int, work: Path):
    auth = {"authorization": f"Bearer {token}"}
    get_body = work / "get.bin"
    get_body.write_bytes(
        grpc_frame(
            task_service_pb2.GetTaskRequest(user_id="me", task_id=task_id).SerializeToString()
        )
    )
    create_body = work / "create.bin"
    create_body.write_bytes(
        grpc_frame(
            task_service_pb2.CreateTaskRequest(user_id="me", title="bench task").SerializeToString()
        )
    )
    health_body = work / "health.bin"
    health_body.write_bytes(grpc_frame(health_pb2.HealthCheckRequest().SerializeToString()))
    create_lua = work / "create.lua"
    create_lua.write_text(
        'wrk.method = "POST"\nwrk.body = \'{"title": "bench task"}\'\n'
        'wrk.headers["content-type"] = "application/json"\n'
    )
    many_lua = work / "create_many.lua"  # each request as the next of 32 users
    many_lua.write_text(
        "tokens = {" + ",".join(f'"{t}"' for t in more_tokens(stack, 32)) + "}\n"
        "n = 0\n"
        "request = function()\n"
        "  n = n + 1\n"
        '  local headers = {["content-type"] = "application/json",'
        ' ["authorization"] = "Bearer " .. tokens[n % #tokens + 1]}\n'
        '  return wrk.format("POST", nil, headers, \'{"title": "bench task"}\')\n'
        "end\n"
    )
    envoy = f"http://127.0.0.1:{stack.envoy_port}"
    direct = f"http://127.0.0.1:{stack.base}"
    streams = max(conns // 4, 1)
    return [
        (
            "trivial RPC: gRPC Health/Check via Envoy",
            lambda: run_h2load(
                f"{envoy}/grpc.health.v1.Health/Check", seconds, 4, streams, health_body, {}
            ),
        ),
        (
            "get-task: REST via Envoy",
            lambda: run_wrk(
                f"{stack.rest}/api/v1/users/me/tasks/{task_id}", seconds, conns, auth, None
            ),
        ),
        (
            "get-task: gRPC via Envoy",
            lambda: run_h2load(
                f"{envoy}/todo.v1.TaskService/GetTask", seconds, 4, streams, get_body, auth
            ),
        ),
        (
            "get-task: gRPC direct, 1 process",
            lambda: run_h2load(
                f"{direct}/todo.v1.TaskService/GetTask", seconds, 4, streams, get_body, auth
            ),
        ),
        (
            "create-task: REST via Envoy",
            lambda: run_wrk(
                f"{stack.rest}/api/v1/users/me/tasks", seconds, conns, auth, create_lua
            ),
        ),
        (
            "create-task: REST via Envoy, 32 users",
            lambda: run_wrk(f"{stack.rest}/api/v1/users/me/tasks", seconds, conns, {}, many_lua),
        ),
        (
            "create-task: gRPC via Envoy",
            lambda: run_h2load(
                f"{envoy}/todo.v1.TaskService/CreateTask", seconds, 4, streams, create_body, auth
            ),
        ),
    ]


def print_table(results: list[Result], args: argparse.Namespace, workers: int) -> None:
    print()
    print(
        f"{workers} server processes + Envoy (--concurrency 1), "
        f"{args.connections} concurrent requests, {args.duration}s each, "
        f"{os.cpu_count()} cores shared with the load generator and PostgreSQL"
    )
    print()
    print(
        "| scenario | req/s | p50 ms | p99 ms | errors "
        "| server CPU ms/req | Envoy CPU ms/req | PostgreSQL CPU ms/req |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r.name} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.errors} | "
            f"{r.cpu_ms['server']:.3f} | {r.cpu_ms['envoy']:.3f} | {r.cpu_ms['postgres']:.3f} |"
        )
    trivial = results[0].rps
    print()
    print(
        "Ratios to the trivial RPC through the same Envoy: "
        + ", ".join(
            f"{r.name.split(':')[0]} {r.name.split(': ')[1]} {r.rps / trivial:.2f}"
            for r in results[1:]
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=int, default=10, help="seconds per scenario (default 10)"
    )
    parser.add_argument(
        "--connections", type=int, default=32, help="concurrent requests (default 32)"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="server processes")
    parser.add_argument(
        "--log-level", default="INFO", help="server log level (default INFO, as deployed)"
    )
    args = parser.parse_args()
    for tool in ("wrk", "h2load"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install nghttp2-client wrk")
    with tempfile.TemporaryDirectory(prefix="todo-bench-") as tmp:
        work = Path(tmp)
        print(f"==> starting the stack ({args.workers} workers + Envoy)", flush=True)
        stack = Stack(args.workers, work, args.log_level)
        try:
            token, _, task_id = setup(stack, 200)
            check_grpc(f"127.0.0.1:{stack.envoy_port}", token, task_id)
            check_grpc(f"127.0.0.1:{stack.base}", token, task_id)
            results = []
            for name, load in scenarios(
                stack, token, task_id, args.duration, args.connections, work
            ):
                print(f"==> {name} ({args.duration}s)", flush=True)
                results.append(measure(name, stack, args.duration, load))
            print_table(results, args, args.workers)
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
