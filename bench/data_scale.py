"""Query latency at scale: 5M tasks, 1M of them one user's.

Loads a scratch database (generated server-side with generate_series, in
chunks, with progress), then times each query shape through the real
repository and connection pool (so "server time" = what a server process
spends waiting for and mapping the database's answer), and prints p50/p99
per shape plus a one-line EXPLAIN summary.

    .venv/bin/python bench/data_scale.py                 # embedded PostgreSQL in a temp dir
    DATABASE_URL=postgresql://postgres@127.0.0.1/postgres .venv/bin/python bench/data_scale.py
    .venv/bin/python bench/data_scale.py --big 100000 --others 400000   # a quick run

The scratch database is dropped at the end (--keep keeps it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import re
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "generated")]

from server import domain  # noqa: E402
from server.config import Settings  # noqa: E402
from server.db import database, executor  # noqa: E402
from server.db import pool as db_pool  # noqa: E402
from server.repositories.tasks import PgTasksRepository  # noqa: E402
from server.services import queries  # noqa: E402

CHUNK = 100_000
FILL = """
INSERT INTO tasks (user_id, title, description, completed, completed_at, priority, due_at,
                   remind_at, category, tags, created_at, updated_at)
SELECT u.id,
       (ARRAY['Buy', 'Call', 'Write', 'Fix', 'Plan', 'Read'])[1 + g %% 6] || ' item ' || g,
       CASE WHEN g %% 10 = 0 THEN 'remember the milk ' || g ELSE '' END,
       g %% 3 = 0,
       CASE WHEN g %% 3 = 0 THEN now() - (g %% 40) * interval '1 day' END,
       1 + g %% 4,
       CASE WHEN g %% 4 = 0 THEN NULL ELSE now() + ((g %% 200) - 100) * interval '1 day' END,
       CASE WHEN g %% 25 = 0 THEN now() + (g %% 72) * interval '1 hour' END,
       (ARRAY['', 'home', 'work', 'errands', 'health'])[1 + g %% 5],
       CASE WHEN g %% 1000 = 0 THEN ARRAY['rare', 't' || (g %% 30)]
            ELSE ARRAY['t' || (g %% 30)] END,
       now() - g * interval '1 second',
       now() - g * interval '1 second'
FROM generate_series(%(start)s::int, %(stop)s::int) AS g
JOIN LATERAL (SELECT %(big)s::uuid AS id WHERE %(is_big)s
              UNION ALL
              SELECT ('00000000-0000-4000-8000-'
                      || lpad(to_hex(1 + g %% %(others)s), 12, '0'))::uuid
              WHERE NOT %(is_big)s) AS u ON true
