"""CPU the observability layer adds to one call, measured in-process (no network, no load).

A busy shared box makes req/s comparisons swing by more than the effect being measured
(see bench/observability.py). This measures the layer itself instead: for each setting it
runs, in a fresh process, what a get-task call goes through that observability adds or
changes, and reports process CPU time per call (median of several repeats):

- the telemetry interceptor around a trivial handler, with the metadata Envoy sends
  (x-request-id, traceparent, authorization, x-forwarded-for);
- the use-case span interceptor (when tracing);
- one timed SQL statement in the Executor (a no-op awaitable standing in for psycopg) and
  one pool acquisition observation.

Settings: `off` (WARNING, in-memory metrics), `logs+metrics` (INFO JSON access line to a
file, multiprocess metrics), `tracing` (plus every call traced and exported over OTLP/gRPC
to a receiver in this script), `tracing 10%` (Envoy's sampled flag on 1 call in 10, as with
TODO_TRACE_SAMPLE_PERCENT=10). The added microseconds are then compared with the CPU a
real get-task costs end to end (server, Envoy, PostgreSQL), `--request-cpu-ms` (default
0.65 ms: TOOLCHAIN.md §7, measured on an idle box; bench/observability.py measures it here).

    .venv/bin/python bench/observability_overhead.py
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CONFIGS = ("off", "logs+metrics", "tracing", "tracing 10%")


class _Context:
    """The parts of grpc.aio.ServicerContext the layer touches."""

    def __init__(self, sampled: bool = True) -> None:
        flag = "01" if sampled else "00"
        self._metadata = (
            ("x-request-id", "6f1c1f0e-2b7a-4a53-9a31-1b2d3c4e5f60"),
            ("traceparent", f"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{flag}"),
            ("authorization", "Bearer x"),
            ("x-forwarded-for", "192.0.2.1"),
            ("x-envoy-original-path", "/api/v1/users/me/tasks/1"),
        )

    def invocation_metadata(self) -> Any:
        return self._metadata

    def code(self) -> None:
        return None

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"


def child(config: str, calls: int, otlp: str, log_file: str) -> None:
    """Measure one setting (runs in its own process: settings are read at import)."""

    from server.db import executor
    from server.interceptors.telemetry import TelemetryInterceptor, UseCaseSpanInterceptor
    from server.observability import logs, tracing

    # stderr is the log file, as it is a server's: the lines take the server's own path
    os.dup2(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND), 2)
    logs.configure("WARNING" if config == "off" else "INFO", "json")
    if config.startswith("tracing"):
        tracing.configure(otlp)
    telemetry, usecase = TelemetryInterceptor(), UseCaseSpanInterceptor()

    class _Cursor:
        async def fetchone(self) -> tuple[int]:
            return (1,)

    class _Connection:
        async def execute(self, query: Any, params: Any = None, prepare: Any = None) -> _Cursor:
            return _Cursor()

    db = executor.Executor(_Connection())  # type: ignore[arg-type]

    class PgTasksRepository:
        async def get(self) -> Any:
            return await db.fetch_one("SELECT 1")

    repo = PgTasksRepository()

    async def handler_(request: Any, context: Any) -> Any:
        return await repo.get()

    async def inner(request: Any, context: Any) -> Any:
        if tracing.enabled():
            return await usecase.around_unary(
                "/todo.v1.TaskService/GetTask", handler_, request, context
            )
        return await handler_(request, context)

    async def run() -> list[float]:
        # "tracing 10%": Envoy samples 1 call in 10 and the server follows its flag
        contexts = [_Context(sampled=config != "tracing 10%" or i == 0) for i in range(10)]
        results = []
        for _ in range(5):
            started = time.process_time()
            for i in range(calls):
                context = contexts[i % 10]
                await telemetry.around_unary(
                    "/todo.v1.TaskService/GetTask",
                    inner,
                    None,
                    context,  # type: ignore[arg-type]
                )
            results.append((time.process_time() - started) / calls * 1e6)
        return results

    print(json.dumps(asyncio.run(run())))
    tracing.configure(None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--request-cpu-ms", type=float, default=0.65)
    parser.add_argument("--child", choices=CONFIGS)
    parser.add_argument("--otlp", default="")
    parser.add_argument("--log-file", default="")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.calls, args.otlp, args.log_file)
        return
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    root = Path(__file__).resolve().parents[1]
    results: dict[str, list[float]] = {c: [] for c in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="todo-obs-overhead-") as tmp:
        for round_ in range(3):
            for config in CONFIGS:
                env = {
                    **os.environ,
                    "PYTHONPATH": f"{root}:{root / 'generated'}",
                    "OTEL_BSP_SCHEDULE_DELAY": "500",
                }
                if config != "off":
                    mp = Path(tmp) / f"mp-{config}-{round_}"
                    mp.mkdir()
                    env["PROMETHEUS_MULTIPROC_DIR"] = str(mp)
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        config,
                        "--calls",
                        str(args.calls),
                        "--otlp",
                        f"http://127.0.0.1:{port}",
                        "--log-file",
                        str(Path(tmp) / f"{config}.log"),
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                results[config] += json.loads(out.strip().splitlines()[-1])
                print(
                    f"round {round_ + 1} {config:13} {statistics.median(results[config]):7.1f} us/call",
                    flush=True,
                )
    server.stop(0)
    off = statistics.median(results["off"])
    print()
    print(
        f"process CPU per call of the observability layer, median of {len(results['off'])} runs of {args.calls:,} calls"
    )
    print()
    print("| setting | µs per call | added over off | as a share of a get-task's CPU |")
    print("| --- | ---: | ---: | ---: |")
    for config in CONFIGS:
        value = statistics.median(results[config])
        added = value - off
        share = added / (args.request_cpu_ms * 1000 + added)
        print(
            f"| {config} | {value:.1f} | {added:+.1f} | {'-' if config == 'off' else f'{share:.1%}'} |"
        )


if __name__ == "__main__":
    main()
