from __future__ import annotations

import uuid

import pytest

from server import domain, errors
from server.services import tasks
from server.services.page_tokens import PageTokens
from tests.unit.conftest import make_principal
from tests.unit.fakes import FakeStore


def fields(**overrides: object) -> domain.TaskFields:
    return domain.TaskFields(**{"title": "Buy milk", **overrides})  # type: ignore[arg-type]


async def test_create_normalises_and_stores(uow, store: FakeStore, alice) -> None:
    task = await tasks.create_task(
        uow(), alice, "me", fields(title="  Buy milk ", tags=("Home", "home ", "errand"))
    )
    assert task.title == "Buy milk"
    assert task.tags == ("errand", "home")
    assert task.user_id == alice.user_id
    assert store.tasks.rows[task.id] == task


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"description": "d" * 10_001}, "description"),
        ({"category": "c" * 51}, "category"),
        ({"tags": tuple(f"t{i}" for i in range(21))}, "tags"),
        ({"tags": ("x" * 51,)}, "tags"),
    ],
)
async def test_create_refuses_bad_fields(uow, store: FakeStore, alice, overrides, field) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        await tasks.create_task(uow(), alice, "me", fields(**overrides))
    assert [v.field for v in caught.value.violations] == [field]
    assert store.tasks.rows == {}


async def test_limits_are_inclusive(uow, alice) -> None:
    many = (*(f"t{i}" for i in range(20)), "T0")  # 21 given, 20 after merging
    task = await tasks.create_task(
        uow(), alice, "me", fields(title="x" * 200, description="d" * 10_000, tags=many)
    )
    assert len(task.tags) == 20


async def test_another_user_id_is_denied_before_any_work(uow, store: FakeStore, alice) -> None:
    for user_id in (str(uuid.uuid4()), "not-a-uuid", ""):
        with pytest.raises(errors.PermissionDenied):
            await tasks.create_task(uow(), alice, user_id, fields())
    assert store.commits == 0


async def test_own_id_works_like_me(uow, alice) -> None:
    task = await tasks.create_task(uow(), alice, str(alice.user_id), fields())
    assert await tasks.get_task(uow(), alice, "me", str(task.id)) == task


async def test_foreign_and_malformed_task_ids_are_not_found(uow, alice) -> None:
    bob = make_principal()
    task = await tasks.create_task(uow(), bob, "me", fields())
    for task_id in (str(task.id), str(uuid.uuid4()), "nope"):
        with pytest.raises(errors.NotFound):
            await tasks.get_task(uow(), alice, "me", task_id)
    with pytest.raises(errors.NotFound):
        await tasks.delete_task(uow(), alice, "me", str(task.id))


async def test_patch_changes_only_present_fields(uow, alice) -> None:
    task = await tasks.create_task(uow(), alice, "me", fields(description="keep", category="home"))
    patch = domain.TaskPatch(fields(title="", category=""), frozenset({"category"}))
    updated = await tasks.update_task(uow(), alice, "me", str(task.id), patch)
    assert (updated.title, updated.description, updated.category) == ("Buy milk", "keep", "")
    assert updated.etag != task.etag


async def test_patch_does_not_validate_absent_fields(uow, alice) -> None:
    task = await tasks.create_task(uow(), alice, "me", fields())
    patch = domain.TaskPatch(fields(title=""), frozenset({"completed"}))
    assert (await tasks.update_task(uow(), alice, "me", str(task.id), patch)).title == "Buy milk"


async def test_stale_etag_is_aborted_and_changes_nothing(uow, store: FakeStore, alice) -> None:
    task = await tasks.create_task(uow(), alice, "me", fields())
    patch = domain.TaskPatch(fields(title="new"), frozenset({"title"}))
    await tasks.update_task(uow(), alice, "me", str(task.id), patch, etag=task.etag)
    with pytest.raises(errors.Aborted):
        await tasks.update_task(uow(), alice, "me", str(task.id), patch, etag=task.etag)
    with pytest.raises(errors.InvalidArgument):
        await tasks.update_task(uow(), alice, "me", str(task.id), patch, etag="v²")
    assert store.tasks.rows[task.id].version == 2


async def test_complete_and_reopen(uow, alice) -> None:
    task = await tasks.create_task(uow(), alice, "me", fields())
    done = await tasks.complete_task(uow(), alice, "me", str(task.id), True)
    assert done.completed and done.completed_at is not None
    reopened = await tasks.complete_task(uow(), alice, "me", str(task.id), False)
    assert not reopened.completed and reopened.completed_at is None


async def test_paging_walks_every_task_once(uow, alice) -> None:
    created = {
        (await tasks.create_task(uow(), alice, "me", fields(title=f"t{i}"))).id for i in range(7)
    }
    page_tokens = PageTokens("k" * 32)
    seen: list[uuid.UUID] = []
    token = ""
    while True:
        page, token = await tasks.list_tasks(
            uow(), page_tokens, alice, "me", domain.TaskQuery(), 3, token
        )
        assert page.total_size == 7
        seen += [t.id for t in page.tasks]
        if not token:
            break
    assert len(seen) == 7 and set(seen) == created


@pytest.mark.parametrize(("given", "used"), [(0, 50), (10_000, 500), (7, 7)])
def test_page_size_rules(given: int, used: int) -> None:
    assert tasks.page_size_or_default(given) == used


def test_negative_page_size_is_refused() -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        tasks.page_size_or_default(-1)
    assert caught.value.violations[0].field == "page_size"
