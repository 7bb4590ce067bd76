"""Periodic clean-up run by every server process: expired task changes and request ids.

Each process runs it (the DELETE is idempotent and cheap when there is
nothing to delete), at a random offset so processes do not run in step.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from server import errors
from server.config import Settings
from server.services.ports import UnitOfWork

log = logging.getLogger(__name__)
INTERVAL_S = 600.0
REQUEST_ID_RETENTION_S = 48 * 3600
"""Batch request ids are kept two days (the contract asks for at least one)."""


async def run(uow: Callable[[], UnitOfWork], settings: Settings) -> None:
    """Prune forever, every INTERVAL_S seconds (cancel to stop)."""
    await asyncio.sleep(random.uniform(0, 60))
    while True:
        await prune_once(uow, settings)
        await asyncio.sleep(INTERVAL_S)


async def prune_once(uow: Callable[[], UnitOfWork], settings: Settings) -> None:
    """Delete expired task changes and request ids; log and carry on if the database is down."""
    try:
        async with uow().autocommit() as reader:
            changes = await reader.changes.prune(settings.change_retention_s)
            request_ids = await reader.idempotency.prune(REQUEST_ID_RETENTION_S)
    except errors.Unavailable:
        log.warning("housekeeping skipped: database unavailable")
        return
    if changes or request_ids:
        log.info("pruned %d task changes and %d batch request ids", changes, request_ids)
