"""`seed`: demo users and tasks, idempotently, with progress.

Users are `demo1@example.com` ... `demoN@example.com`, all with one password (hashed
once, at the configured bcrypt cost). Each ends up with at least `--tasks` tasks: a
second run adds only what is missing, so `seed --users 3 --tasks 1000000` after
`seed --users 3` tops the same accounts up. Tasks are generated server-side
(`generate_series`) in chunks, each committed on its own; they are written without
watch events, as a bulk load would be.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg

from server.auth import passwords
from server.auth.hash_pool import HashPool
from server.cli.progress import Progress
from server.config import ConfigError, Settings
from server.db import database

OK = 0
CHUNK = 20_000
"""Rows per INSERT statement (one transaction each)."""
SHOWN_LOGINS = 10

INSERT_USERS = """
INSERT INTO users (email, name, password_hash)
SELECT 'demo' || g || '@example.com', 'Demo user ' || g, %(hash)s
FROM generate_series(%(start)s::int, %(stop)s::int) AS g
ON CONFLICT (email) DO NOTHING
"""
COUNT_TASKS = """
SELECT u.id, (SELECT count(*) FROM tasks AS t WHERE t.user_id = u.id)
FROM users AS u WHERE u.email = ANY(%(emails)s) ORDER BY u.created_at, u.email
"""
INSERT_TASKS = """
INSERT INTO tasks (user_id, title, description, completed, completed_at, priority, due_at,
                   remind_at, category, tags, created_at, updated_at)
SELECT r.user_id,
       (ARRAY['Buy', 'Call', 'Write', 'Fix', 'Plan', 'Read'])[1 + g %% 6] || ' item ' || g,
       CASE WHEN g %% 10 = 0 THEN 'remember the milk ' || g ELSE '' END,
       g %% 3 = 0,
       CASE WHEN g %% 3 = 0 THEN now() - (g %% 40) * interval '1 day' END,
       1 + g %% 4,
       CASE WHEN g %% 4 = 0 THEN NULL ELSE now() + ((g %% 200) - 100) * interval '1 day' END,
       CASE WHEN g %% 25 = 0 THEN now() + (g %% 72) * interval '1 hour' END,
       (ARRAY['', 'home', 'work', 'errands', 'health'])[1 + g %% 5],
       ARRAY['t' || (g %% 30)],
       now() - g * interval '1 second',
       now() - g * interval '1 second'
FROM unnest(%(users)s::uuid[], %(starts)s::int[], %(stops)s::int[]) AS r(user_id, start, stop)
CROSS JOIN LATERAL generate_series(r.start, r.stop) AS g
"""


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `seed` on the CLI's subparsers."""
    seed = commands.add_parser(
        "seed", help="create demo users and tasks (idempotent)", description=__doc__
    )
    seed.add_argument("--users", type=_count, default=3, help="demo accounts (default 3)")
    seed.add_argument(
        "--tasks", type=_count, default=25, help="tasks each account has at least (default 25)"
    )
    seed.add_argument("--password", default="demo-password", help="password of new demo accounts")
    seed.add_argument(
        "--allow-production",
        action="store_true",
        help="seed even with TODO_ENV=production (demo accounts with a known password)",
    )
    seed.set_defaults(handler=seed_command)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def seed_command(settings: Settings, args: argparse.Namespace) -> int:
    """Create the demo users and top their tasks up, then print the logins."""
    if settings.environment == "production" and not args.allow_production:
        raise ConfigError(
            "refusing to create demo accounts with TODO_ENV=production (--allow-production)"
        )
    password = passwords.normalize(args.password)
    with database.open_database(settings) as url:
        database.prepare_schema(url, migrate=False)
        print(f"==> seeding {database.describe(url)}", flush=True)
        hashed = asyncio.run(_hash(settings.bcrypt_rounds, password))
        with psycopg.connect(url, autocommit=True) as connection:
            created = _seed_users(connection, args.users, hashed)
            added = _seed_tasks(connection, args.users, args.tasks)
    print(
        f"==> {created:,} users created ({args.users - created:,} existed), {added:,} tasks added",
        flush=True,
    )
    _print_logins(args.users, args.password)
    return OK


async def _hash(rounds: int, password: str) -> str:
    """One hash, on a one-thread pool at normal priority (a command, not a server)."""
    pool = HashPool(slots=1, queue=0, max_wait_s=0.0, priority="normal")
    try:
        return await passwords.PasswordHasher(rounds, pool).hash(password)
    finally:
        pool.close()


def demo_emails(count: int) -> list[str]:
    """The e-mail addresses of the first `count` demo accounts."""
    return [f"demo{i}@example.com" for i in range(1, count + 1)]


def _seed_users(connection: psycopg.Connection[tuple[Any, ...]], count: int, hashed: str) -> int:
    progress = Progress("users", count)
    created = 0
    for start in range(1, count + 1, CHUNK):
        stop = min(start + CHUNK - 1, count)
        cursor = connection.execute(INSERT_USERS, {"hash": hashed, "start": start, "stop": stop})
        created += cursor.rowcount
        progress.advance(stop - start + 1)
    progress.finish()
    return created


def _seed_tasks(connection: psycopg.Connection[tuple[Any, ...]], users: int, want: int) -> int:
    rows = connection.execute(COUNT_TASKS, {"emails": demo_emails(users)}).fetchall()
    missing = [(user_id, int(have)) for user_id, have in rows if int(have) < want]
    total = sum(want - have for _, have in missing)
    progress = Progress("tasks", total)
    for batch in _batches(missing, want):
        users_, starts, stops = zip(*batch, strict=True)
        connection.execute(
            INSERT_TASKS, {"users": list(users_), "starts": list(starts), "stops": list(stops)}
        )
        progress.advance(sum(stop - start + 1 for _, start, stop in batch))
    progress.finish()
    return total


def _batches(
    missing: list[tuple[Any, int]], want: int
) -> Iterator[list[tuple[uuid.UUID, int, int]]]:
    """Ranges (user, first g, last g) of at most CHUNK rows in all, per statement."""
    batch: list[tuple[uuid.UUID, int, int]] = []
    size = 0
    for user_id, have in missing:
        start = have + 1
        while start <= want:
            stop = min(start + CHUNK - size - 1, want)
            batch.append((uuid.UUID(str(user_id)), start, stop))
            size += stop - start + 1
            start = stop + 1
            if size >= CHUNK:
                yield batch
                batch, size = [], 0
    if batch:
        yield batch


def _print_logins(count: int, password: str) -> None:
    if count == 0:
        return
    emails = demo_emails(count)
    print(f"demo logins (new accounts' password: {password}):")
    for email in emails[:SHOWN_LOGINS]:
        print(f"  {email}")
    if count > SHOWN_LOGINS:
        print(f"  ... and {count - SHOWN_LOGINS:,} more, up to {emails[-1]}")
