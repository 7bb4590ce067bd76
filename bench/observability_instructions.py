"""What observability costs, in instructions: repeatable on a busy box, unlike req/s.

`bench/observability.py` compares req/s and CPU time of whole stacks, and on this shared
2-core machine those move by 5-10% between rounds of the same stack, as much as the effect
being measured. Instructions do not: `valgrind --tool=callgrind` counts what a process
executes, whatever else the machine does. So for each setting this runs one server process
(the worker `python -m server` starts, on its own port, without the launcher or Envoy: they
do the same work in every setting) under callgrind and sends it `--calls` GetTask calls, one
at a time, over native gRPC with the metadata Envoy adds (x-request-id, traceparent). Only
the calls are counted: callgrind is zeroed before them and dumped after them (and after the
span exporter's next batch), and the idle background of a window as long (timers, gRPC's
pollers) is subtracted. Each setting runs `--repeats` times, in a fresh process.

Settings, as in `bench/observability.py`: `off` (WARNING, in-memory metrics), `logs+metrics`
(INFO, JSON lines to stderr, multiprocess metrics), `tracing 10%` (plus OTLP export of one
call in ten to a receiver in this script, Envoy's sampled flag deciding) and `tracing`
(every call). The result is the server's instructions per call and the throughput the
setting would cost if the server were all the CPU, an upper bound of its real cost: Envoy
and PostgreSQL do the same work in every setting and are left out, as is the kernel
(callgrind counts user-space instructions only). Instructions are not cycles either (cache
misses cost nothing here), so this complements the stack runs, it does not replace them.

    make bench-observability-instructions   # or: .venv/bin/python bench/observability_instructions.py

Needs valgrind (`apt-get install valgrind`). Takes about 10 minutes (Python runs some 50
times slower under callgrind); the settings run two at a time, one per core.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)
from todo.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    task_service_pb2,
    task_service_pb2_grpc,
)

REPO = Path(__file__).resolve().parents[1]
SETTINGS = ("off", "logs+metrics", "tracing 10%", "tracing")
EXPORT_WAIT_S = 7.0
"""How long the measured window goes on after the last call: the span exporter sends what
it holds every 5 s (OTEL_BSP_SCHEDULE_DELAY, left at its default so batches are as large
as in service), and that export is part of what the calls cost."""
TOTALS = re.compile(rb"^(?:totals|summary): (\d+)", re.MULTILINE)


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP TraceService that drops what it is sent."""

    def Export(self, request: Any, context: Any) -> Any:
        return trace_service_pb2.ExportTraceServiceResponse()


def serve(port: int) -> None:
    """The measured process: one server worker, as the launcher starts it."""
    from server.config import Settings
    from server.supervisor import _worker_main

    _worker_main(Settings.from_env(), port)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(setting: str, database_url: str, work: Path, otlp: str) -> dict[str, str]:
    """The worker's environment for one setting."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}:{REPO / 'generated'}",
        "PYTHONHASHSEED": "0",  # the same dict layouts in every run
        "DATABASE_URL": database_url,
        "TODO_DATA_DIR": str(work),
        "TODO_JWT_SECRET": "instructions-bench-secret-0123456789abcdef",
        "TODO_BCRYPT_ROUNDS": "4",
        "TODO_USER_RATE_LIMIT": "0",
        "TODO_DRAIN_DELAY_S": "0",
        "TODO_LOG_LEVEL": "WARNING" if setting == "off" else "INFO",
        "TODO_LOG_FORMAT": "json",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("TODO_OTLP_ENDPOINT", None)
    if setting != "off":
        metrics_dir = work / "metrics"
        metrics_dir.mkdir(parents=True, exist_ok=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    if setting.startswith("tracing"):
        env["TODO_OTLP_ENDPOINT"] = otlp
        env["TODO_TRACE_SAMPLE_PERCENT"] = "100"  # the server follows Envoy's flag, below
    return env


@contextlib.contextmanager
def worker(env: dict[str, str], out_file: Path | None, log: Path) -> Iterator[tuple[int, int]]:
    """Run one worker (under callgrind when `out_file` is set); yield its port and pid."""
    port = free_port()
    command = [sys.executable, __file__, "--serve", str(port)]
    if out_file is not None:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out_file}",
            "--dump-line=no",
            "--collect-atstart=yes",
            *command,
        ]
    with log.open("ab") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=output)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=600)
        channel.close()
        yield port, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(300)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def make_user(port: int) -> tuple[str, str]:
    """Register a user with one task; (access token, task id)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)  # type: ignore[no-untyped-call]
        email = f"instr-{uuid.uuid4().hex[:8]}@example.com"
        auth.Register(auth_pb2.RegisterRequest(email=email, password="benchmark1", name="I"))
        token = auth.Login(auth_pb2.LoginRequest(email=email, password="benchmark1")).access_token
        tasks = task_service_pb2_grpc.TaskServiceStub(channel)  # type: ignore[no-untyped-call]
        task = tasks.CreateTask(
            task_service_pb2.CreateTaskRequest(user_id="me", title="measured"),
            metadata=(("authorization", f"Bearer {token}"),),
        )
    return token, task.id


