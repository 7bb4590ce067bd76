"""Throttle state in the `rate_limits` table: one row per key, shared by every process.

Each key is a GCRA bucket (the "generic cell rate algorithm", a token bucket kept as one
timestamp): `tat`, the theoretical arrival time, moves `period / limit` into the future
with every allowed hit, and a hit is allowed while `tat` stays within `period` of now.
So a key allows `limit` hits at once, then one every `period / limit` seconds, and a key
nobody hits drains back to empty by itself. The upsert is one atomic statement, so
concurrent hits from any number of processes are counted exactly.
"""

from __future__ import annotations

from server.db import executor

HIT = """
INSERT INTO rate_limits AS r (key, tat)
VALUES (%(key)s, now() + make_interval(secs => %(interval)s))
ON CONFLICT (key) DO UPDATE
SET tat = greatest(r.tat, now()) + make_interval(secs => %(interval)s)
WHERE greatest(r.tat, now()) + make_interval(secs => %(interval)s)
      <= now() + make_interval(secs => %(period)s)
RETURNING tat
"""
"""Counts the hit and returns a row if it is allowed; returns nothing (and changes
nothing) if it is not."""

WAIT = """
SELECT greatest(extract(epoch FROM r.tat - now()) + %(interval)s - %(period)s, 0)::float8
FROM rate_limits AS r WHERE key = %(key)s
"""
"""Seconds until the key allows one more hit."""

PRUNE_BATCH = 5_000
"""Most rows one prune statement deletes: each is a short transaction of its own."""

PRUNE = f"""
DELETE FROM rate_limits WHERE key IN (
    SELECT key FROM rate_limits WHERE tat < now() LIMIT {PRUNE_BATCH} FOR UPDATE SKIP LOCKED
)
"""
"""Rows whose bucket has drained are the same as no row. A row that an attempt holds
locked is skipped, not waited for: it is being hit, so it is not drained for long. A
plain `DELETE ... WHERE tat < now()` waited for such rows while holding the ones it had
locked, and under a login flood that deadlocked with the attempts (aborted after
PostgreSQL's 1 s `deadlock_timeout`) and stalled every attempt queued on those rows,
each holding a pooled connection, so ordinary calls waited for the pool too."""


class PgRateLimitsRepository:
    """`ports.RateLimitsRepository` on PostgreSQL."""

    def __init__(self, db: executor.Executor) -> None:
        self._db = db

    async def hit(self, key: str, limit: int, period_s: float) -> float:
        """Count one hit on `key` if it allows `limit` per `period_s`.

        Returns:
            0.0 if the hit was allowed (and counted), else the seconds to wait before the
            key allows another (nothing is counted).
        """
        params = {"key": key, "interval": period_s / limit, "period": float(period_s)}
        if await self._db.fetch_one(HIT, params) is not None:
            return 0.0
        row = await self._db.fetch_one(WAIT, params)
        return 0.0 if row is None else max(float(row[0]), 0.001)

    async def prune(self) -> int:
        """Delete drained rows, `PRUNE_BATCH` at a time, never waiting for a lock.

        Run it outside a transaction (autocommit), so each batch commits on its own.

        Returns:
            How many rows were deleted.
        """
        total = 0
        while True:
            deleted = await self._db.execute(PRUNE)
            total += deleted
            if deleted < PRUNE_BATCH:
                return total
