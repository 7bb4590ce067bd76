"""A login flood against a steady authenticated load, side by side in one run.

Reproduces issue 15's table: wrk drives GET /api/v1/users/me/tasks/{id} with 16 connections
(one user), alone and while N connections, each from its own loopback address, keep sending
logins with a wrong password (N = 4, 16, 64 by default). No-flood rows alternate with flood rows, and each flood row is
compared with the mean of the no-flood rows just before and after it, because the machine
is shared and its load drifts. bcrypt runs at its deployed cost (12) and the credential
throttles are raised so high that every attempt reaches bcrypt, as in a flood from
thousands of addresses (so the flooders' addresses only keep their throttle buckets apart).

Per row: get req/s, p50 and p99 (from wrk) and their ratio to the neighbouring no-flood
rows; logins answered (401) per second; refusals (429/503) per second and their p99
latency; the login p50; the CPU (in cores) of the server processes (hashers included) and
Envoy, and the machine's idle cores. The goal for logins is 90% of the idle cores of the
neighbouring no-flood rows divided by the bcrypt time measured here.

A flooding connection that is refused waits as `Retry-After` asks (`--refusal-pause -1`,
the default) or a fixed pause (`--refusal-pause 0`: an attacker who ignores it). Usage:

    make bench-login-flood                      # or: .venv/bin/python bench/login_flood.py
    .venv/bin/python bench/login_flood.py --floods 16 --duration 5

Needs wrk (`apt-get install wrk`). Every figure is from one shared 2-core machine: compare
the ratios within a run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import bcrypt
import httpx
import psutil
from stack import Stack, cpu_seconds

GET_CONNECTIONS = 16
PASSWORD = "benchmark-password"
HUGE = "1000000000"


@dataclasses.dataclass
class Flood:
    """What the flooding connections saw."""

    answered: list[float] = dataclasses.field(default_factory=list)
    refused: list[float] = dataclasses.field(default_factory=list)
    other: int = 0
    retry_after_missing: int = 0


@dataclasses.dataclass
class Row:
    name: str
    get_rps: float
    get_p50_ms: float
    get_p99_ms: float
    get_errors: int
    seconds: float
    flood: Flood | None
    idle_cores: float
    cpu_cores: dict[str, float]


def ms(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0] * 1000
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


async def run_wrk(url: str, seconds: int, token: str) -> tuple[int, float, float, int]:
    cmd = ["wrk", "-t1", f"-c{GET_CONNECTIONS}", f"-d{seconds}s", "--latency", url]
    cmd += ["-H", f"authorization: Bearer {token}"]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
    out = (await proc.communicate())[0].decode()
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0

    def lat(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return total, lat("50%"), lat("99%"), errors


async def flooder(
    http: httpx.AsyncClient, emails: list[str], flood: Flood, stop: asyncio.Event, pause: float
) -> None:
    """One flooding connection: wrong-password logins, one after another."""
    n = 0
    while not stop.is_set():
        n += 1
        body = {"email": emails[n % len(emails)], "password": f"wrong-{uuid.uuid4().hex}"}
        started = time.monotonic()
        try:
            response = await http.post("/api/v1/auth/login", json=body)
        except httpx.HTTPError:
            flood.other += 1
            continue
        elapsed = time.monotonic() - started
        if stop.is_set():
            return
        if response.status_code == 401:
            flood.answered.append(elapsed)
        elif response.status_code in (429, 503):
            flood.refused.append(elapsed)
            retry_after = response.headers.get("retry-after")
            if retry_after is None:
                flood.retry_after_missing += 1
            wait = float(retry_after or 1) if pause < 0 else pause
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
        else:
            flood.other += 1


async def settle(stack: Stack, emails: list[str]) -> None:
    """Wait until the stack answers a login again (queued floods have drained)."""
    async with httpx.AsyncClient(base_url=stack.rest, timeout=60) as http:
        for _ in range(60):
            body = {"email": emails[0], "password": "settling-wrong"}
            if (await http.post("/api/v1/auth/login", json=body)).status_code == 401:
                break
            await asyncio.sleep(0.5)
    await asyncio.sleep(1.0)


async def measure(
    name: str,
    stack: Stack,
    url: str,
    token: str,
    seconds: int,
    floods: int,
    emails: list[str],
    pause: float,
) -> Row:
    flood = Flood() if floods else None
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as clients:
        tasks: list[asyncio.Task[None]] = []
        for i in range(floods):
            assert flood is not None
            # Each flooder from its own loopback address, as a flood comes from many.
            transport = httpx.AsyncHTTPTransport(local_address=f"127.0.{i // 250}.{i % 250 + 2}")
            http = await clients.enter_async_context(
                httpx.AsyncClient(base_url=stack.rest, timeout=60, transport=transport)
            )
            tasks.append(asyncio.create_task(flooder(http, emails, flood, stop, pause)))
        if tasks:
            await asyncio.sleep(1.0)  # let the flood reach bcrypt first
        groups = stack.processes()
        cpu_before = cpu_seconds(groups)
        idle_before = psutil.cpu_times().idle
        started = time.monotonic()
        if flood is not None:
            flood.answered.clear()
            flood.refused.clear()
        total, p50, p99, errors = await run_wrk(url, seconds, token)
        elapsed = time.monotonic() - started
        idle = (psutil.cpu_times().idle - idle_before) / elapsed
        cpu_after = cpu_seconds(groups)
        cpu = {name: (cpu_after[name] - cpu_before[name]) / elapsed for name in cpu_before}
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if floods:
        await settle(stack, emails)
    return Row(name, total / seconds, p50, p99, errors, elapsed, flood, idle, cpu)


def bcrypt_seconds(rounds: int) -> float:
    salt = bcrypt.gensalt(rounds)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        bcrypt.hashpw(b"x" * 44, salt)
        times.append(time.perf_counter() - started)
    return min(times)


def setup(stack: Stack, accounts: int) -> tuple[str, str, list[str]]:
    """Register the get user and the flood's targets; returns (token, task id, emails)."""
    emails = []
    with httpx.Client(base_url=stack.rest, timeout=60) as http:
        for _ in range(accounts + 1):
            email = f"flood-{uuid.uuid4().hex[:10]}@example.com"
            body = {"email": email, "password": PASSWORD, "name": "F"}
            created = http.post("/api/v1/auth/register", json=body)
            created.raise_for_status()
            emails.append(email)
        login = http.post("/api/v1/auth/login", json={"email": emails[0], "password": PASSWORD})
        login.raise_for_status()
        token = login.json()["access_token"]
        task = http.post(
            "/api/v1/users/me/tasks",
            json={"title": "read me"},
            headers={"authorization": f"Bearer {token}"},
        )
        task.raise_for_status()
    return token, task.json()["id"], emails[1:]


