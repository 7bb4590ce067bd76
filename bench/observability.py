"""What observability costs: get-task throughput with it off, logs + metrics, and tracing.

Starts three stacks side by side (same machine, same run), each `python -m server` with
its own embedded PostgreSQL on free loopback ports:

    off       TODO_LOG_LEVEL=WARNING (no access lines), TODO_METRICS_PORT=0 (no multiprocess
              files; the metric objects still count in memory), no tracing
    logs+m    TODO_LOG_LEVEL=INFO, TODO_LOG_FORMAT=json (one JSON access line per call),
              metrics in multiprocess mode, served by the launcher; no tracing
    tracing   logs+m plus TODO_OTLP_ENDPOINT: every call traced (rpc, use case, SQL spans)
              and exported over OTLP/gRPC to a receiver in this script (Envoy exports too)

then loads them in turn, round after round (A B C A B C ...), so drift of the shared box
hits all three alike, and prints req/s per round and the median ratio to `off`:

    make bench-observability          # or: .venv/bin/python bench/observability.py --rounds 3

Needs h2load and wrk (`apt-get install nghttp2-client wrk`).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from stack import Stack
from throughput import check_grpc, grpc_frame, run_h2load, run_wrk, setup
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
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the three stacks")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    for tool in ("wrk", "h2load"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install nghttp2-client wrk")
    receiver = CountingReceiver()
    otlp = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, otlp)
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
            },
        ),
    }
    with tempfile.TemporaryDirectory(prefix="todo-bench-obs-") as tmp:
        stacks: dict[str, Stack] = {}
        try:
            for name, (level, env) in configs.items():
                print(f"==> starting the '{name}' stack", flush=True)
                data = Path(tmp) / name
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
) -> dict[str, dict[str, list[float]]]:
    loads = {}
    streams = max(args.connections // 4, 1)
    for name, stack in stacks.items():
        token, _, task_id = setup(stack, 20)
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
            "gRPC": lambda e=envoy, b=body, a=auth: run_h2load(
                f"{e}/todo.v1.TaskService/GetTask", args.duration, 4, streams, b, a
            ),
            "REST": lambda e=envoy, t=task_id, a=auth: run_wrk(
                f"{e}/api/v1/users/me/tasks/{t}", args.duration, args.connections, a, None
            ),
        }
        loads[name]["gRPC"]()  # warm-up: prepared statements, caches, the exporter connection
    results: dict[str, dict[str, list[float]]] = {n: {"gRPC": [], "REST": []} for n in stacks}
    for round_ in range(args.rounds):
        for wire in ("gRPC", "REST"):
            for name in stacks:
                total, _, _, errors = loads[name][wire]()
                rps = total / args.duration
                results[name][wire].append(rps)
                print(
                    f"round {round_ + 1} {wire:4} {name:13} {rps:8,.0f} req/s  errors {errors}",
                    flush=True,
                )
    return results


def _report(
    results: dict[str, dict[str, list[float]]], args: argparse.Namespace, spans: int
) -> None:
    print()
    print(
        f"get-task through Envoy, {args.workers} server processes, {args.rounds} rounds of "
        f"{args.duration}s per stack and wire, stacks loaded in turn on one shared 2-core box"
    )
    print()
    print(
        "| wire | stack | req/s per round | median req/s | cost vs off (median of per-round ratios) |"
    )
    print("| --- | --- | --- | ---: | ---: |")
    for wire in ("gRPC", "REST"):
        base = results["off"][wire]
        for name, by_wire in results.items():
            values = by_wire[wire]
            ratios = [v / b for v, b in zip(values, base, strict=True)]
            cost = 1 - statistics.median(ratios)
            per_round = ", ".join(f"{v:,.0f}" for v in values)
            print(
                f"| {wire} | {name} | {per_round} | {statistics.median(values):,.0f} | "
                f"{'-' if name == 'off' else f'{cost:+.1%}'} |"
            )
    print()
    print(f"spans received by the OTLP receiver: {spans:,}")


if __name__ == "__main__":
    main()
