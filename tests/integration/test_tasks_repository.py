from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from server import domain
from server.db import executor
from server.repositories.tasks import PgTasksRepository

DUE = dt.datetime(2030, 1, 2, 3, 4, 5, 600000, tzinfo=dt.UTC)
PAST = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


DEFAULT = domain.TaskQuery()


def _patch(present: set[str], **fields: Any) -> domain.TaskPatch:
    values: dict[str, Any] = {"title": "unchanged", **fields}
    return domain.TaskPatch(fields=domain.TaskFields(**values), present=frozenset(present))


@pytest.fixture
async def task(tasks_repo: PgTasksRepository, user: domain.User) -> domain.Task:
    return await tasks_repo.add(user.id, domain.TaskFields(title="Buy milk"))


async def test_add_applies_defaults(task: domain.Task, user: domain.User) -> None:
    assert task.user_id == user.id
    assert (task.title, task.description, task.category, task.tags) == ("Buy milk", "", "", ())
    assert task.priority is domain.Priority.MEDIUM
    assert not task.completed
    assert task.completed_at is None
    assert task.due_at is None and task.remind_at is None
    assert task.version == 1 and task.etag == "v1"
    assert task.created_at == task.updated_at


async def test_add_stores_every_field(tasks_repo: PgTasksRepository, user: domain.User) -> None:
    fields = domain.TaskFields(
        title="Pay rent",
        description="before the 3rd",
        completed=True,
        priority=domain.Priority.URGENT,
        due_at=DUE,
        remind_at=DUE - dt.timedelta(hours=1),
        category="home",
        tags=("money", "monthly"),
    )
    created = await tasks_repo.add(user.id, fields)

    assert created.completed_at is not None
    assert created.priority is domain.Priority.URGENT
    assert (created.due_at, created.remind_at) == (fields.due_at, fields.remind_at)
    assert (created.category, created.tags) == ("home", ("money", "monthly"))
    assert await tasks_repo.get(user.id, created.id) == created


async def test_get_is_filtered_by_owner(
    tasks_repo: PgTasksRepository, task: domain.Task, user: domain.User, other_user: domain.User
) -> None:
    assert await tasks_repo.get(user.id, task.id) == task
    assert await tasks_repo.get(other_user.id, task.id) is None
    assert await tasks_repo.get(user.id, uuid.uuid4()) is None


async def test_update_changes_only_present_fields(
    tasks_repo: PgTasksRepository, task: domain.Task, user: domain.User
) -> None:
    patch = _patch({"description", "tags"}, title="ignored", description="2 litres", tags=("a",))
    updated = await tasks_repo.update(user.id, task.id, patch, None)

    assert updated is not None
    assert (updated.title, updated.description, updated.tags) == ("Buy milk", "2 litres", ("a",))
    assert updated.version == 2
    assert updated.created_at == task.created_at
    assert await tasks_repo.get(user.id, task.id) == updated


async def test_update_can_clear_fields(tasks_repo: PgTasksRepository, user: domain.User) -> None:
    full = domain.TaskFields(title="t", due_at=DUE, remind_at=DUE, tags=("x", "y"), category="c")
    created = await tasks_repo.add(user.id, full)
    cleared = await tasks_repo.update(
        user.id, created.id, _patch({"due_at", "remind_at", "tags", "category"}), None
    )

    assert cleared is not None
    assert (cleared.due_at, cleared.remind_at, cleared.tags, cleared.category) == (
        None,
        None,
        (),
        "",
    )
    assert cleared.title == "t"


async def test_update_with_expected_version(
    tasks_repo: PgTasksRepository, task: domain.Task, user: domain.User
) -> None:
    patch = _patch({"title"}, title="Buy oat milk")

    assert await tasks_repo.update(user.id, task.id, patch, expected_version=7) is None
    assert await tasks_repo.get(user.id, task.id) == task

    updated = await tasks_repo.update(user.id, task.id, patch, expected_version=1)
    assert updated is not None and updated.version == 2
    assert await tasks_repo.update(user.id, task.id, patch, expected_version=1) is None  # stale now


async def test_update_of_unknown_or_foreign_task_is_none(
    tasks_repo: PgTasksRepository, task: domain.Task, other_user: domain.User, user: domain.User
) -> None:
    patch = _patch({"title"}, title="mine now")

    assert await tasks_repo.update(other_user.id, task.id, patch, None) is None
    assert await tasks_repo.update(user.id, uuid.uuid4(), patch, None) is None
    assert await tasks_repo.get(user.id, task.id) == task


