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
import contextlib
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
from stack import AS_SHIPPED, REPO, Stack, cpu_delta, cpu_snapshot
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
    ratio: float | None = None
    """With several rounds: the median of the per-round ratios to the trivial RPC."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def combine(per_round: list[list[Result]]) -> list[Result]:
    """One Result per scenario from several rounds: medians (CPU: per request overall)."""
    combined = []
    for index, first in enumerate(per_round[0]):
        runs = [results[index] for results in per_round]
        requests = sum(r.requests for r in runs)
        cpu = {
            key: sum(r.cpu_ms[key] * r.requests for r in runs) / max(requests, 1)
            for key in first.cpu_ms
        }
        ratios = [results[index].rps / results[0].rps for results in per_round]
        combined.append(
            Result(
                first.name,
                requests,
                sum(r.seconds for r in runs),
                statistics.median(r.p50_ms for r in runs),
                statistics.median(r.p99_ms for r in runs),
                sum(r.errors for r in runs),
                cpu,
                statistics.median(ratios),
            )
        )
    return combined


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


def measure(name: str, stack: Stack, seconds: int, load) -> Result:
    before = cpu_snapshot(stack)
    started = time.monotonic()
    total, p50, p99, errors = load()
    elapsed = time.monotonic() - started
    used = cpu_delta(before, cpu_snapshot(stack))
    cpu = {k: used[k] * 1000 / max(total, 1) for k in used}
    return Result(name, total, min(elapsed, float(seconds)), p50, p99, errors, cpu)


def run_h2load(
    url: str, seconds: int, conns: int, streams: int, body: Path, headers: dict[str, str]
) -> tuple[int, float, float, int]:
    """One h2load client: `conns` connections of `streams` streams each."""
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        cmd = ["h2load", "-t1", f"-c{conns}", f"-m{streams}", f"-D{seconds}", "-d", str(body)]
        cmd += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
        cmd += ["--log-file", log.name, url]
        for key, value in headers.items():
            cmd += ["-H", f"{key}: {value}"]
        subprocess.run(cmd, capture_output=True, text=True, check=True)
        lines = [ln.split("\t") for ln in Path(log.name).read_text().splitlines() if ln]
    latencies = [int(parts[2]) / 1000 for parts in lines]
    errors = sum(1 for parts in lines if parts[1] != "200")
    return len(lines), percentile(latencies, 50), percentile(latencies, 99), errors


def setup_one_user(stack: Stack, tasks: int) -> tuple[str, str, str]:
    """Register a user, create some tasks; returns (token, user id, a task id)."""
    with httpx.Client(base_url=stack.rest, timeout=30) as http:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        user = http.post(
            "/api/v1/auth/register", json={"email": email, "password": "benchmark1", "name": "B"}
        ).json()
        token = http.post(
            "/api/v1/auth/login", json={"email": email, "password": "benchmark1"}
        ).json()["access_token"]
        ids = create_tasks(http, token, tasks)
    return token, user["id"], ids[len(ids) // 2]


@dataclasses.dataclass
class BenchUser:
    """A benchmark user, the process Envoy sends its calls to, and its tasks."""

    token: str
    port: int
    tasks: list[str]


def setup(stack: Stack, per_process: int, tasks: int) -> list[BenchUser]:
    """Register users until each server process serves `per_process` of them.

    With the per-user limit on, Envoy hashes each user onto one process; picking the
    users so that each process gets as many keeps the load balanced, as many users
    would. Each user gets `tasks` tasks (batchCreate, 500 at a time).
    """
    ports = sorted(stack.upstream_requests())
    users: list[BenchUser] = []
    counts = dict.fromkeys(ports, 0)
    with httpx.Client(base_url=stack.rest, timeout=60) as http:
        for _ in range(per_process * len(ports) * 6):
            if all(n >= per_process for n in counts.values()):
                break
            body = {"email": f"b-{uuid.uuid4().hex[:10]}@example.com", "password": "benchmark1"}
            http.post("/api/v1/auth/register", json={**body, "name": "B"}).raise_for_status()
            token = http.post("/api/v1/auth/login", json=body).json()["access_token"]
            headers = {"authorization": f"Bearer {token}"}
            before = stack.upstream_requests()
            for _ in range(3):
                http.get("/api/v1/users/me/tasks?page_size=1", headers=headers).raise_for_status()
            after = stack.upstream_requests()
            port = max(ports, key=lambda p: after.get(p, 0) - before.get(p, 0))
            if counts[port] >= per_process:
                continue
            counts[port] += 1
            users.append(BenchUser(token, port, create_tasks(http, token, tasks)))
    if not all(n >= per_process for n in counts.values()):
        raise RuntimeError(f"could not balance the users over the processes: {counts}")
    return users


def create_tasks(http: httpx.Client, token: str, count: int) -> list[str]:
    """`count` new tasks of the token's user (batchCreate); their ids."""
    ids: list[str] = []
    headers = {"authorization": f"Bearer {token}"}
    while len(ids) < count:
        n = min(500, count - len(ids))
        body = {"tasks": [{"title": f"task {len(ids) + i}"} for i in range(n)]}
        reply = http.post("/api/v1/users/me/tasks:batchCreate", json=body, headers=headers)
        reply.raise_for_status()
        ids += [task["id"] for task in reply.json()["tasks"]]
    return ids


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


