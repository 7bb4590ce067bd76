"""Streaming use cases: every matching task, and the live change feed.

Both check everything they can before their first item, so a bad request
gets an ordinary error (over REST, a JSON error rather than a cut stream).
Neither holds a database connection between reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from server import domain, errors
from server.services import access
from server.services.page_tokens import ResumeTokens
from server.services.ports import ChangeFeed, UnitOfWork

STREAM_CHUNK = 500
"""Tasks read per query while streaming (keyset chunks: memory stays flat)."""
WATCH_BATCH = 500
"""Changes read per query while catching up."""


async def stream_task_chunks(
    uow: Callable[[], UnitOfWork],
    principal: domain.Principal,
    user_id: str,
    query: domain.TaskQuery,
    form: domain.WireForm,
) -> AsyncIterator[Sequence[Any]]:
    """Every matching task in the query's order, in `form`, in keyset chunks of STREAM_CHUNK.

    The next chunk is read while the caller sends this one (at most two chunks in
    memory): the database and this process work at once. Each read is one statement on
    a connection held for that statement only.
    """
    owner = access.owner_id(principal, user_id)

    async def read(cursor: domain.PageCursor | None) -> domain.TaskChunk:
        async with uow().autocommit() as reader:
            return await reader.tasks.stream_chunk(owner, query, STREAM_CHUNK, cursor, form)

    pending = asyncio.ensure_future(read(None))
    try:
        while True:
            chunk = await pending
            if chunk.next_cursor is not None:
                pending = asyncio.ensure_future(read(chunk.next_cursor))
            if chunk.items:
                yield chunk.items
            if chunk.next_cursor is None:
                return
    finally:
        if not pending.done():  # the caller went away: stop the read ahead, whatever it meets
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending


async def watch_tasks(
    uow: Callable[[], UnitOfWork],
    feed: ChangeFeed,
    resume_tokens: ResumeTokens,
    principal: domain.Principal,
    user_id: str,
    resume_token: str,
    heartbeat_s: float,
) -> AsyncIterator[tuple[domain.TaskChange | None, int]]:
    """The caller's changes after the token (or from now), then live ones, with heartbeats.

    Yields (change, seq) pairs; a heartbeat is (None, latest seq). The first
    item is always a heartbeat, sent once the subscription is live. Ends with
    errors.Unavailable when the server shuts down.
    """
    owner = access.owner_id(principal, user_id)
    after = resume_tokens.decode(owner, resume_token) if resume_token else None
    with feed.subscribe(owner) as subscription:  # before reading: no change can slip between
        last = await _starting_seq(uow, owner, after)
        yield None, last  # the stream is live; the client holds a resume token from now on
        while True:
            subscription.reset()
            async with uow().autocommit() as reader:
                changes = await reader.changes.read(owner, last, WATCH_BATCH)
            for change in changes:
                yield change, change.seq
                last = change.seq
            if len(changes) == WATCH_BATCH:
                continue
            if subscription.closed:
                raise _shutting_down()
            # No ring, no new change (a commit rings after the reset above, and a listener
            # reconnect rings everyone): a heartbeat reads nothing. 10,000 idle streams
            # would otherwise query every heartbeat_s, a third of a query per stream a second.
            while not await subscription.wait(heartbeat_s):
                yield None, last
            if subscription.closed:
                raise _shutting_down()


async def watch_task_events(
    uow: Callable[[], UnitOfWork],
    feed: ChangeFeed,
    resume_tokens: ResumeTokens,
    principal: domain.Principal,
    user_id: str,
    resume_token: str,
    heartbeat_s: float,
) -> AsyncIterator[tuple[domain.TaskChange | None, str]]:
    """`watch_tasks`, each item with the resume token that continues after it."""
    owner = access.owner_id(principal, user_id)
    changes = watch_tasks(uow, feed, resume_tokens, principal, user_id, resume_token, heartbeat_s)
    async for change, seq in changes:
        yield change, resume_tokens.encode(owner, seq)


async def _starting_seq(uow: Callable[[], UnitOfWork], owner: uuid.UUID, after: int | None) -> int:
    async with uow().autocommit() as reader:
        bounds = await reader.changes.bounds(owner)
    if bounds is None:
        raise errors.NotFound("user not found", reason="USER_NOT_FOUND")
    latest, oldest = bounds
    if after is None:
        return latest
    if after > latest:
        raise errors.InvalidArgument(
            errors.FieldViolation("resume_token", "is not a resume token of this user"),
            reason="INVALID_RESUME_TOKEN",
        )
    if after < latest and (oldest is None or after < oldest - 1):
        raise errors.FailedPrecondition(
            "changes after this resume token are no longer kept; list the tasks again and "
            "watch without a token",
            reason="RESYNC_REQUIRED",
        )
    return after


def _shutting_down() -> errors.Unavailable:
    return errors.Unavailable(
        "the server is shutting down; reconnect with your last resume token",
        reason="SHUTTING_DOWN",
    )