async def test_completed_at_follows_completed(
    tasks_repo: PgTasksRepository, task: domain.Task, user: domain.User, conn: executor.Connection
) -> None:
    done = await tasks_repo.update(user.id, task.id, _patch({"completed"}, completed=True), None)
    assert done is not None and done.completed
    assert done.completed_at == done.updated_at  # now(), the transaction's time

    await conn.execute("UPDATE tasks SET completed_at = %s WHERE id = %s", (PAST, task.id))
    again = await tasks_repo.update(user.id, task.id, _patch({"completed"}, completed=True), None)
    assert again is not None and again.completed_at == PAST  # already done: kept
    renamed = await tasks_repo.update(user.id, task.id, _patch({"title"}, title="x"), None)
    assert renamed is not None and renamed.completed_at == PAST  # completed absent: kept

    reopened = await tasks_repo.update(user.id, task.id, _patch({"completed"}), None)
    assert reopened is not None and not reopened.completed
    assert reopened.completed_at is None
    assert reopened.version == 5


async def test_delete_is_filtered_by_owner(
    tasks_repo: PgTasksRepository, task: domain.Task, user: domain.User, other_user: domain.User
) -> None:
    assert not await tasks_repo.delete(other_user.id, task.id)
    assert await tasks_repo.get(user.id, task.id) == task

    assert await tasks_repo.delete(user.id, task.id)
    assert await tasks_repo.get(user.id, task.id) is None
    assert not await tasks_repo.delete(user.id, task.id)


async def test_list_page_of_no_tasks(tasks_repo: PgTasksRepository, user: domain.User) -> None:
    page = await tasks_repo.list_page(user.id, DEFAULT, 10, None)

    assert page == domain.TaskPage(tasks=[], next_cursor=None, total_size=0)


async def _list_all(
    repo: PgTasksRepository, user_id: uuid.UUID, size: int, total: int
) -> list[domain.Task]:
    seen: list[domain.Task] = []
    after = None
    while True:
        page = await repo.list_page(user_id, DEFAULT, size, after)
        assert len(page.tasks) <= size
        assert page.total_size == total
        seen.extend(page.tasks)
        if page.next_cursor is None:
            return seen
        assert len(page.tasks) == size
        after = page.next_cursor


@pytest.mark.parametrize("size", [1, 3, 4, 8, 50])
async def test_list_page_walks_every_task_once_newest_first(
    size: int,
    tasks_repo: PgTasksRepository,
    user: domain.User,
    other_user: domain.User,
    conn: executor.Connection,
) -> None:
    # One transaction: every task shares created_at (ties broken by id); move
    # three of them so the order also depends on created_at.
    created = [await tasks_repo.add(user.id, domain.TaskFields(title=f"t{i}")) for i in range(8)]
    await tasks_repo.add(other_user.id, domain.TaskFields(title="not mine"))
    for offset, moved in zip((-60, -60, 60), created[:3], strict=True):
        await conn.execute(
            "UPDATE tasks SET created_at = created_at + make_interval(secs => %s) WHERE id = %s",
            (offset, moved.id),
        )
    stored = [await tasks_repo.get(user.id, t.id) for t in created]
    expected = sorted(stored, key=lambda t: (t.created_at, t.id), reverse=True)

    assert await _list_all(tasks_repo, user.id, size, total=8) == expected


async def test_list_page_exact_multiple_has_no_empty_last_page(
    tasks_repo: PgTasksRepository, user: domain.User
) -> None:
    for i in range(4):
        await tasks_repo.add(user.id, domain.TaskFields(title=f"t{i}"))

    first = await tasks_repo.list_page(user.id, DEFAULT, 2, None)
    second = await tasks_repo.list_page(user.id, DEFAULT, 2, first.next_cursor)

    assert first.next_cursor is not None and len(first.tasks) == 2
    assert second.next_cursor is None and len(second.tasks) == 2
    assert second.total_size == 4


async def test_list_page_rejects_a_page_size_below_one(
    tasks_repo: PgTasksRepository, user: domain.User
) -> None:
    with pytest.raises(ValueError, match="page_size"):
        await tasks_repo.list_page(user.id, DEFAULT, 0, None)
