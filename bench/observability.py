"""What observability costs: get-task throughput with it off, logs + metrics, and tracing.

Starts four stacks side by side (same machine, same run), each `python -m server` with
its own embedded PostgreSQL on free loopback ports:

    off       TODO_LOG_LEVEL=WARNING (no access lines), TODO_METRICS_PORT=0 (no multiprocess
              files; the metric objects still count in memory), no tracing
    logs+m    TODO_LOG_LEVEL=INFO, TODO_LOG_FORMAT=json (one JSON access line per call),
              metrics in multiprocess mode, served by the launcher; no tracing
    tracing   logs+m plus TODO_OTLP_ENDPOINT: every call traced (rpc, use case, SQL spans)
              and exported over OTLP/gRPC to a receiver in this script (Envoy exports too)
    tracing 10%  the same with TODO_TRACE_SAMPLE_PERCENT=10 (head sampling)

then loads them in turn, round after round (A B C D A B C D ...), so drift of the
shared box hits all of them alike. Per load it records req/s and the CPU time per request of the server
processes, Envoy and PostgreSQL. On a busy shared box req/s swings with the neighbours, while
CPU per request is a property of the code: the service is CPU-bound, so its throughput cost
is about `1 - cpu(off) / cpu(stack)` (total CPU per request). Both are printed, as medians
over the rounds:

    make bench-observability          # or: .venv/bin/python bench/observability.py --rounds 3

Needs h2load and wrk (`apt-get install nghttp2-client wrk`).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from stack import Stack
from throughput import (
    Result,
    check_grpc,
    grpc_frame,
    measure,
    run_h2load,
    run_wrk,
    setup_one_user,
)
from todo.v1 import task_service_pb2


class CountingReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP TraceService that counts the spans it is sent and drops them."""

    def __init__(self) -> None:
        self.spans = 0

    def Export(self, request: Any, context: Any) -> Any:
        self.spans += sum(
            len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
        )
        return trace_service_pb2.ExportTraceServiceResponse()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=8, help="seconds per load (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the four stacks")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    for tool in ("wrk", "h2load"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install nghttp2-client wrk")
    receiver = CountingReceiver()
    otlp = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, otlp)  # type: ignore[no-untyped-call]
    otlp_port = otlp.add_insecure_port("127.0.0.1:0")
    otlp.start()
    observed = {"TODO_LOG_LEVEL": "INFO", "TODO_LOG_FORMAT": "json"}
    configs: dict[str, tuple[str, dict[str, str]]] = {
        "off": ("WARNING", {"TODO_METRICS_PORT": "0"}),
        "logs+metrics": ("INFO", observed),
        "tracing": (
            "INFO",
            {
                **observed,
                "TODO_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
                "TODO_TRACE_SAMPLE_PERCENT": "100",
            },
        ),
        "tracing 10%": (
            "INFO",
            {
                **observed,
                "TODO_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
                "TODO_TRACE_SAMPLE_PERCENT": "10",
            },
        ),
    }
    with tempfile.TemporaryDirectory(prefix="todo-bench-obs-") as tmp:
        stacks: dict[str, Stack] = {}
        try:
            for name, (level, env) in configs.items():
                print(f"==> starting the '{name}' stack", flush=True)
                data = Path(tmp) / name.replace(" ", "-").replace("%", "pct")
                data.mkdir()
                stacks[name] = Stack(args.workers, data, level, env)
            results = _run(stacks, args, Path(tmp))
        finally:
            for stack in stacks.values():
                stack.stop()
            otlp.stop(0)
    _report(results, args, receiver.spans)


def _run(
    stacks: dict[str, Stack], args: argparse.Namespace, work: Path
) -> dict[str, dict[str, list[Result]]]:
    loads: dict[str, dict[str, Callable[[], tuple[int, float, float, int]]]] = {}
    streams = max(args.connections // 4, 1)
    for name, stack in stacks.items():
        token, _, task_id = setup_one_user(stack, 20)
        check_grpc(f"127.0.0.1:{stack.envoy_port}", token, task_id)
        body = work / f"{name}.bin"
        body.write_bytes(
            grpc_frame(
                task_service_pb2.GetTaskRequest(user_id="me", task_id=task_id).SerializeToString()
            )
        )
        auth = {"authorization": f"Bearer {token}"}
        envoy = f"http://127.0.0.1:{stack.envoy_port}"
        loads[name] = {
            "gRPC": functools.partial(
                run_h2load,
                f"{envoy}/todo.v1.TaskService/GetTask",
                args.duration,
                4,
                streams,
                body,
                auth,
            ),
            "REST": functools.partial(
                run_wrk,
                f"{envoy}/api/v1/users/me/tasks/{task_id}",
                args.duration,
                args.connections,
                auth,
                None,
            ),
        }
        loads[name]["gRPC"]()  # warm-up: prepared statements, caches, the exporter connection
    results: dict[str, dict[str, list[Result]]] = {n: {"gRPC": [], "REST": []} for n in stacks}
    for round_ in range(args.rounds):
        for wire in ("gRPC", "REST"):
            for name, stack in stacks.items():
                r = measure(name, stack, args.duration, loads[name][wire])
                results[name][wire].append(r)
                print(
                    f"round {round_ + 1} {wire:4} {name:13} {r.rps:8,.0f} req/s  "
                    f"server {r.cpu_ms['server']:.3f} ms/req  total {_cpu(r):.3f} ms/req  "
                    f"errors {r.errors}",
                    flush=True,
                )
    return results


def _cpu(result: Result) -> float:
    return sum(result.cpu_ms.values())


def _report(
    results: dict[str, dict[str, list[Result]]], args: argparse.Namespace, spans: int
) -> None:
    print()
    print(
        f"get-task through Envoy, {args.workers} server processes, {args.rounds} rounds of "
        f"{args.duration}s per stack and wire, stacks loaded in turn on one shared 2-core box"
    )
    print()
    print(
        "| wire | stack | median req/s | req/s vs off | server CPU ms/req | total CPU ms/req "
        "| cost from CPU/req |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for wire in ("gRPC", "REST"):
        base = results["off"][wire]
        base_cpu = statistics.median(_cpu(r) for r in base)
        for name, by_wire in results.items():
            runs = by_wire[wire]
            ratio = statistics.median(r.rps / b.rps for r, b in zip(runs, base, strict=True))
            cpu = statistics.median(_cpu(r) for r in runs)
            server = statistics.median(r.cpu_ms["server"] for r in runs)
            cost = "-" if name == "off" else f"{1 - base_cpu / cpu:+.1%}"
            print(
                f"| {wire} | {name} | {statistics.median(r.rps for r in runs):,.0f} | "
                f"{ratio:.2f} | {server:.3f} | {cpu:.3f} | {cost} |"
            )
    print()
    print(f"spans received by the OTLP receiver: {spans:,}")


if __name__ == "__main__":
    main()
