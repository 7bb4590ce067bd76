"""Where a server process spends its CPU under load: py-spy flame graph summaries.

Starts the stack as `make bench` does (access log, metrics, per-user limit on but raised),
creates the benchmark users, then for each scenario (REST get, REST create, gRPC get) runs
wrk or h2load through Envoy while `py-spy record` samples every server process. Each
profile is written as collapsed stacks (`--format raw`: one line per stack and its sample
count, the input of any flame graph tool, e.g. speedscope.app or flamegraph.pl) under
`bench/profiles/` (ignored by git), and summarised as Markdown tables:

- self time: the Python function on top of the stack (its own code, or the C code it
  called), as a share of all samples of the busy (non-idle) thread;
- cumulative: samples with the function anywhere on the stack;
- by layer: the leaf's file, grouped (our server code by module, grpc, psycopg, logging,
  protobuf, asyncio, ...).

Usage:

    make profile                               # or: .venv/bin/python bench/flame.py
    .venv/bin/python bench/flame.py --scenario get --duration 20 --top 25

Needs py-spy (the dev extra), wrk and h2load; runs as a user allowed to ptrace the workers.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import cast

from stack import AS_SHIPPED, REPO, Stack
from throughput import grpc_frame, run_h2load_many, run_wrk, setup, wrk_script
from todo.v1 import task_service_pb2

OUT = REPO / "bench" / "profiles"
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")
LAYERS = [
    ("/server/", None),  # by module, below
    ("grpc", "grpc"),
    ("psycopg_pool", "psycopg_pool"),
    ("psycopg", "psycopg"),
    ("sqlalchemy", "sqlalchemy"),
    ("google/protobuf", "protobuf"),
    ("protovalidate", "protovalidate"),
    ("jwt/", "PyJWT"),
    ("logging/", "logging"),
    ("prometheus_client", "prometheus_client"),
    ("opentelemetry", "opentelemetry"),
    ("asyncio/", "asyncio"),
    ("json/", "json"),
]


ROOTS = (
    "BaseEventLoop.run",
    "BaseEventLoop._run_once",
    "spawn_main",
    "_main (",
    "BaseProcess.",
    "run (asyncio/runners.py)",
    "Runner.run",
    "_worker_main",
    "<module>",
    "Handle._run",
    "Thread.",
)
"""Frames every sample of a thread goes through: left out of the cumulative table."""


def layer(file: str) -> str:
    """The layer a source file belongs to (our own code by module)."""
    for needle, name in LAYERS:
        if needle in file:
            if name is None:
                return "server/" + file.split("/server/", 1)[1]
            return name
    return Path(file).name or "?"


def parse(
    raw: Path,
) -> tuple[int, collections.Counter[str], collections.Counter[str], collections.Counter[str]]:
    """(samples, self by function, cumulative by function, self by layer) of a raw profile."""
    total = 0
    own: collections.Counter[str] = collections.Counter()
    cumulative: collections.Counter[str] = collections.Counter()
    layers: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        names = []
        for frame in frames:
            match = FRAME.match(frame)
            func, file = (match["func"], match["file"]) if match else (frame, "")
            names.append((f"{func} ({short(file)})", file))
        own[names[-1][0]] += count
        layers[layer(names[-1][1])] += count
        for name in {n for n, _ in names}:
            cumulative[name] += count
    return total, own, cumulative, layers


def short(file: str) -> str:
    """A source path without its site-packages or checkout prefix."""
    for marker in ("site-packages/", "/lib/python3.11/", str(REPO) + "/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def summary(title: str, raw: Path, top: int) -> str:
    total, own, cumulative, layers = parse(raw)
    lines = [f"#### {title}: {total:,} samples ({raw.relative_to(REPO)})", ""]
    lines += ["| self % | function |", "| ---: | --- |"]
    lines += [f"| {100 * n / total:.1f} | `{name}` |" for name, n in own.most_common(top)]
    lines += ["", "| cumulative % | function (below the event loop) |", "| ---: | --- |"]
    inner = [(name, n) for name, n in cumulative.most_common() if not name.startswith(ROOTS)]
    lines += [f"| {100 * n / total:.1f} | `{name}` |" for name, n in inner[:top]]
    lines += ["", "| self % | layer (leaf frame's file) |", "| ---: | --- |"]
    lines += [f"| {100 * n / total:.1f} | {name} |" for name, n in layers.most_common(top)]
    return "\n".join(lines) + "\n"


def record(
    pids: list[int], seconds: int, rate: int, prefix: Path, native: bool = False
) -> list[Path]:
    """py-spy on every pid at once (in threads), `seconds` long; the raw files."""
    outputs = [prefix.with_name(f"{prefix.name}-{i}.txt") for i in range(len(pids))]
    spy = str(Path(sys.executable).with_name("py-spy"))
    procs = [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(seconds),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for pid, out in zip(pids, outputs, strict=True)
    ]
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError(
                f"py-spy failed: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
    return outputs


def merge(parts: list[Path], into: Path) -> Path:
    counts: collections.Counter[str] = collections.Counter()
    for part in parts:
        for line in part.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                counts[stack] += int(count)
    into.write_text("".join(f"{stack} {n}\n" for stack, n in counts.items()))
    return into


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=15, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=15, help="rows per table")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=["get", "create", "grpc-get", "list"],
        default=[],
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tag", default="", help="name suffix of the profile files")
    parser.add_argument(
        "--native",
        action="store_true",
        help="also sample C/Cython frames (grpc's cygrpc, libpq): what the Python-only "
        "profile shows as the self time of Handle._run and Thread.run",
    )
    parser.add_argument(
        "--summarize",
        type=Path,
        nargs="+",
        metavar="RAW",
        help="only print the tables of profiles recorded before (no stack, no load)",
    )
    args = parser.parse_args()
    if args.summarize:
        print("\n".join(summary(raw.stem, raw.resolve(), args.top) for raw in args.summarize))
        return
    scenarios = args.scenario or ["get", "create", "grpc-get"]
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="todo-profile-") as tmp:
        work = Path(tmp)
        print(f"==> starting the stack ({args.workers} workers + Envoy)", flush=True)
        stack = Stack(args.workers, work, "INFO", AS_SHIPPED)
        try:
            users = setup(stack, 4, 1000 if "list" in scenarios else 10)
            api = "/api/v1/users/me/tasks"
            url = f"{stack.rest}{api}"
            tokens = [u.token for u in users]
            loads = {
                "get": lambda: run_wrk(
                    url,
                    args.duration + 2,
                    args.connections,
                    {},
                    wrk_script(
                        work / "get.lua",
                        "GET",
                        tokens,
                        [f"{api}/{u.tasks[0]}" for u in users],
                        None,
                    ),
                ),
                "create": lambda: run_wrk(
                    url,
                    args.duration + 2,
                    args.connections,
                    {},
                    wrk_script(
                        work / "create.lua",
                        "POST",
                        tokens,
                        [api] * len(tokens),
                        '{"title": "bench task"}',
                    ),
                ),
                "list": lambda: run_wrk(
                    url,
                    args.duration + 2,
                    args.connections,
                    {},
                    wrk_script(
                        work / "list.lua",
                        "GET",
                        tokens,
                        [f"{api}?page_size=20"] * len(tokens),
                        None,
                    ),
                ),
                "grpc-get": lambda: run_h2load_many(
                    f"http://127.0.0.1:{stack.envoy_port}/todo.v1.TaskService/GetTask",
                    args.duration + 2,
                    args.connections // len(users),
                    [_get_body(work, i, u.tasks[0]) for i, u in enumerate(users)],
                    [{"authorization": f"Bearer {u.token}"} for u in users],
                ),
            }
            pids = [p.pid for p in stack.workers_processes()]
            reports = []
            for name in scenarios:
                print(f"==> {name}: load for {args.duration + 2}s, py-spy on {pids}", flush=True)
                done: dict[str, object] = {}
                loader = threading.Thread(target=lambda n=name, d=done: d.update(r=loads[n]()))
                loader.start()
                prefix = OUT / f"{name}{args.tag}"
                parts = record(pids, args.duration, args.rate, prefix, args.native)
                loader.join()
                merged = merge(parts, OUT / f"{name}{args.tag}.txt")
                result = cast(tuple[int, float, float, int], done["r"])
                total = result[0]
                title = (
                    f"{name} ({total:,} requests in {args.duration + 2}s, load average "
                    f"{os.getloadavg()[0]:.1f})"
                )
                reports.append(summary(title, merged, args.top))
            print()
            print("\n".join(reports))
        finally:
            stack.stop()


def _get_body(work: Path, index: int, task_id: str) -> Path:
    path = work / f"get-{index}.bin"
    message = task_service_pb2.GetTaskRequest(user_id="me", task_id=task_id)
    path.write_bytes(grpc_frame(message.SerializeToString()))
    return path


if __name__ == "__main__":
    main()