def get_tasks(port: int, token: str, task_id: str, calls: int, every: bool = False) -> None:
    """`calls` GetTask calls, one at a time, each with the metadata Envoy would add.

    Envoy samples one call in ten (`TODO_TRACE_SAMPLE_PERCENT=10`) and the server follows its
    flag; `every`: all are sampled, as with 100.
    """
    request = task_service_pb2.GetTaskRequest(user_id="me", task_id=task_id)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)  # type: ignore[no-untyped-call]
        for i in range(calls):
            sampled = "01" if every or i % 10 == 0 else "00"
            stub.GetTask(
                request,
                metadata=(
                    ("authorization", f"Bearer {token}"),
                    ("x-request-id", str(uuid.UUID(int=i))),
                    ("traceparent", f"00-{i + 1:032x}-{i + 1:016x}-{sampled}"),
                    ("x-forwarded-for", "192.0.2.1"),
                ),
            )


def instructions(dump: Path) -> int:
    found = TOTALS.findall(dump.read_bytes())
    if not found:
        raise RuntimeError(f"no totals in {dump}")
    return int(found[-1])


def callgrind(command: str, pid: int) -> None:
    subprocess.run(["callgrind_control", command, str(pid)], check=True, capture_output=True)


def window(pid: int, out_file: Path, number: int, work: Callable[[], object]) -> tuple[int, float]:
    """(instructions, seconds) the worker spent while `work` ran: zeroed before, dumped after."""
    callgrind("-z", pid)
    started = time.monotonic()
    work()
    elapsed = time.monotonic() - started
    callgrind("-d", pid)
    return instructions(out_file.with_name(f"{out_file.name}.{number}")), elapsed


def measure(
    setting: str, calls: int, database_url: str, work: Path, otlp: str, token: str, task_id: str
) -> float:
    """Instructions the worker spends per GetTask call, its idle background taken out.

    The calls are counted in a window (callgrind zeroed before them, dumped
    `EXPORT_WAIT_S` after the last), then an idle window of the same length measures what
    the worker's timers (metrics sampler, revocation reloads, gRPC's pollers) cost per
    second meanwhile.
    """
    run = work / setting.replace(" ", "-").replace("%", "pct")
    run.mkdir(parents=True)
    env = environment(setting, database_url, run, otlp)
    out_file = run / "callgrind.out"
    every = setting == "tracing"
    with worker(env, out_file, run / "worker.log") as (port, pid):
        get_tasks(port, token, task_id, 20, every)  # warm-up: caches, prepared statements

        def calls_then_export() -> None:
            get_tasks(port, token, task_id, calls, every)
            time.sleep(EXPORT_WAIT_S)

        busy, busy_s = window(pid, out_file, 1, calls_then_export)
        idle, idle_s = window(pid, out_file, 2, lambda: time.sleep(busy_s))
    return (busy - idle * busy_s / idle_s) / calls


@contextlib.contextmanager
def database(work: Path) -> Iterator[str]:
    """DATABASE_URL if set, else an embedded PostgreSQL in `work`; migrated."""
    from server.config import Settings
    from server.db import database as db

    url = os.environ.get("DATABASE_URL")
    settings = Settings(data_dir=work / "data", database_url=url, require_secrets=False)
    with db.open_database(settings) as resolved:
        db.prepare_schema(resolved, migrate=True)
        yield resolved


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200, help="GetTask calls per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting")
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found: apt-get install valgrind")
    receiver = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(), receiver)  # type: ignore[no-untyped-call]
    otlp = f"http://127.0.0.1:{receiver.add_insecure_port('127.0.0.1:0')}"
    receiver.start()
    with tempfile.TemporaryDirectory(prefix="todo-bench-instr-") as tmp, database(Path(tmp)) as url:
        print("==> making the benchmark user (a worker without callgrind)", flush=True)
        setup = Path(tmp) / "setup"
        setup.mkdir()
        with worker(environment("off", url, setup, otlp), None, setup / "worker.log") as (port, _):
            token, task_id = make_user(port)
        jobs = [(s, r) for r in range(args.repeats) for s in args.settings]
        per_call: dict[str, list[float]] = {s: [] for s in args.settings}
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            futures = {
                pool.submit(
                    measure, s, args.calls, url, Path(tmp) / f"run-{r}", otlp, token, task_id
                ): s
                for s, r in jobs
            }
            for future in concurrent.futures.as_completed(futures):
                setting = futures[future]
                per_call[setting].append(future.result())
                print(
                    f"{setting:13} {per_call[setting][-1]:12,.0f} instructions per call "
                    f"({time.monotonic() - started:.0f} s)",
                    flush=True,
                )
    receiver.stop(0)
    report(per_call, args.calls)


def report(per_call: dict[str, list[float]], calls: int) -> None:
    """The table: instructions per call and the throughput each setting costs.

    A CPU-bound process's throughput falls as `1 - off / setting` of its instructions per
    call. Envoy, PostgreSQL and the kernel (which callgrind does not count) do the same
    work in every setting, so on the whole stack the loss is smaller: this is its bound.
    """
    base = statistics.median(per_call["off"]) if "off" in per_call else None
    print()
    print(
        f"instructions of one server process per GetTask call (callgrind, {calls} calls a run, "
        "idle background taken out; median of the runs)"
    )
    print()
    print("| setting | instructions per call | runs | added | throughput cost, server only |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for setting, runs in per_call.items():
        value = statistics.median(runs)
        spread = " / ".join(f"{run / 1e6:.3f}M" for run in runs)
        added = "-" if base is None or setting == "off" else f"{value - base:+,.0f}"
        cost = "-" if base is None or setting == "off" else f"{1 - base / value:.1%}"
        print(f"| {setting} | {value:,.0f} | {spread} | {added} | {cost} |")


if __name__ == "__main__":
    main()
