"""The same scenarios on the unit tests' fakes and on PostgreSQL give the same results.

If a fake drifts from the repository it stands for (a rule about
`completed_at`, versions, ordering, ownership), these tests fail, so the unit
tests built on the fakes keep testing what the server does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

from server import domain, fingerprints
from server.db import executor
from server.repositories import changes, task_batches, task_rows, tasks, users
from server.services import ports
from tests.unit import fakes

_SERVER_SET = {"id", "user_id", "created_at", "updated_at", "completed_at"}


def _shape(task: domain.Task | None) -> Any:
    """What must agree: every field but ids and server clocks, and whether completed_at is set."""
    if task is None:
        return None
    values = {k: v for k, v in dataclasses.asdict(task).items() if k not in _SERVER_SET}
    return fingerprints.canonical({**values, "has_completed_at": task.completed_at is not None})


def _patch(present: set[str], **values: Any) -> domain.TaskPatch:
    fields = domain.TaskFields(**{"title": "unchanged", **values})
    return domain.TaskPatch(fields, frozenset(present))


async def _single_task_scenario(repo: ports.TasksRepository, owner: uuid.UUID) -> list[Any]:
    due = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    out: list[Any] = []
    first = await repo.add(owner, domain.TaskFields(title="a", tags=("x", "y"), due_at=due))
    second = await repo.add(
        owner, domain.TaskFields(title="b", completed=True, priority=domain.Priority.HIGH)
    )
    out += [_shape(first), _shape(second)]
    done = await repo.update(owner, first.id, _patch({"completed"}, completed=True), None)
    out.append(_shape(done))
    again = await repo.update(owner, first.id, _patch({"completed"}, completed=True), None)
    assert done is not None and again is not None and again.completed_at == done.completed_at
    out.append(_shape(again))
    out.append(_shape(await repo.update(owner, first.id, _patch({"completed"}), 1)))  # stale
    out.append(_shape(await repo.update(owner, first.id, _patch({"completed"}), 3)))  # reopen
    out.append(_shape(await repo.update(owner, first.id, _patch({"title", "tags"}), None)))
    out.append(_shape(await repo.update(uuid.uuid4(), first.id, _patch({"title"}), None)))
    out.append(_shape(await repo.get(owner, second.id)))
    out.append(_shape(await repo.get(uuid.uuid4(), second.id)))
    out.append(await repo.tags(owner))
    page = await repo.list_page(owner, domain.TaskQuery(), 1, None)
    rest = await repo.list_page(owner, domain.TaskQuery(), 1, page.next_cursor)
    # Both rows share one created_at on PostgreSQL (one transaction): the order is the ids'.
    out.append(sorted(_shape(t) for t in [*page.tasks, *rest.tasks]))
    out.append((page.total_size, rest.next_cursor))
    out.append([await repo.delete(owner, second.id), await repo.delete(owner, second.id)])
    return out


async def _batch_scenario(
    tasks_repo: ports.TasksRepository, repo: ports.TaskBatchesRepository, owner: uuid.UUID
) -> list[Any]:
    made = await repo.add_many(owner, [domain.TaskFields(title=t) for t in "abc"])
    ids = [t.id for t in made]
    out: list[Any] = [[_shape(t) for t in made]]
    out.append([_shape(t) for t in await repo.set_completed_many(owner, ids[:2], True)])
    updates = [
        domain.TaskUpdate(ids[0], _patch({"completed", "category"}, category="c"), 2),
        domain.TaskUpdate(ids[1], _patch({"title"}, title="new"), 1),  # stale: left out
        domain.TaskUpdate(ids[2], _patch({"priority"}, priority=domain.Priority.LOW), None),
    ]
    out.append([_shape(t) for t in await repo.update_many(owner, updates)])
    out.append(sorted((await repo.versions(owner, ids)).values()))
    out.append(await repo.delete_many(owner, [ids[0], uuid.uuid4()]))
    out.append(_shape(await tasks_repo.get(owner, ids[0])))
    return out


async def test_tasks_fake_matches_postgresql(
    tasks_repo: tasks.PgTasksRepository, user: domain.User
) -> None:
    expected = await _single_task_scenario(tasks_repo, user.id)
    assert await _single_task_scenario(fakes.FakeTasks(), user.id) == expected


async def test_batches_fake_matches_postgresql(
    conn: executor.Connection, tasks_repo: tasks.PgTasksRepository, user: domain.User
) -> None:
    real = task_batches.PgTaskBatchesRepository(executor.Executor(conn))
    expected = await _batch_scenario(tasks_repo, real, user.id)
    fake_tasks = fakes.FakeTasks()
    assert await _batch_scenario(fake_tasks, fakes.FakeBatches(fake_tasks), user.id) == expected


async def test_users_fake_matches_postgresql(users_repo: users.PgUsersRepository) -> None:
    async def scenario(repo: ports.UsersRepository) -> list[Any]:
        email = f"Mixed-{uuid.uuid4().hex[:8]}@Example.COM"
        user = await repo.add(email, "h", "Ann")
        found = await repo.get_credentials(email.upper())
        moved = await repo.update(user.id, domain.UserPatch(email=" New@Example.com "))
        return [
            user.email == domain.normalize_email(email),
            found is not None and found.user.id == user.id,
            moved is not None and moved.email,
            await repo.delete(user.id),
            await repo.delete(user.id),
        ]

    assert await scenario(fakes.FakeUsers()) == await scenario(users_repo)


_WRITE_SAMPLES: dict[domain.FieldKind, Any] = {
    domain.FieldKind.TEXT: lambda name, n: f"{name} {n}",
    domain.FieldKind.BOOL: lambda name, n: n % 2 == 1,
    domain.FieldKind.PRIORITY: lambda name, n: list(domain.Priority)[n % 4],
    domain.FieldKind.TIME: lambda name, n: dt.datetime(2030, 1, 1 + n, len(name), tzinfo=dt.UTC),
    domain.FieldKind.TAGS: lambda name, n: (f"t{n}", f"u{n}"),
}


def _every_field(n: int) -> domain.TaskFields:
    """Non-default values for every writable field of the schema (whatever it holds)."""
    return domain.TaskFields(
        **{f.name: _WRITE_SAMPLES[f.kind](f.name, n) for f in domain.WRITABLE_TASK_FIELDS}
    )


def _written(task: domain.Task) -> domain.TaskFields:
    return domain.TaskFields(**{name: getattr(task, name) for name in task_rows.WRITABLE})


async def test_every_declared_field_goes_through_every_statement(
    conn: executor.Connection, tasks_repo: tasks.PgTasksRepository, user: domain.User
) -> None:
    """Insert, select, update, the batch statements and the outbox carry every field."""
    db = executor.Executor(conn)
    batches_repo = task_batches.PgTaskBatchesRepository(db)
    outbox = changes.PgChangesRepository(db)
    one = await tasks_repo.add(user.id, _every_field(1))
    assert _written(one) == _every_field(1)
    assert await tasks_repo.get(user.id, one.id) == one
    everything = frozenset(task_rows.WRITABLE)
    two = await tasks_repo.update(user.id, one.id, domain.TaskPatch(_every_field(2), everything), 1)
    assert two is not None and _written(two) == _every_field(2)
    [three] = await batches_repo.add_many(user.id, [_every_field(3)])
    assert _written(three) == _every_field(3)
    update = domain.TaskUpdate(three.id, domain.TaskPatch(_every_field(4), everything), 1)
    [four] = await batches_repo.update_many(user.id, [update])
    assert _written(four) == _every_field(4) and await tasks_repo.get(user.id, four.id) == four
    snapshots = [c.task for c in await outbox.read(user.id, 0, 10)]
    assert snapshots == [one, two, three, four]
    listed = await tasks_repo.list_page(user.id, domain.TaskQuery(), 10, None)
    assert {t.id: t for t in listed.tasks} == {two.id: two, four.id: four}


async def test_migrated_tasks_table_has_the_declared_columns(conn: executor.Connection) -> None:
    cursor = await conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_name = 'tasks' ORDER BY ordinal_position"
    )
    assert [row[0] for row in await cursor.fetchall()] == list(task_rows.NAMES)