def baseline(rows: list[Row], index: int) -> tuple[float, float, float]:
    """Mean req/s, p99 and idle cores of the no-flood rows next to row `index`."""
    near = [rows[i] for i in (index - 1, index + 1) if 0 <= i < len(rows) and not rows[i].flood]
    near = near or [rows[index]]
    return (
        statistics.mean(r.get_rps for r in near),
        statistics.mean(r.get_p99_ms for r in near),
        statistics.mean(r.idle_cores for r in near),
    )


def print_table(rows: list[Row], args: argparse.Namespace, hash_s: float) -> None:
    pause = "as Retry-After asks" if args.refusal_pause < 0 else f"{args.refusal_pause:g} s"
    print()
    print(
        f"{args.workers} server processes + Envoy + PostgreSQL + wrk + this client on "
        f"{os.cpu_count()} shared cores; bcrypt cost {args.rounds} = {hash_s * 1000:.0f} ms "
        f"here; {args.duration} s per row; refused flooders pause {pause}"
        + (f"; {' '.join(args.env)}." if args.env else ".")
    )
    print()
    print(
        "| flood | get req/s | get p50 | get p99 | req/s vs no flood | p99 vs no flood "
        "| logins/s (goal) | refusals/s | refusal p99 | login p50 "
        "| CPU server / Envoy | idle cores |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for index, row in enumerate(rows):
        flood = row.flood
        rps, p99, idle = baseline(rows, index)
        goal = 0.9 * idle / hash_s
        logins = f"{len(flood.answered) / row.seconds:.1f} ({goal:.1f})" if flood else "—"
        refusals = f"{len(flood.refused) / row.seconds:.1f}" if flood else "—"
        refusal_p99 = f"{ms(flood.refused, 99):.0f} ms" if flood and flood.refused else "—"
        login_p50 = f"{ms(flood.answered, 50):.0f} ms" if flood and flood.answered else "—"
        versus = f"{row.get_rps / rps - 1:+.0%} | {row.get_p99_ms / p99:.2f}x" if flood else "— | —"
        cpu = " / ".join(f"{row.cpu_cores[k]:.2f}" for k in ("server", "envoy"))
        print(
            f"| {row.name} | {row.get_rps:,.0f} | {row.get_p50_ms:.1f} ms | "
            f"{row.get_p99_ms:.1f} ms | {versus} | {logins} | {refusals} | "
            f"{refusal_p99} | {login_p50} | {cpu} | {row.idle_cores:.2f} |"
        )
    problems = [
        f"{row.name}: {row.get_errors} get errors, "
        f"{row.flood.other if row.flood else 0} unexpected login answers, "
        f"{row.flood.retry_after_missing if row.flood else 0} refusals without Retry-After"
        for row in rows
        if row.get_errors or (row.flood and (row.flood.other or row.flood.retry_after_missing))
    ]
    if problems:
        print()
        print("Problems: " + "; ".join(problems))


async def run(args: argparse.Namespace, work: Path) -> None:
    env = {
        "TODO_BCRYPT_ROUNDS": str(args.rounds),
        "TODO_THROTTLE_PER_ADDRESS": HUGE,
        "TODO_THROTTLE_PER_ACCOUNT_ADDRESS": HUGE,
        "TODO_THROTTLE_PER_ACCOUNT": HUGE,
        **dict(item.split("=", 1) for item in args.env),
    }
    print(f"==> starting the stack ({args.workers} workers + Envoy)", flush=True)
    try:
        stack = Stack(args.workers, work, args.log_level, env)
    except RuntimeError:
        sys.exit((work / "stack.log").read_text()[-3000:])
    try:
        token, task_id, emails = setup(stack, 8)
        url = f"{stack.rest}/api/v1/users/me/tasks/{task_id}"
        hash_s = bcrypt_seconds(args.rounds)
        plan = [("no flood", 0)]
        for n in args.floods:
            plan += [(f"{n} flooding", n), ("no flood", 0)]
        rows = []
        for name, floods in plan:
            print(f"==> {name} ({args.duration}s)", flush=True)
            rows.append(
                await measure(
                    name, stack, url, token, args.duration, floods, emails, args.refusal_pause
                )
            )
        print_table(rows, args, hash_s)
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per row (default 10)")
    parser.add_argument(
        "--floods",
        type=int,
        nargs="+",
        default=[4, 16, 64],
        help="flooding connections, one row each (default 4 16 64)",
    )
    parser.add_argument("--rounds", type=int, default=12, help="bcrypt cost (default 12)")
    parser.add_argument(
        "--refusal-pause",
        type=float,
        default=-1,
        help="seconds a refused flooder waits; -1 (default): as Retry-After says",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra server setting, e.g. --env TODO_HASH_NICENESS=0 (repeatable)",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="server processes")
    parser.add_argument(
        "--log-level", default="INFO", help="server log level (default INFO, as deployed)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="todo-flood-") as tmp:
        os.chmod(tmp, 0o755)  # the embedded PostgreSQL runs as its own user when we are root
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
