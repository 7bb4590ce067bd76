"""Streams and batches on the real stack: watch capacity and latency, streaming, batchCreate.

    .venv/bin/python bench/streams.py            # or: make bench-streams
    .venv/bin/python bench/streams.py --idle 10000 --per-user 10 --stream-tasks 1000000

1. Watches: --idle watch streams (default 10,000, --per-user of each user) held
   open on all --workers processes, straight to each (Envoy's default circuit
   breaker caps an upstream cluster at 1,024 concurrent requests); RSS, threads
   and file descriptors of each process before and after; while all are open,
   --writes tasks are created through Envoy over --hold seconds (past the 30 s
   heartbeat) and the delay from sending each write to each of that user's
   watchers receiving its event is measured (an upper bound of commit -> event);
   a unary call's p50/p99 (through Envoy) before the streams open and while
   they are open.
2. Streaming: --stream-tasks tasks of one user, streamed over native gRPC
   (one process, direct) and REST NDJSON (Envoy): tasks/s and the server
   process's RSS growth. --profile DIR: py-spy samples the streaming server
   process and the script prints where its time goes.
3. batchCreate of 500 tasks, straight to a server process: p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
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
            user = await shed_retry(
                lambda: auth.Register(
                    auth_pb2.RegisterRequest(email=email, password=PASSWORD, name="W")
                )
            )
            login = await shed_retry(
                lambda: auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
            )
            return user.id, (("authorization", f"Bearer {login.access_token}"),)

        users = []
        for start in range(0, count, 2):  # the server hashes 2 passwords at once per process
            users += await asyncio.gather(*(one(i) for i in range(start, min(start + 2, count))))
        return users


async def shed_retry(call):
    """`call()`, again after a pause while the server sheds it (password hashing is bounded)."""
    for _ in range(50):
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            await asyncio.sleep(0.05)
    return await call()


class Watch:
    def __init__(self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]) -> None:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        self.call = stub.WatchTasks(
            task_service_pb2.WatchTasksRequest(user_id="me"), metadata=metadata
        )
        self.ready = asyncio.Event()
        self.received: dict[str, float] = {}
        self.error = ""
        self.settled = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for event in self.call:
                if event.event_type == task_pb2.EVENT_TYPE_HEARTBEAT:
                    self.ready.set()
                    self.settled.set()
                else:
                    self.received[event.task.title] = time.perf_counter()
        except grpc.aio.AioRpcError as exc:
            self.error = exc.code().name
        finally:
            self.settled.set()


async def open_watches(
    targets: list[str], users, per_user: int, total: int, channels_per_target: int = 1
) -> tuple[list[Watch], list]:
    # Distinct channel arguments: grpc would otherwise share one connection per target.
    channels = [
        grpc.aio.insecure_channel(t, options=[("bench.channel", n)])
        for n in range(channels_per_target)
        for t in targets
    ]
    watches: list[Watch] = []
    for i in range(total):
        _, metadata = users[(i // per_user) % len(users)]
        watches.append(Watch(channels[i % len(channels)], metadata))
        if i % 50 == 49:  # paced: a burst of thousands of new streams gets some CANCELLED
            await asyncio.sleep(0.05)
    # A stream is settled when live (first heartbeat) or ended (a burst of new streams
    # gets a few CANCELLED): the caller reports both.
    ready = asyncio.gather(*(w.settled.wait() for w in watches))
    try:
        await asyncio.wait_for(asyncio.shield(ready), timeout=300)
    except TimeoutError:  # reported as "N of M live" by the caller
        print(f"    only {sum(w.ready.is_set() for w in watches):,} live after 300 s", flush=True)
        ready.cancel()
    return watches, channels


async def close_watches(watches: list[Watch], channels: list) -> None:
    for w in watches:
        w.call.cancel()
    await asyncio.gather(*(w.task for w in watches), return_exceptions=True)
    for channel in channels:
        await channel.close()


def rss_mb(process: psutil.Process) -> float:
    return process.memory_info().rss / 2**20


def process_state(process: psutil.Process) -> tuple[float, int, int]:
    """RSS (MB), threads and open file descriptors of a server process."""
    return rss_mb(process), process.num_threads(), process.num_fds()


async def unary_latencies(target: str, metadata, seconds: float) -> list[float]:
    """ms of sequential one-task ListTasks calls for `seconds`."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        latencies = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            await stub.ListTasks(
                task_service_pb2.ListTasksRequest(user_id="me", page_size=1), metadata=metadata
            )
            latencies.append((time.perf_counter() - t0) * 1000)
    return latencies