def lua_list(values: list[str]) -> str:
    return "{" + ",".join(f'"{v}"' for v in values) + "}"


def wrk_script(
    path: Path, method: str, tokens: list[str], paths: list[str], body: str | None
) -> Path:
    """A wrk script sending request i as (tokens[i], paths[i]) round the lists."""
    headers = '["authorization"] = "Bearer " .. tokens[k]'
    if body is not None:
        headers += ', ["content-type"] = "application/json"'
    path.write_text(
        f"tokens = {lua_list(tokens)}\npaths = {lua_list(paths)}\nn = 0\n"
        "request = function()\n"
        "  local k = n % #tokens + 1\n"
        "  n = n + 1\n"
        f"  local headers = {{{headers}}}\n"
        f'  return wrk.format("{method}", paths[k], headers, '
        + (f"'{body}'" if body is not None else "nil")
        + ")\n"
        "end\n"
    )
    return path


def interleave(users: list[BenchUser], take: int) -> tuple[list[str], list[str]]:
    """(tokens, task ids): the first `take` tasks of every user, one user after another."""
    tokens, ids = [], []
    for i in range(take):
        for user in users:
            tokens.append(user.token)
            ids.append(user.tasks[i])
    return tokens, ids


def grpc_clients(users: list[BenchUser], per_process: int) -> list[BenchUser]:
    """`per_process` users of each process: one h2load client each (balanced)."""
    chosen: list[BenchUser] = []
    for port in sorted({u.port for u in users}):
        chosen += [u for u in users if u.port == port][:per_process]
    return chosen


