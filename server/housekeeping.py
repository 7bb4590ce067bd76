"""Periodic clean-up run by every server process.

Drained throttle buckets every minute; expired task changes and batch request ids every
ten. Each process runs it (the DELETEs are idempotent, cheap when there is nothing to delete,
and the throttle's skips rows that attempts hold), at a random offset so processes do
not run in step.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from server import errors
from server.config import Settings
from server.services.ports import UnitOfWork

log = logging.getLogger(__name__)
INTERVAL_S = 600.0
"""How often task changes and request ids are pruned."""
THROTTLE_INTERVAL_S = 60.0
"""How often drained throttle buckets are: a wide flood leaves up to three rows an attempt."""
REQUEST_ID_RETENTION_S = 48 * 3600
"""Batch request ids are kept two days (the contract asks for at least one)."""


async def run(uow: Callable[[], UnitOfWork], settings: Settings) -> None:
    """Prune forever (cancel to stop)."""
    await asyncio.sleep(random.uniform(0, 60))
    pruned_all_at = float("-inf")
    while True:
        everything = time.monotonic() - pruned_all_at >= INTERVAL_S
        await prune_once(uow, settings, everything=everything)
        if everything:
            pruned_all_at = time.monotonic()
        await asyncio.sleep(THROTTLE_INTERVAL_S)


async def prune_once(
    uow: Callable[[], UnitOfWork], settings: Settings, *, everything: bool = True
) -> None:
    """Delete drained throttle buckets and, with `everything`, expired changes and ids.

    Logs and carries on if the database is down.
    """
    changes = request_ids = 0
    try:
        async with uow().autocommit() as reader:
            buckets = await reader.rate_limits.prune()
            if everything:
                changes = await reader.changes.prune(settings.change_retention_s)
                request_ids = await reader.idempotency.prune(REQUEST_ID_RETENTION_S)
    except errors.Unavailable:
        log.warning("housekeeping skipped: database unavailable")
        return
    if buckets or changes or request_ids:
        log.info(
            "pruned %d drained throttle buckets, %d task changes and %d batch request ids",
            buckets,
            changes,
            request_ids,
        )