def p50_p99(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=100)
    return cuts[49], cuts[98]


async def watches(
    stack: Stack, idle: int, per_user: int, writes: int, channels_per_process: int, hold: float
) -> list[str]:
    """`idle` watch streams spread over every process (direct), then writes and unary calls.

    Direct, not through Envoy: Envoy's default circuit breaker allows 1,024 concurrent
    requests per upstream cluster, so 10,000 open streams through it need
    `max_requests` raised (see the README's Performance section).
    """
    targets = [f"127.0.0.1:{p}" for p in range(stack.base, stack.envoy_port)]
    envoy = f"127.0.0.1:{stack.envoy_port}"
    print(f"==> registering {max(idle // per_user, 1):,} users", flush=True)
    users = await make_users(targets[0], max(idle // per_user, 1))
    workers = stack.workers_processes()
    idle_unary = await unary_latencies(envoy, users[0][1], 10)
    before = [process_state(w) for w in workers]
    started = time.perf_counter()
    print(f"==> opening {idle:,} watch streams on {len(targets)} processes", flush=True)
    opened, channels = await open_watches(targets, users, per_user, idle, channels_per_process)
    opened_s = time.perf_counter() - started
    after = [process_state(w) for w in workers]
    print(f"==> {writes} writes and unary calls for {hold:.0f} s while they are open", flush=True)
    delays, busy_unary = await asyncio.gather(
        write_and_wait(envoy, opened, users, per_user, writes, hold / writes),
        unary_latencies(envoy, users[0][1], hold),
    )
    open_now = sum(1 for w in opened if w.ready.is_set() and not w.task.done())
    failed: dict[str, int] = {}
    for w in opened:
        if w.task.done() and w.error:
            failed[w.error] = failed.get(w.error, 0) + 1
    never = sum(1 for w in opened if not w.ready.is_set() and not w.task.done())
    await close_watches(opened, channels)
    missed = sum(1 for d in delays if d == float("inf"))
    got = [d for d in delays if d != float("inf")]
    idle_p50, idle_p99 = p50_p99(idle_unary)
    busy_p50, busy_p99 = p50_p99(busy_unary)
    event_p50, event_p99 = p50_p99(got)
    per_process = ", ".join(
        f"{b[0]:.0f} -> {a[0]:.0f} MB, {b[1]} -> {a[1]} threads, {b[2]:,} -> {a[2]:,} fds"
        for b, a in zip(before, after, strict=True)
    )
    growth_kb = sum(a[0] - b[0] for b, a in zip(before, after, strict=True)) * 1024
    return [
        f"| idle watch streams, {len(targets)} processes (direct, {channels_per_process} "
        f"HTTP/2 connections each) | {open_now:,} of {idle:,} live (first heartbeat received) "
        f"after {opened_s:.1f}s and still open at the end; ended early: {failed or 0}, "
        f"open without a first heartbeat: {never} |",
        f"| server processes: RSS, threads, fds | {per_process} "
        f"({growth_kb / max(idle, 1):.1f} KB per stream) |",
        f"| commit -> event with all open ({writes} writes over {hold:.0f} s, {per_user} watchers "
        f"each, via Envoy) "
        f"| p50 {event_p50:.1f} ms, p99 {event_p99:.1f} ms, max {max(got):.1f} ms, "
        f"{missed} missed of {len(delays):,} |",
        f"| unary ListTasks via Envoy, p50 / p99: idle ({len(idle_unary):,} calls), with all "
        f"open ({len(busy_unary):,} calls, same {hold:.0f} s) "
        f"| {idle_p50:.2f} / {idle_p99:.2f} ms, {busy_p50:.2f} / {busy_p99:.2f} ms "
        f"(p99 {busy_p99 / idle_p99:.2f}x idle) |",
    ]


async def write_and_wait(
    envoy: str, opened: list[Watch], users, per_user: int, writes: int, pause: float
):
    """Create `writes` tasks (users in turn); ms from sending each to each watcher's event."""
    delays: list[float] = []
    by_user: dict[int, list[Watch]] = {}
    for j, w in enumerate(opened):
        by_user.setdefault((j // per_user) % len(users), []).append(w)
    async with grpc.aio.insecure_channel(envoy) as channel:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        for i in range(writes):
            index = (i * 7919) % len(users)  # users spread over the processes
            _, metadata = users[index]
            title = f"write-{i}"
            sent = time.perf_counter()
            await stub.CreateTask(
                task_service_pb2.CreateTaskRequest(user_id="me", title=title), metadata=metadata
            )
            mine = by_user.get(index, [])
            deadline = time.perf_counter() + 5
            while any(title not in w.received for w in mine) and time.perf_counter() < deadline:
                await asyncio.sleep(0.001)
            delays += [(w.received.get(title, float("inf")) - sent) * 1000 for w in mine]
            await asyncio.sleep(max(pause - (time.perf_counter() - sent), 0.01))
    return delays


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


class Profile:
    """py-spy sampling one process (raw collapsed stacks), or nothing without a folder."""

    def __init__(self, folder: Path | None, name: str, pid: int) -> None:
        self.path = None if folder is None else folder / f"{name}.txt"
        self.process = None
        if self.path is not None:
            self.process = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "-p",
                    str(pid),
                    "-r",
                    "250",
                    "-f",
                    "raw",
                    "-o",
                    str(self.path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)  # attached before the first request

    def stop(self) -> None:
        if self.process is None or self.path is None:
            return
        self.process.send_signal(signal.SIGINT)
        self.process.wait(60)
        print(f"    profile of {self.path.stem} (% of samples, inclusive):", flush=True)
        for name, share in summarize(self.path):
            print(f"      {share:5.1f}%  {name}", flush=True)


PROFILE_FRAMES = {
    "psycopg: execute + fetch (wait and decode rows)": ("fetchall", "_execute"),
    "row -> domain.Task (task_rows.to_task)": ("to_task",),
    "domain.Task -> proto (converters.task_to_proto)": ("task_to_proto",),
    "fields -> proto (converters.tasks_from_fields)": ("tasks_from_fields",),
    "NDJSON from Task (ndjson.lines)": ("lines (server",),
    "NDJSON join (ndjson.join)": ("join (server",),
    "grpc send (serialize, write)": ("_handle_stream_response", "send_message", "_send_message"),
    "event loop idle (epoll)": ("select (selectors", "_poll", "epoll"),
    "batch: request -> TaskFields (converters.task_fields)": ("task_fields (server",),
    "batch: validation (batches._validated)": ("_validated",),
    "batch: items -> JSON (task_batches._new_item, Jsonb)": ("_new_item", "dumps"),
    "batch: rows -> Task (task_batches._in_order)": ("_in_order",),
    "batch: idempotency (batches._finish)": ("_finish",),
    "batch: Task -> proto (task_servicer._batch_response)": ("_batch_response",),
}


def summarize(path: Path) -> list[tuple[str, float]]:
    """Inclusive share of the event loop thread's samples of PROFILE_FRAMES' groups, then
    its 8 busiest leaves (grpc's own threads, mostly waiting, are left out)."""
    total, groups, leaves = 0, dict.fromkeys(PROFILE_FRAMES, 0), {}
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or "run_forever" not in stack:
            continue
        count = int(n)
        total += count
        for name, needles in PROFILE_FRAMES.items():
            if any(needle in stack for needle in needles):
                groups[name] += count
        leaf = stack.rsplit(";", 1)[-1]
        leaves[leaf] = leaves.get(leaf, 0) + count
    if not total:
        return []
    top = sorted(leaves.items(), key=lambda kv: -kv[1])[:8]
    return [(name, 100 * n / total) for name, n in groups.items() if n] + [
        (f"leaf: {name}", 100 * n / total) for name, n in top
    ]


async def streaming(stack: Stack, url: str, count: int, profile: Path | None) -> list[str]:
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
        spy = Profile(profile, "grpc-stream", worker.pid)
        started = time.perf_counter()
        n = 0
        async for chunk in stub.StreamTasks(
            task_service_pb2.StreamTasksRequest(user_id="me"), metadata=metadata
        ):
            n += len(chunk.tasks)
        seconds = time.perf_counter() - started
        spy.stop()
        lines.append(
            f"| StreamTasks, gRPC direct | {n:,} tasks in {seconds:.1f}s = {n / seconds:,.0f} tasks/s; "
            f"server RSS {base:.0f} -> peak {peak.stop():.0f} MB |"
        )
    token = metadata[0][1]
    workers = stack.workers_processes()
    bases = [rss_mb(w) for w in workers]
    peaks = [PeakRss(w) for w in workers]
    spies = [Profile(profile, f"ndjson-stream-{i}", w.pid) for i, w in enumerate(workers)]
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
        for spy in spies:
            spy.stop()
        n = sum(1 for line in Path(body.name).read_bytes().splitlines() if line.strip())
    growth = max(p.stop() - b for p, b in zip(peaks, bases, strict=True))
    lines.append(
        f"| tasks:stream, REST NDJSON via Envoy | {n:,} tasks in {seconds:.1f}s = {n / seconds:,.0f} "
        f"tasks/s; largest server RSS growth {growth:.0f} MB |"
    )
    return lines


async def batch_create(stack: Stack, runs: int, profile: Path | None) -> list[str]:
    target = f"127.0.0.1:{stack.base}"
    [(_, metadata)] = await make_users(target, 1)
    request = task_service_pb2.BatchCreateTasksRequest(
        user_id="me",
        tasks=[task_service_pb2.NewTask(title=f"b{i}", tags=["x"]) for i in range(500)],
    )
    async with grpc.aio.insecure_channel(target) as channel:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        times = []
        spy = Profile(profile, "batch-create", stack.workers_processes()[0].pid)
        for _ in range(runs + 3):
            t0 = time.perf_counter()
            await stub.BatchCreateTasks(request, metadata=metadata)
            times.append((time.perf_counter() - t0) * 1000)
        spy.stop()
    times = times[3:]
    cuts = statistics.quantiles(times, n=100)
    server = [
        float(m.group(1))
        for line in stack.log_path.read_text().splitlines()
        if "BatchCreateTasks" in line
        and re.search(r'code"?[:=]"?OK', line)  # console or JSON access lines
        and (m := re.search(r'duration_ms"?[:=]([\d.]+)', line))
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


SHIPPED = {
    "TODO_BCRYPT_ROUNDS": "4",
    # As shipped (access log at INFO, metrics on) but with the per-user limit raised, not off:
    # one benchmark user sends thousands of calls a second.
    "TODO_USER_RATE_LIMIT": "6000000",
    "TODO_USER_RATE_BURST": "100000",
    # Thousands of benchmark accounts register and log in from one address.
    "TODO_THROTTLE_PER_ADDRESS": "1000000",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--idle", type=int, default=10_000, help="watch streams, all processes")
    parser.add_argument("--per-user", type=int, default=10, help="watch streams per user")
    parser.add_argument("--channels", type=int, default=4, help="connections per process")
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument(
        "--hold",
        type=float,
        default=40,
        help="seconds of writes and unary calls with all streams open (past the 30 s heartbeat)",
    )
    parser.add_argument("--stream-tasks", type=int, default=1_000_000)
    parser.add_argument("--batch-runs", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=["watches", "batch", "streaming"], help="run one part")
    parser.add_argument("--profile", type=Path, help="py-spy the streaming (raw stacks here)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="todo-streams-") as tmp:
        settings = Settings(database_url=os.environ.get("DATABASE_URL"), data_dir=Path(tmp))
        with database.open_database(settings) as url:
            env = {"DATABASE_URL": url, **SHIPPED}
            stack = Stack(args.workers, Path(tmp), "INFO", env)  # INFO: the access log times calls
            try:
                rows: list[str] = []
                for label, job in (
                    (
                        "watches",
                        lambda: watches(
                            stack, args.idle, args.per_user, args.writes, args.channels, args.hold
                        ),
                    ),
                    ("batch", lambda: batch_create(stack, args.batch_runs, args.profile)),
                    ("streaming", lambda: streaming(stack, url, args.stream_tasks, args.profile)),
                ):
                    if args.only not in (None, label):
                        continue
                    print(f"==> {label}", flush=True)
                    rows += asyncio.run(job())
            finally:
                stack.stop()
    print()
    print(
        f"{args.workers} server processes + Envoy, {os.cpu_count()} cores shared with the "
        f"clients; load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print()
    print("| measure | result |")
    print("| --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
