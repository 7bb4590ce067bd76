"""What each index on `tasks`, and the aggregate triggers, cost a batchCreate of 500.

    .venv/bin/python bench/index_costs.py            # or: make bench-index-costs
    .venv/bin/python bench/index_costs.py --existing 200000 --rounds 8

One scratch database (embedded PostgreSQL, or a new database on DATABASE_URL's server,
dropped at the end) is migrated and loaded with --existing tasks of one user (plus as
many spread over 100 others), so the indexes have a realistic size. Then, round after
round, each variant runs in its own transaction that is rolled back: nothing dropped
("all"), one index dropped (`DROP INDEX` inside the transaction), or the aggregate
triggers disabled. In it, --inserts batches of 500 go through the real batchCreate
statement (`task_batches.INSERT_MANY`: the insert, the change outbox, NOTIFY, the
triggers), each measured as the CPU time of the PostgreSQL backend that ran it
(/proc/<pid>/schedstat: the box's load does not inflate it, as it does wall time). The variants' order rotates every round, so a busy box
spreads over all of them. Prints each variant's median ms per batch and what it saves
against "all" (the index's or the triggers' cost).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

sys.path[:0] = [
    str(Path(__file__).resolve().parents[1]),
    str(Path(__file__).resolve().parents[1] / "generated"),
]
from server import domain  # noqa: E402
from server.config import Settings  # noqa: E402
from server.db import database  # noqa: E402
from server.repositories import task_batches, task_rows  # noqa: E402

TRIGGERS = ("tasks_aggregates_insert", "tasks_aggregates_update", "tasks_aggregates_delete")

_LOAD = """
INSERT INTO tasks (user_id, title, description, completed, priority, due_at, remind_at,
                   category, tags, created_at)
SELECT %(user_id)s, 'task ' || g || ' ' || md5(g::text),
       CASE WHEN g %% 10 = 0 THEN 'buy milk and ' || md5(g::text) ELSE md5(g::text) END,
       g %% 3 = 0, 1 + g %% 4,
       CASE WHEN g %% 5 = 0 THEN NULL ELSE now() + (g %% 100 - 50) * interval '1 day' END,
       CASE WHEN g %% 20 = 0 THEN now() + (g %% 48) * interval '1 hour' END,
       (ARRAY['', 'home', 'work', 'errands'])[1 + g %% 4],
       ARRAY['t' || (g %% 30)], now() - g * interval '1 second'
FROM generate_series(1, %(count)s) AS g
"""


def add_user(conn: psycopg.Connection) -> uuid.UUID:
    user_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO users (id, email, password_hash, name) VALUES (%s, %s, 'x', 'B')",
        (user_id, f"{user_id}@example.com"),
    )
    return user_id


def batch(count: int) -> Jsonb:
    """Items like bench/streams.py's batchCreate: a title and one tag, defaults elsewhere."""
    return Jsonb(
        [
            {
                "id": str(uuid.uuid4()),
                **task_rows.json_item(domain.TaskFields(title=f"b{i}", tags=("x",))),
            }
            for i in range(count)
        ]
    )


def backend_cpu_ns(pid: int) -> int:
    """CPU time the PostgreSQL backend has run, in ns (robust on a busy box, unlike wall time)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def variants(conn: psycopg.Connection) -> list[tuple[str, str | None]]:
    """("all", None), then (index name, the statement that drops it), then the triggers."""
    found = conn.execute(
        "SELECT i.relname, c.conname FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid"
        " LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid"
        " WHERE x.indrelid = 'tasks'::regclass ORDER BY i.relname"
    ).fetchall()
    out: list[tuple[str, str | None]] = [("all", None)]
    for index, constraint in found:
        if constraint:
            out.append((index, f'ALTER TABLE tasks DROP CONSTRAINT "{constraint}" CASCADE'))
        else:
            out.append((index, f'DROP INDEX "{index}"'))
    out.append(
        (
            "aggregate triggers",
            "; ".join(f"ALTER TABLE tasks DISABLE TRIGGER {t}" for t in TRIGGERS),
        )
    )
    return out


def run(url: str, existing: int, rounds: int, inserts: int, size: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        print(
            f"==> loading {existing:,} tasks of one user and {existing:,} of 100 others", flush=True
        )
        user_id = add_user(conn)
        conn.execute(_LOAD, {"user_id": user_id, "count": existing})
        for _ in range(100):
            conn.execute(_LOAD, {"user_id": add_user(conn), "count": existing // 100})
        conn.execute("VACUUM ANALYZE")
        kinds = variants(conn)
        backend = conn.info.backend_pid
        print(
            f"==> {len(kinds)} variants, {rounds} rounds of {inserts} batches of {size}", flush=True
        )
        times: dict[str, list[float]] = {name: [] for name, _ in kinds}
        for r in range(rounds):
            for name, drop in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
                with conn.transaction(force_rollback=True):
                    if drop:
                        conn.execute(drop)
                    for _ in range(inserts):
                        params = {"user_id": user_id, "items": batch(size)}
                        started = backend_cpu_ns(backend)
                        conn.execute(task_batches.INSERT_MANY, params).fetchall()
                        times[name].append((backend_cpu_ns(backend) - started) / 1e6)
            print(f"    round {r + 1} of {rounds} done", flush=True)
    base = statistics.median(times["all"])
    print()
    print(
        f"{existing:,} tasks of the user, {existing:,} of others; {rounds} x {inserts} batches "
        f"of {size} per variant; load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print()
    print("| variant | backend CPU ms per batch, median | p90 | cost in the batch (ms) | share |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, _ in kinds:
        median = statistics.median(times[name])
        p90 = statistics.quantiles(times[name], n=10)[8]
        cost = "" if name == "all" else f"{base - median:.1f}"
        share = "" if name == "all" else f"{(base - median) / base:.0%}"
        label = "nothing dropped" if name == "all" else f"without {name}"
        print(f"| {label} | {median:.1f} | {p90:.1f} | {cost} | {share} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--existing", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--inserts", type=int, default=5, help="batches per variant per round")
    parser.add_argument("--size", type=int, default=500)
    args = parser.parse_args()
    server_url = os.environ.get("DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="todo-index-costs-") as tmp:
        if server_url:
            name = f"perf_streams_index_costs_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(server_url, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            url = psycopg.conninfo.make_conninfo(server_url, dbname=name)
            try:
                database.run_migrations(url)
                run(url, args.existing, args.rounds, args.inserts, args.size)
            finally:
                with psycopg.connect(server_url, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        else:
            settings = Settings(database_url=None, data_dir=Path(tmp))
            with database.open_database(settings) as url:
                database.run_migrations(url)
                run(url, args.existing, args.rounds, args.inserts, args.size)


if __name__ == "__main__":
    main()