"""


def progress(label: str, done: int, total: int, started: float) -> None:
    width = 30
    filled = int(width * done / total)
    rate = done / max(time.monotonic() - started, 1e-9)
    print(
        f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} ({rate:,.0f}/s)",
        end="" if done < total else "\n",
        flush=True,
    )


def load(url: str, big_user: uuid.UUID, big: int, others: int, other_users: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (id, email, name, password_hash)"
            " SELECT %s, 'big@example.com', 'Big', 'x'",
            (big_user,),
        )
        conn.execute(
            "INSERT INTO users (id, email, name, password_hash)"
            " SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,"
            " 'u' || g || '@example.com', 'U', 'x' FROM generate_series(1, %s) AS g",
            (other_users,),
        )
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasks'"
            " AND indexname <> 'pk_tasks'"
        ).fetchall()
        for name, _ in indexes:  # far faster to load without them, then build each once
            conn.execute(f'DROP INDEX "{name}"')
        started = time.monotonic()
        total = big + others
        done = 0
        for is_big, count in ((True, big), (False, others)):
            for start in range(1, count + 1, CHUNK):
                stop = min(start + CHUNK - 1, count)
                conn.execute(
                    FILL,
                    {
                        "start": start,
                        "stop": stop,
                        "big": big_user,
                        "is_big": is_big,
                        "others": other_users,
                    },
                )
                done += stop - start + 1
                progress("loading tasks", done, total, started)
        started = time.monotonic()
        for i, (_, definition) in enumerate(indexes, 1):
            conn.execute(definition)
            progress("building indexes", i, len(indexes), started)
        print("==> VACUUM ANALYZE (tasks and the aggregates its triggers keep)", flush=True)
        conn.execute("VACUUM ANALYZE")


def scratch_name() -> str:
    """A scratch database name no other run on a shared server can take.

    It names the checkout (each helper works in its own), the host and the process, then
    a random part: two runs at once, from one checkout or several, never meet.
    """
    checkout = re.sub(r"[^a-z0-9]+", "_", REPO.name.lower()).strip("_")[:20]
    host = re.sub(r"[^a-z0-9]+", "_", socket.gethostname().lower()).strip("_")[:12]
    return f"todo_scale_{checkout}_{host}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def scratch_database(keep: bool) -> Iterator[str]:
    settings_url = os.environ.get("DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="todo-scale-") as tmp:
        settings = Settings(database_url=settings_url, data_dir=Path(tmp))
        with database.open_database(settings) as server_url:
            name = scratch_name()
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            print(f"==> scratch database {name}", flush=True)
            url = psycopg.conninfo.make_conninfo(server_url, dbname=name)
            try:
                yield url
            finally:
                if not keep:
                    with psycopg.connect(server_url, autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


async def measure(
    label: str, runs: int, call: Callable[[], Awaitable[object]]
) -> tuple[float, float]:
    for _ in range(3):
        await call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return cuts[49], cuts[98]


async def explain(pool: db_pool.Pool, statement: str, params: Any) -> str:
    async with pool.connection() as conn:
        cur = await conn.execute("EXPLAIN (FORMAT JSON) " + statement, params)
        row = await cur.fetchone()
    assert row is not None
    nodes: list[str] = []

    def walk(plan: dict[str, Any]) -> None:
        name = plan["Node Type"]
        if "Index Name" in plan:
            name += f" {plan['Index Name']}"
        elif "Relation Name" in plan:
            name += f" {plan['Relation Name']}"
        nodes.append(name)
        for child in plan.get("Plans", []):
            walk(child)

    walk(row[0][0]["Plan"])
    return " > ".join(dict.fromkeys(nodes))


class Capturing(executor.Executor):
    """Runs statements as usual and remembers the last one, for EXPLAIN."""

    last: tuple[Any, Any] = ("", None)

    @staticmethod
    def _remember(query: Any, params: Any) -> None:
        if not str(query).lstrip().startswith("EXPLAIN"):  # the count estimate is not the shape
            Capturing.last = (query, params)

    async def fetch_all(
        self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool = False
    ) -> list[tuple[Any, ...]]:
        self._remember(query, params)
        return await super().fetch_all(query, params, prepare=prepare, binary=binary)

    async def fetch_one(
        self, query: Any, params: Any = None, *, prepare: bool | None = None
    ) -> tuple[Any, ...] | None:
        self._remember(query, params)
        return await super().fetch_one(query, params, prepare=prepare)


async def run_shapes(
    url: str, user: uuid.UUID, runs: int, only: list[str]
) -> list[tuple[str, float, float, str]]:
    pool = db_pool.make_pool(url, Settings(database_url=url, db_pool_min=1, db_pool_max=2))
    await pool.open(wait=True)
    results = []

    async def repo_call(fn: Callable[[PgTasksRepository], Awaitable[object]]) -> object:
        async with pool.connection() as conn:
            return await fn(PgTasksRepository(Capturing(conn)))

    now = dt.datetime.now(dt.UTC)
    cursor = None
    walk_pages = not only or any("page 1,000 by token".startswith(o) for o in only)
    if walk_pages:
        print("==> walking to page 1,000 (50 per page)", flush=True)
    for _ in range(999 if walk_pages else 0):
        page = await repo_call(lambda r, c=cursor: r.list_page(user, domain.TaskQuery(), 50, c))  # type: ignore[misc]
        cursor = page.next_cursor  # type: ignore[attr-defined]
    shapes: dict[str, Callable[[PgTasksRepository], Awaitable[object]]] = {
        "first page": lambda r: r.list_page(user, domain.TaskQuery(), 50, None),
        "page 1,000 by token": lambda r: r.list_page(user, domain.TaskQuery(), 50, cursor),
        "completed=true": lambda r: r.list_page(
            user, domain.TaskQuery(queries.make_filter(completed=True)), 50, None
        ),
        "priority=URGENT": lambda r: r.list_page(
            user,
            domain.TaskQuery(queries.make_filter(priorities=[domain.Priority.URGENT])),
            50,
            None,
        ),
        "category=errands": lambda r: r.list_page(
            user, domain.TaskQuery(queries.make_filter(category="errands")), 50, None
        ),
        "tag=t7 (1 in 30)": lambda r: r.list_page(
            user, domain.TaskQuery(queries.make_filter(tags=["t7"])), 50, None
        ),
        "tag=rare (1 in 1000)": lambda r: r.list_page(
            user, domain.TaskQuery(queries.make_filter(tags=["rare"])), 50, None
        ),
        "due in the next 7 days": lambda r: r.list_page(
            user,
            domain.TaskQuery(
                queries.make_filter(due_after=now, due_before=now + dt.timedelta(days=7))
            ),
            50,
            None,
        ),
        "overdue=true": lambda r: r.list_page(
            user, domain.TaskQuery(queries.make_filter(overdue=True)), 50, None
        ),
        "q=milk 12345 (rare)": lambda r: r.list_page(
            user, domain.TaskQuery(queries.make_filter(q="milk 12345")), 50, None
        ),
        "q=milk (1 in 10)": lambda r: r.list_page(
            user, domain.TaskQuery(queries.make_filter(q="milk")), 50, None
        ),
        "order_by=due_at": lambda r: r.list_page(
            user, domain.TaskQuery(order=queries.parse_order_by("due_at")), 50, None
        ),
        "stats": lambda r: r.stats(user, domain.TaskFilter()),
        "tags": lambda r: r.tags(user),
        "reminders (24 h)": lambda r: r.reminders(user, dt.timedelta(days=1), 1000),
    }
    for label, fn in shapes.items():
        if only and not any(label.startswith(o) for o in only):
            continue
        p50, p99 = await measure(label, runs, lambda fn=fn: repo_call(fn))  # type: ignore[misc]
        plan = await explain(pool, *Capturing.last)
        print(f"  {label:<26} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms", flush=True)
        results.append((label, p50, p99, plan))
    await pool.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--big", type=int, default=1_000_000, help="tasks of the measured user")
    parser.add_argument("--others", type=int, default=4_000_000, help="tasks of everyone else")
    parser.add_argument("--other-users", type=int, default=4_000, help="how many other users")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per shape")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--existing",
        metavar="URL",
        help="time the shapes on a database an earlier --keep run loaded (no load, no drop):"
        " an A/B of two checkouts, or of a migration, on the same rows",
    )
    parser.add_argument(
        "--only",
        type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
        default=[],
        help="time only the shapes whose label starts with one of these (comma-separated)",
    )
    args = parser.parse_args()
    if args.existing:
        with psycopg.connect(args.existing) as conn:
            row = conn.execute("SELECT id FROM users WHERE email = 'big@example.com'").fetchone()
        assert row is not None, "no big@example.com: not a database this bench loaded"
        print(f"==> timing each shape ({args.runs} runs after 3 warm-ups)", flush=True)
        results = asyncio.run(run_shapes(args.existing, row[0], args.runs, args.only))
        report(args, results)
        return
    big_user = uuid.uuid4()
    with scratch_database(args.keep) as url:
        print("==> migrating", flush=True)
        database.run_migrations(url)
        load(url, big_user, args.big, args.others, args.other_users)
        print(f"==> timing each shape ({args.runs} runs after 3 warm-ups)", flush=True)
        results = asyncio.run(run_shapes(url, big_user, args.runs, args.only))
    report(args, results)


def report(args: argparse.Namespace, results: list[tuple[str, float, float, str]]) -> None:
    """The results as a Markdown table, with the sizes and the load average."""
    print()
    sizes = (
        "sizes of the --existing database"
        if args.existing
        else (f"{args.big:,} tasks for the user, {args.others:,} for {args.other_users:,} others")
    )
    load1, load5, _ = os.getloadavg()
    print(f"{sizes}; load average {load1:.1f} / {load5:.1f} (1 / 5 min) at the end")
    print()
    print("| shape | p50 ms | p99 ms | plan |")
    print("| --- | ---: | ---: | --- |")
    for label, p50, p99, plan in results:
        print(f"| {label} | {p50:.2f} | {p99:.2f} | {plan} |")


if __name__ == "__main__":
    main()
