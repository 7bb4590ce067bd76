from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from server import domain, errors
from server.services import ports, streams
from server.services.page_tokens import ResumeTokens
from tests.unit.fakes import FakeStore


class FakeSubscription:
    def __init__(self, rings: list[bool]) -> None:
        self.closed = False
        self._rings = rings

    def reset(self) -> None:
        pass

    async def wait(self, timeout_s: float) -> bool:
        if not self._rings:
            self.closed = True
            return True
        return self._rings.pop(0)


class FakeFeed:
    def __init__(self, rings: list[bool]) -> None:
        self.rings = rings

    @contextlib.contextmanager
    def subscribe(self, user_id: uuid.UUID) -> Iterator[FakeSubscription]:
        yield FakeSubscription(self.rings)


if TYPE_CHECKING:  # mypy (make lint) proves the fakes implement their ports
    _subscription: type[ports.Subscription] = FakeSubscription
    _feed: type[ports.ChangeFeed] = FakeFeed

TOKENS = ResumeTokens("s" * 40)


def _task(owner: uuid.UUID, title: str) -> domain.Task:
    now = dt.datetime.now(dt.UTC)
    return domain.Task(
        uuid.uuid4(),
        owner,
        title,
        "",
        False,
        None,
        domain.Priority.MEDIUM,
        None,
        None,
        "",
        (),
        now,
        now,
        1,
    )


async def _collect(uow, store: FakeStore, alice, token: str, rings: list[bool]) -> list:
    out = []
    with contextlib.suppress(errors.Unavailable):
        async for item in streams.watch_tasks(
            uow, FakeFeed(rings), TOKENS, alice, "me", token, 0.01
        ):
            out.append(item)
    return out


async def test_resume_replays_after_the_token_then_heartbeats(uow, store: FakeStore, alice) -> None:
    for title in "abc":
        store.changes.record(alice.user_id, domain.ChangeKind.CREATED, _task(alice.user_id, title))
    items = await _collect(uow, store, alice, TOKENS.encode(alice.user_id, 1), [False])
    assert [(c.task.title if c else None, seq) for c, seq in items] == [
        (None, 1),
        ("b", 2),
        ("c", 3),
        (None, 3),
    ]


async def test_no_token_starts_live(uow, store: FakeStore, alice) -> None:
    store.changes.record(alice.user_id, domain.ChangeKind.CREATED, _task(alice.user_id, "old"))
    items = await _collect(uow, store, alice, "", [False])
    assert items == [(None, 1), (None, 1)]


async def test_heartbeats_read_nothing(
    uow, store: FakeStore, alice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle streams do not query: only a ring (a commit or a reconnect) makes a stream read."""
    reads = []
    read = store.changes.read

    async def counted(*args: Any) -> list:
        reads.append(args)
        return await read(*args)

    monkeypatch.setattr(store.changes, "read", counted)
    items = await _collect(uow, store, alice, "", [False, False, False, True, False])
    assert items == [(None, 0)] * 4 + [(None, 0)]
    assert len(reads) == 2  # the first read, and the one after the ring


async def test_shutdown_ends_with_unavailable(uow, alice) -> None:
    with pytest.raises(errors.Unavailable):
        async for _ in streams.watch_tasks(uow, FakeFeed([]), TOKENS, alice, "me", "", 0.01):
            pass


async def test_tokens_of_others_or_the_future_are_invalid(uow, store: FakeStore, alice) -> None:
    for token in (TOKENS.encode(uuid.uuid4(), 0), TOKENS.encode(alice.user_id, 5), "junk"):
        with pytest.raises(errors.InvalidArgument) as caught:
            await _collect(uow, store, alice, token, [])
        assert caught.value.reason == "INVALID_RESUME_TOKEN"


async def test_pruned_history_needs_a_resync(uow, store: FakeStore, alice) -> None:
    for title in "abcd":
        store.changes.record(alice.user_id, domain.ChangeKind.CREATED, _task(alice.user_id, title))
    del store.changes.rows[alice.user_id][:2]  # seqs 1 and 2 expired
    with pytest.raises(errors.FailedPrecondition) as caught:
        await _collect(uow, store, alice, TOKENS.encode(alice.user_id, 1), [])
    assert caught.value.reason == "RESYNC_REQUIRED"
    items = await _collect(uow, store, alice, TOKENS.encode(alice.user_id, 2), [False])
    assert [seq for _, seq in items] == [2, 3, 4, 4]
