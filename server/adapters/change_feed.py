"""Wakes the watch streams of a user when a change of theirs commits, in any process.

The task writes call `pg_notify('task_changes', user_id)` (see
repositories/changes.py); this process's NotificationListener hands each
notification here, and every open subscription of that user is woken. A
woken stream reads its changes from the outbox itself, so a notification
carries nothing that could be lost: after a reconnect every subscription is
woken once to catch up. `close()` (server shutdown) wakes them all for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator

from server.db import executor
from server.db.listener import NotificationListener
from server.repositories.changes import CHANNEL

log = logging.getLogger(__name__)


class Subscription:
    """One watch stream's doorbell."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.closed = False

    def ring(self) -> None:
        """Wake the stream."""
        self._event.set()

    def reset(self) -> None:
        """Forget earlier rings; call before reading the outbox."""
        self._event.clear()

    async def wait(self, timeout_s: float) -> bool:
        """Wait for a ring; False if `timeout_s` passed without one."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout_s)
            return True
        return False


class ChangeFeed:
    """Per-process fan-out of change notifications to subscriptions, by user."""

    def __init__(self, listener: NotificationListener) -> None:
        self._by_user: dict[uuid.UUID, set[Subscription]] = {}
        self._closed = False
        listener.subscribe(CHANNEL, self._notified, on_connect=self._reconnected)

    @contextlib.contextmanager
    def subscribe(self, user_id: uuid.UUID) -> Iterator[Subscription]:
        """A subscription to the user's changes, for the duration of the block."""
        subscription = Subscription()
        subscription.closed = self._closed
        subscribers = self._by_user.setdefault(user_id, set())
        subscribers.add(subscription)
        try:
            yield subscription
        finally:
            subscribers.discard(subscription)
            if not subscribers:
                self._by_user.pop(user_id, None)

    @property
    def watchers(self) -> int:
        """How many subscriptions are open."""
        return sum(len(s) for s in self._by_user.values())

    def close(self) -> None:
        """Mark every subscription closed and wake it (the server is stopping)."""
        self._closed = True
        for subscribers in self._by_user.values():
            for subscription in subscribers:
                subscription.closed = True
                subscription.ring()

    def _notified(self, payload: str) -> None:
        try:
            user_id = uuid.UUID(payload)
        except ValueError:
            log.warning("ignoring malformed %s payload", CHANNEL)
            return
        for subscription in self._by_user.get(user_id, ()):
            subscription.ring()

    async def _reconnected(self, connection: executor.Connection) -> None:
        for subscribers in self._by_user.values():
            for subscription in subscribers:
                subscription.ring()
