"""Streams and batches on the real stack: watch capacity and latency, streaming, batchCreate.

    .venv/bin/python bench/streams.py            # or: make bench-streams
    .venv/bin/python bench/streams.py --idle 5000 --watchers 1000 --stream-tasks 1000000

1. Capacity: --idle watch streams held open on ONE server process; its RSS
   and thread count before and after, and a unary call's latency meanwhile.
2. Latency: --watchers watch streams across all processes (10 per user);
   tasks are created through Envoy and the delay from sending the write to
   each watcher receiving its event is measured (an upper bound of
   commit -> event).
3. Streaming: --stream-tasks tasks of one user, streamed over native gRPC
   (one process, direct) and REST NDJSON (Envoy): tasks/s and the server
   process's RSS growth.
4. batchCreate of 500 tasks, straight to a server process: p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc
import grpc.aio
import psutil
import psycopg
from stack import REPO, Stack
from todo.v1 import auth_pb2, auth_pb2_grpc, task_pb2, task_service_pb2, task_service_pb2_grpc

sys.path[:0] = [str(REPO), str(REPO / "generated")]
from server.config import Settings  # noqa: E402
from server.db import database  # noqa: E402

PASSWORD = "benchmark1"


async def make_users(target: str, count: int) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    async with grpc.aio.insecure_channel(target) as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)

        async def one(i: int) -> tuple[str, tuple[tuple[str, str], ...]]:
            email = f"w{i}-{uuid.uuid4().hex[:6]}@example.com"
            user = await auth.Register(
                auth_pb2.RegisterRequest(email=email, password=PASSWORD, name="W")
            )
            login = await auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
            return user.id, (("authorization", f"Bearer {login.access_token}"),)

        return [await one(i) for i in range(count)]


class Watch:
    def __init__(self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]) -> None:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        self.call = stub.WatchTasks(
            task_service_pb2.WatchTasksRequest(user_id="me"), metadata=metadata
        )
        self.ready = asyncio.Event()
        self.received: dict[str, float] = {}
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for event in self.call:
                if event.event_type == task_pb2.EVENT_TYPE_HEARTBEAT:
                    self.ready.set()
                else:
                    self.received[event.task.title] = time.perf_counter()
        except grpc.aio.AioRpcError:
            pass


async def open_watches(
    targets: list[str], users, per_user: int, total: int
) -> tuple[list[Watch], list]:
    channels = [grpc.aio.insecure_channel(t) for t in targets]
    watches: list[Watch] = []
    for i in range(total):
        _, metadata = users[(i // per_user) % len(users)]
        watches.append(Watch(channels[i % len(channels)], metadata))
        if i % 50 == 49:  # paced: a burst of thousands of new streams gets some CANCELLED
            await asyncio.sleep(0.05)
    await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in watches)), timeout=120)
    return watches, channels


async def close_watches(watches: list[Watch], channels: list) -> None:
    for w in watches:
        w.call.cancel()
    await asyncio.gather(*(w.task for w in watches), return_exceptions=True)
    for channel in channels:
        await channel.close()


def rss_mb(process: psutil.Process) -> float:
    return process.memory_info().rss / 2**20


async def capacity(stack: Stack, idle: int) -> list[str]:
    worker = stack.workers_processes()[0]
    target = f"127.0.0.1:{stack.base}"
    users = await make_users(target, 50)
    before = (rss_mb(worker), worker.num_threads())
    started = time.perf_counter()
    watches, channels = await open_watches([target], users, max(idle // 50, 1), idle)
    opened_s = time.perf_counter() - started
    after = (rss_mb(worker), worker.num_threads())
    async with grpc.aio.insecure_channel(target) as channel:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        latencies = []
        for _ in range(200):
            t0 = time.perf_counter()
            await stub.ListTasks(
                task_service_pb2.ListTasksRequest(user_id="me", page_size=1), metadata=users[0][1]
            )
            latencies.append((time.perf_counter() - t0) * 1000)
    open_now = sum(1 for w in watches if not w.task.done())
    await close_watches(watches, channels)
    return [
        f"| idle watch streams on one process | {open_now:,} of {idle:,} open after {opened_s:.1f}s |",
        f"| server process RSS | {before[0]:.0f} MB -> {after[0]:.0f} MB "
        f"({(after[0] - before[0]) * 1024 / max(idle, 1):.1f} KB per stream) |",
        f"| server process threads | {before[1]} -> {after[1]} |",
        f"| ListTasks p50 / p99 while they are open | {statistics.median(latencies):.2f} / "
        f"{statistics.quantiles(latencies, n=100)[98]:.2f} ms |",
    ]


async def latency(stack: Stack, watchers: int, writes: int) -> list[str]:
    targets = [f"127.0.0.1:{p}" for p in range(stack.base, stack.envoy_port)]
    users = await make_users(targets[0], max(watchers // 10, 1))
    watches, channels = await open_watches(targets, users, 10, watchers)
    delays: list[float] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.envoy_port}") as channel:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        for i in range(writes):
            index = i % len(users)
            _, metadata = users[index]
            title = f"write-{i}"
            sent = time.perf_counter()
            await stub.CreateTask(
                task_service_pb2.CreateTaskRequest(user_id="me", title=title), metadata=metadata
            )
            mine = [w for j, w in enumerate(watches) if (j // 10) % len(users) == index]
            deadline = time.perf_counter() + 5
            while any(title not in w.received for w in mine) and time.perf_counter() < deadline:
                await asyncio.sleep(0.001)
            delays += [(w.received.get(title, float("inf")) - sent) * 1000 for w in mine]
            await asyncio.sleep(0.01)
    await close_watches(watches, channels)
    missed = sum(1 for d in delays if d == float("inf"))
    cuts = statistics.quantiles([d for d in delays if d != float("inf")], n=100)
    return [
        f"| commit -> event, {watchers:,} watchers on {len(targets)} processes, {writes} writes "
        f"| p50 {cuts[49]:.1f} ms, p99 {cuts[98]:.1f} ms, max {max(d for d in delays if d != float('inf')):.1f} ms, "
        f"{missed} missed of {len(delays):,} |",
    ]


def load_tasks(url: str, user_id: str, count: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO tasks (user_id, title, description, created_at)"
            " SELECT %s, 'streamed ' || g, repeat('x', 100), now() - g * interval '1 second'"
            " FROM generate_series(1, %s::int) AS g",
            (user_id, count),
        )


class PeakRss:
    def __init__(self, process: psutil.Process) -> None:
        self.process, self.peak, self._stop = process, rss_mb(process), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb(self.process))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


async def streaming(stack: Stack, url: str, count: int) -> list[str]:
    target = f"127.0.0.1:{stack.base}"
    [(user_id, metadata)] = await make_users(target, 1)
    print(f"==> loading {count:,} tasks for the streaming user", flush=True)
    load_tasks(url, user_id, count)
    worker = stack.workers_processes()[0]
    lines = []
    async with grpc.aio.insecure_channel(
        target, options=[("grpc.max_receive_message_length", -1)]
    ) as channel:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        base = rss_mb(worker)
        peak = PeakRss(worker)
        started = time.perf_counter()
        n = 0
        async for chunk in stub.StreamTasks(
            task_service_pb2.StreamTasksRequest(user_id="me"), metadata=metadata
        ):
            n += len(chunk.tasks)
        seconds = time.perf_counter() - started
        lines.append(
            f"| StreamTasks, gRPC direct | {n:,} tasks in {seconds:.1f}s = {n / seconds:,.0f} tasks/s; "
            f"server RSS {base:.0f} -> peak {peak.stop():.0f} MB |"
        )
    token = metadata[0][1]
    workers = stack.workers_processes()
    bases = [rss_mb(w) for w in workers]
    peaks = [PeakRss(w) for w in workers]
    started = time.perf_counter()
    with tempfile.NamedTemporaryFile() as body:  # curl: a C client, so Python is not the limit
        subprocess.run(
            [
                "curl",
                "-sSf",
                "-o",
                body.name,
                "-H",
                f"authorization: {token}",
                f"{stack.rest}/api/v1/users/me/tasks:stream",
            ],
            check=True,
        )
        seconds = time.perf_counter() - started
        n = sum(1 for line in Path(body.name).read_bytes().splitlines() if line.strip())
    growth = max(p.stop() - b for p, b in zip(peaks, bases, strict=True))
    lines.append(
        f"| tasks:stream, REST NDJSON via Envoy | {n:,} tasks in {seconds:.1f}s = {n / seconds:,.0f} "
        f"tasks/s; largest server RSS growth {growth:.0f} MB |"
    )
    return lines


async def batch_create(stack: Stack, runs: int) -> list[str]:
    target = f"127.0.0.1:{stack.base}"
    [(_, metadata)] = await make_users(target, 1)
    request = task_service_pb2.BatchCreateTasksRequest(
        user_id="me",
        tasks=[task_service_pb2.NewTask(title=f"b{i}", tags=["x"]) for i in range(500)],
    )
    async with grpc.aio.insecure_channel(target) as channel:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        times = []
        for _ in range(runs + 3):
            t0 = time.perf_counter()
            await stub.BatchCreateTasks(request, metadata=metadata)
            times.append((time.perf_counter() - t0) * 1000)
    times = times[3:]
    cuts = statistics.quantiles(times, n=100)
    server = [
        float(m.group(1))
        for m in re.finditer(r"BatchCreateTasks code=OK ms=([\d.]+)", stack.log_path.read_text())
    ][3:]
    rows = [
        f"| batchCreate of 500 tasks, gRPC direct, {runs} runs, at the client "
        f"| p50 {cuts[49]:.1f} ms, p99 {cuts[98]:.1f} ms |"
    ]
    if len(server) >= 2:
        server_cuts = statistics.quantiles(server, n=100)
        rows.append(
            f"| the same, server time (access log) | p50 {server_cuts[49]:.1f} ms, "
            f"p99 {server_cuts[98]:.1f} ms |"
        )
    else:
        print(f"(only {len(server)} BatchCreateTasks lines in {stack.log_path})", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--stream-tasks", type=int, default=1_000_000)
    parser.add_argument("--batch-runs", type=int, default=30)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--only", choices=["capacity", "latency", "batch", "streaming"], help="run one part"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="todo-streams-") as tmp:
        settings = Settings(database_url=os.environ.get("DATABASE_URL"), data_dir=Path(tmp))
        with database.open_database(settings) as url:
            env = {"DATABASE_URL": url, "TODO_BCRYPT_ROUNDS": "4"}
            stack = Stack(args.workers, Path(tmp), "INFO", env)  # INFO: the access log times calls
            try:
                rows: list[str] = []
                for label, job in (
                    ("capacity", lambda: capacity(stack, args.idle)),
                    ("latency", lambda: latency(stack, args.watchers, args.writes)),
                    ("batch", lambda: batch_create(stack, args.batch_runs)),
                    ("streaming", lambda: streaming(stack, url, args.stream_tasks)),
                ):
                    if args.only not in (None, label):
                        continue
                    print(f"==> {label}", flush=True)
                    rows += asyncio.run(job())
            finally:
                stack.stop()
    print()
    print(
        f"{args.workers} server processes + Envoy, {os.cpu_count()} cores shared with the clients"
    )
    print()
    print("| measure | result |")
    print("| --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