def scenarios(stack: Stack, users: list[BenchUser], seconds: int, conns: int, work: Path):
    url = f"{stack.rest}/api/v1/users/me/tasks"
    api = "/api/v1/users/me/tasks"
    envoy = f"http://127.0.0.1:{stack.envoy_port}"
    direct = f"http://127.0.0.1:{stack.base}"
    clients = grpc_clients(users, 2)
    per_client = max(conns // len(clients), 1)

    def frames(name: str, build) -> list[Path]:
        paths = []
        for i, user in enumerate(clients):
            path = work / f"{name}-{i}.bin"
            path.write_bytes(grpc_frame(build(user).SerializeToString()))
            paths.append(path)
        return paths

    get_bodies = frames(
        "get", lambda u: task_service_pb2.GetTaskRequest(user_id="me", task_id=u.tasks[0])
    )
    create_bodies = frames(
        "create", lambda u: task_service_pb2.CreateTaskRequest(user_id="me", title="bench task")
    )
    health_bodies = frames("health", lambda u: health_pb2.HealthCheckRequest())
    tokens = [u.token for u in users]
    first_tokens, first_ids = interleave(users, 1)
    get_lua = wrk_script(
        work / "get.lua", "GET", first_tokens, [f"{api}/{i}" for i in first_ids], None
    )
    list_lua = wrk_script(
        work / "list.lua", "GET", tokens, [f"{api}?page_size=20"] * len(tokens), None
    )
    upd_tokens, upd_ids = interleave(users, 50)
    update_lua = wrk_script(
        work / "update.lua",
        "PATCH",
        upd_tokens,
        [f"{api}/{i}" for i in upd_ids],
        '{"title": "updated task", "priority": "PRIORITY_HIGH"}',
    )
    create_lua = wrk_script(
        work / "create.lua", "POST", tokens, [api] * len(tokens), '{"title": "bench task"}'
    )

    def delete_load():
        # A fresh pool of tasks to delete (not timed): each request deletes another task.
        per_user = max(1, (seconds * 3000) // len(users))
        with httpx.Client(base_url=stack.rest, timeout=120) as http:
            pool = [
                BenchUser(u.token, u.port, create_tasks(http, u.token, per_user)) for u in users
            ]
        del_tokens, del_ids = interleave(pool, per_user)
        script = wrk_script(
            work / "delete.lua", "DELETE", del_tokens, [f"{api}/{i}" for i in del_ids], None
        )
        return lambda: run_wrk(url, seconds, conns, {}, script)

    def h2(target: str, bodies: list[Path], auth: bool):
        return lambda: run_h2load_many(
            target,
            seconds,
            per_client,
            bodies,
            [{"authorization": f"Bearer {u.token}"} if auth else {} for u in clients],
        )

    return [
        (
            "trivial RPC: gRPC Health/Check via Envoy",
            h2(f"{envoy}/grpc.health.v1.Health/Check", health_bodies, False),
        ),
        ("get-task: REST via Envoy", lambda: run_wrk(url, seconds, conns, {}, get_lua)),
        ("get-task: gRPC via Envoy", h2(f"{envoy}/todo.v1.TaskService/GetTask", get_bodies, True)),
        (
            "get-task: gRPC direct, 1 process",
            h2(f"{direct}/todo.v1.TaskService/GetTask", get_bodies, True),
        ),
        (
            "list page of 20 (of 1,000): REST via Envoy",
            lambda: run_wrk(url, seconds, conns, {}, list_lua),
        ),
        ("update-task: REST via Envoy", lambda: run_wrk(url, seconds, conns, {}, update_lua)),
        ("create-task: REST via Envoy", lambda: run_wrk(url, seconds, conns, {}, create_lua)),
        (
            "create-task: gRPC via Envoy",
            h2(f"{envoy}/todo.v1.TaskService/CreateTask", create_bodies, True),
        ),
        ("delete-task: REST via Envoy", delete_load),
    ]


def run_h2load_many(
    url: str, seconds: int, streams: int, bodies: list[Path], headers: list[dict[str, str]]
) -> tuple[int, float, float, int]:
    """One h2load client (1 connection, `streams` streams) per body, all at once."""
    procs, logs = [], []
    for body, extra in zip(bodies, headers, strict=True):
        log = tempfile.NamedTemporaryFile(suffix=".log")  # noqa: SIM115 - closed below
        logs.append(log)
        cmd = ["h2load", "-t1", "-c1", f"-m{streams}", f"-D{seconds}", "-d", str(body)]
        cmd += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
        for key, value in extra.items():
            cmd += ["-H", f"{key}: {value}"]
        cmd += ["--log-file", log.name, url]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError(
                f"h2load failed: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
    lines = []
    for log in logs:
        lines += [ln.split("\t") for ln in Path(log.name).read_text().splitlines() if ln]
        log.close()
    latencies = [int(parts[2]) / 1000 for parts in lines]
    errors = sum(1 for parts in lines if parts[1] != "200")
    return len(lines), percentile(latencies, 50), percentile(latencies, 99), errors


TARGETS = {
    "get-task: REST via Envoy": (0.55, 0.60),
    "get-task: gRPC via Envoy": (0.65, None),
    "create-task: REST via Envoy": (0.33, 0.90),
    "update-task: REST via Envoy": (None, 0.90),
    "delete-task: REST via Envoy": (None, 0.90),
    "list page of 20 (of 1,000): REST via Envoy": (None, 0.90),
}


def print_table(results: list[Result], args: argparse.Namespace, stack: Stack, label: str) -> None:
    env = stack.env
    print()
    print(
        f"{label}{args.workers} server processes + Envoy (--concurrency 1), "
        f"{args.connections} concurrent requests, {args.duration}s each, {args.rounds} round(s) "
        "(medians), "
        f"{os.cpu_count()} cores shared with the load generator and PostgreSQL; "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(
        f"As shipped: access log on (server log level {env['TODO_LOG_LEVEL']}, Envoy's JSON "
        f"access log), metrics on (port {env['TODO_METRICS_PORT']}), per-user rate limit "
        f"{'ON, raised to ' + env['TODO_USER_RATE_LIMIT'] + '/min, burst ' + env['TODO_USER_RATE_BURST'] if env['TODO_USER_RATE_LIMIT'] != '0' else 'OFF'}"
        f", tracing at its default (TODO_TRACE_SAMPLE_PERCENT "
        f"{env.get('TODO_TRACE_SAMPLE_PERCENT', 'default')}, no OTLP endpoint"
        f"{': ' + env['TODO_OTLP_ENDPOINT'] if env.get('TODO_OTLP_ENDPOINT') else ''})"
    )
    print()
    print(
        "| scenario | req/s | ratio to trivial | p50 ms | p99 ms | errors "
        "| server CPU ms/req | Envoy CPU ms/req | server+Envoy | PostgreSQL CPU ms/req "
        "| target ratio / server+Envoy |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    trivial = results[0].rps
    for r in results:
        ratio, cpu = TARGETS.get(r.name, (None, None))
        target = " / ".join([f"≥ {ratio:.2f}" if ratio else "-", f"≤ {cpu:.2f} ms" if cpu else "-"])
        print(
            f"| {r.name} | {r.rps:,.0f} | {ratio_of(r, trivial):.2f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {r.errors} | {r.cpu_ms['server']:.3f} | {r.cpu_ms['envoy']:.3f} | "
            f"{r.cpu_ms['server'] + r.cpu_ms['envoy']:.3f} | {r.cpu_ms['postgres']:.3f} | {target} |"
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
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every scenario this many times (medians; alternating A/B order)",
    )
    parser.add_argument(
        "--users-per-process", type=int, default=8, help="benchmark users per process (default 8)"
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="CHECKOUT",
        help="also start the stack of another checkout (e.g. main's worktree) and run every "
        "scenario on both, alternating which goes first (A/B, B/A, ...)",
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="extra server setting"
    )
    parser.add_argument(
        "--b-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --compare: a server setting of the second stack only (the same checkout "
        "with `--compare .`: an A/B of one setting)",
    )
    args = parser.parse_args()
    for tool in ("wrk", "h2load"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install nghttp2-client wrk")
    extra = {**AS_SHIPPED, **dict(item.split("=", 1) for item in args.env)}
    with contextlib.ExitStack() as cleanup:
        runs: list[tuple[str, Stack, list]] = []
        checkouts = [("this checkout", REPO, extra)]
        if args.compare:
            b_env = {**extra, **dict(item.split("=", 1) for item in args.b_env)}
            b_label = " ".join([str(args.compare), *args.b_env])
            checkouts.append((b_label, args.compare.resolve(), b_env))
        for label, repo, env in checkouts:
            work = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="todo-bench-")))
            print(f"==> starting the stack of {label} ({args.workers} workers + Envoy)", flush=True)
            stack = start_stack(args.workers, work, args.log_level, env, repo)
            cleanup.callback(stack.stop)
            users = setup(stack, args.users_per_process, 1000)
            check_grpc(f"127.0.0.1:{stack.envoy_port}", users[0].token, users[0].tasks[0])
            check_grpc(f"127.0.0.1:{stack.base}", users[0].token, users[0].tasks[0])
            loads = scenarios(stack, users, args.duration, args.connections, work)
            runs.append((label, stack, loads))
        rounds: dict[str, list[list[Result]]] = {label: [] for label, _, _ in runs}
        for round_ in range(args.rounds):
            for label, _, _ in runs:
                rounds[label].append([])
            for index in range(len(runs[0][2])):
                order = runs if (index + round_) % 2 == 0 else runs[::-1]
                for label, stack, loads in order:
                    name, load = loads[index]
                    if name.startswith("delete"):
                        load = load()  # builds its pool of tasks first (not timed)
                    print(f"==> round {round_ + 1}, {label}: {name} ({args.duration}s)", flush=True)
                    rounds[label][-1].append(measure(name, stack, args.duration, load))
        results = {label: combine(per_round) for label, per_round in rounds.items()}
        for label, stack, _ in runs:
            print_table(results[label], args, stack, f"{label}: " if args.compare else "")
        if args.compare:
            print_comparison(results, [label for label, _, _ in runs])


def ratio_of(result: Result, trivial_rps: float) -> float:
    """The median per-round ratio to the trivial RPC, or this run's."""
    return result.ratio if result.ratio is not None else result.rps / trivial_rps


def start_stack(workers: int, work: Path, log_level: str, env: dict[str, str], repo: Path) -> Stack:
    """A stack, tried 3 times: on a shared machine another process may take one of the free
    ports it picked before it binds them."""
    for attempt in range(3):
        folder = work / f"try-{attempt}"
        folder.mkdir()
        try:
            return Stack(workers, folder, log_level, env, repo=repo)
        except RuntimeError as error:
            print(f"==> the stack did not start ({str(error)[:120]}...): again", flush=True)
    raise RuntimeError("the stack did not start three times")


def print_comparison(results: dict[str, list[Result]], labels: list[str]) -> None:
    """Side by side: ratio to trivial and server+Envoy CPU per request of each checkout."""
    a, b = labels
    print()
    print(
        f"| scenario | ratio: {b} | ratio: {a} | server+Envoy ms: {b} | {a} "
        f"| PostgreSQL ms: {b} | {a} |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    ta, tb = results[a][0].rps, results[b][0].rps
    for ra, rb in zip(results[a], results[b], strict=True):
        print(
            f"| {ra.name} | {ratio_of(rb, tb):.2f} | {ratio_of(ra, ta):.2f} | "
            f"{rb.cpu_ms['server'] + rb.cpu_ms['envoy']:.3f} | "
            f"{ra.cpu_ms['server'] + ra.cpu_ms['envoy']:.3f} | "
            f"{rb.cpu_ms['postgres']:.3f} | {ra.cpu_ms['postgres']:.3f} |"
        )


if __name__ == "__main__":
    main()
