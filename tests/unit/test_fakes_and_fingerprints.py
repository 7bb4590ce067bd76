"""The fake unit of work is all-or-nothing like the real one; fingerprints are canonical."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from server import domain, errors, fingerprints
from server.services import batches, queries
from tests.unit.fakes import FakeStore


async def test_a_failed_batch_leaves_nothing_behind(uow, store: FakeStore, alice) -> None:
    kept = await batches.batch_create(uow(), alice, "me", [domain.TaskFields(title="a")], "")
    missing = str(uuid.uuid4())
    with pytest.raises(errors.NotFound):
        # The first task is completed (in the fake, at once), then the missing one fails.
        await batches.batch_complete(uow(), alice, "me", [str(kept[0].id), missing], True, "r")
    assert store.tasks.rows[kept[0].id] == kept[0]
    assert store.idempotency.rows == {}
    assert store.rollbacks == 1


async def test_a_block_left_without_commit_rolls_back(uow, store: FakeStore, alice) -> None:
    async with uow() as work:
        await work.tasks.add(alice.user_id, domain.TaskFields(title="never committed"))
    assert store.tasks.rows == {}
    async with uow() as work:
        task = await work.tasks.add(alice.user_id, domain.TaskFields(title="committed"))
        await work.commit()
        await work.tasks.delete(alice.user_id, task.id)  # after the commit: rolled back
    assert list(store.tasks.rows) == [task.id]


def test_fingerprints_are_canonical_json_not_repr() -> None:
    when = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
    query = domain.TaskQuery(
        queries.make_filter(priorities=[domain.Priority.HIGH], due_after=when, tags=["b", "a"])
    )
    text = query.fingerprint()
    assert "TaskFilter" not in text and "Priority." not in text
    assert '"priorities":["HIGH"]' in text and '"due_after":"2026-05-01T12:00:00+00:00"' in text
    assert '"order"' not in text  # the default order, like every default, is left out
    assert text == domain.TaskQuery(dataclasses.replace(query.filter)).fingerprint()


def test_request_hash_ignores_set_order_and_type_names() -> None:
    patch_a = domain.TaskPatch(domain.TaskFields(title="x"), frozenset({"title", "tags"}))
    patch_b = domain.TaskPatch(domain.TaskFields(title="x"), frozenset({"tags", "title"}))
    task_id = uuid.uuid4()
    a = [domain.TaskUpdate(task_id, patch_a, 3)]
    b = [domain.TaskUpdate(task_id, patch_b, 3)]
    assert fingerprints.digest(a) == fingerprints.digest(b)
    assert fingerprints.canonical(patch_a) == '{"fields":{"title":"x"},"present":["tags","title"]}'
    with pytest.raises(TypeError):
        fingerprints.canonical(object())


def test_a_field_added_with_a_default_changes_no_hash_of_a_value_without_it() -> None:
    # The case the issue names: an honest batch retry across a deploy that added a field.
    @dataclasses.dataclass(frozen=True)
    class Before:
        title: str
        due_at: dt.datetime | None = None

    @dataclasses.dataclass(frozen=True)
    class After:
        title: str
        due_at: dt.datetime | None = None
        location: str | None = None
        labels: tuple[str, ...] = dataclasses.field(default_factory=tuple)

    when = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    assert fingerprints.digest(Before("x", when)) == fingerprints.digest(After("x", when))
    assert fingerprints.digest(Before("x")) == fingerprints.digest(After("x"))
    assert fingerprints.digest(After("x", location="home")) != fingerprints.digest(After("x"))
    assert fingerprints.digest(After("x", labels=("a",))) != fingerprints.digest(After("x"))
