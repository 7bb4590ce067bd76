"""The revocation barrier: a revoking call answers once every process has the revocation.

Revocations reach the other server processes by NOTIFY (`adapters/revocations.py`),
a few milliseconds after commit. Without a barrier the next call can land on a
process that has not applied the notification yet and still pass. So each
listener, after applying a `session_revoked` notification, acknowledges it on
`ACK_CHANNEL` ("<listener name> <session id>", sent on its own connection), and
the unit of work that committed revocations waits, after releasing its
connection, until every listener has acknowledged every revoked session.

"Every listener" is read from `pg_stat_activity` after the commit: the
listener connections that set their `application_name` (`LISTENER_PREFIX`),
on any host. A listener sets it once LISTENing and before reloading, so a
process answers from memory only when either it is listed (and the revoker
waits for it) or it was listed later than the commit (and its reload found
the revocation). A listener that is reconnecting is not listed, and its
process asks the database meanwhile (already correct).

While acknowledgements are missing the listeners are listed again every
`RELIST_S`, so a process that died mid-wait stops being waited for once its
connection is gone. The wait is bounded (`timeout_s`): a process that hangs,
or a listener that started LISTENing in the instant after the commit (its
reload found the revocation, so no notification and no acknowledgement
come), costs at most the bound; then the call answers anyway and a warning
is logged.

Acknowledgements are kept for `ACK_MEMORY_S` whether or not anyone waits,
since one may arrive before its revoker starts waiting. Authenticated calls
never touch any of this: only revoking calls pay (one query and the wait).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection

from server.db.listener import NotificationListener

log = logging.getLogger(__name__)
ACK_CHANNEL = "session_revoked_ack"
ACK_MEMORY_S = 30.0
"""How long an acknowledgement is remembered (far beyond any wait)."""

RELIST_S = 0.25
"""While acknowledgements are missing, the ready listeners are listed again this often."""

LiveListeners = Callable[[], Awaitable[Collection[str]]]
"""Returns the names of the listening listeners of every server process."""


class RevocationBarrier:
    """Waits until every listed listener has applied given revocations, within a bound."""

    def __init__(
        self, listener: NotificationListener, live_listeners: LiveListeners, timeout_s: float
    ) -> None:
        self._listener = listener
        self._live_listeners = live_listeners
        self._timeout_s = timeout_s
        self._acks: dict[uuid.UUID, tuple[float, set[str]]] = {}
        self._changed = asyncio.Event()
        listener.subscribe(ACK_CHANNEL, self._ack)

    def acknowledge(self, session_id: uuid.UUID) -> None:
        """Tell every revoker that this process has applied the revocation of `session_id`."""
        self._listener.send(ACK_CHANNEL, f"{self._listener.name} {session_id}")

    async def wait(self, session_ids: Collection[uuid.UUID]) -> bool:
        """Return once every listed listener acknowledged every session, or after the bound.

        Returns:
            Whether every acknowledgement arrived (False: timed out, or could not tell).
        """
        if not session_ids:
            return True
        if self._timeout_s <= 0:
            return False  # turned off
        started = time.monotonic()
        missing: set[str] = {"(the listing of listeners)"}
        if not self._listener.connected:
            log.warning("revocation barrier skipped: this process's listener is reconnecting")
            return False
        try:
            async with asyncio.timeout(self._timeout_s):
                live = set(await self._live_listeners())
                while missing := self._missing(session_ids, live):
                    self._changed.clear()
                    try:
                        async with asyncio.timeout(RELIST_S):
                            await self._changed.wait()
                    except TimeoutError:  # slow or gone? a process that died is unlisted
                        live = set(await self._live_listeners())
        except TimeoutError:
            log.warning(
                "revocation barrier timed out after %.1f s; not acknowledged by %s",
                time.monotonic() - started,
                ", ".join(sorted(missing)),
            )
            return False
        except Exception:
            log.warning("revocation barrier could not list the listeners", exc_info=True)
            return False
        return True

    def _missing(self, session_ids: Collection[uuid.UUID], live: set[str]) -> set[str]:
        missing: set[str] = set()
        for session_id in session_ids:
            _, acked = self._acks.get(session_id, (0.0, set()))
            missing |= live - acked
        return missing

    def _ack(self, payload: str) -> None:
        name, _, session = payload.rpartition(" ")
        try:
            session_id = uuid.UUID(session)
        except ValueError:
            log.warning("ignoring malformed %s payload", ACK_CHANNEL)
            return
        now = time.monotonic()
        self._acks = {sid: ack for sid, ack in self._acks.items() if ack[0] > now - ACK_MEMORY_S}
        self._acks.setdefault(session_id, (now, set()))[1].add(name)
        self._changed.set()
