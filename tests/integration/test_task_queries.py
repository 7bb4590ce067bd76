"""Filters, orders, keyset pages, stats, tags and reminders on real PostgreSQL.

Every expectation is computed in Python from the stored tasks, independently
of the SQL, over a data set with ties, missing due dates and mixed fields.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

import pytest

from server import domain
from server.db import executor
from server.repositories import tasks
from server.repositories.tasks import PgTasksRepository
from server.services import queries

NOW = dt.datetime.now(dt.UTC)
P = domain.Priority


@pytest.fixture
async def dataset(
    tasks_repo: PgTasksRepository, user: domain.User, conn: executor.Connection
) -> list[domain.Task]:
    """30 tasks: every 3rd without a due date, priorities and categories cycling, ties in time."""
    created = []
    for i in range(30):
        fields = domain.TaskFields(
            title=["alpha", "Beta", "gamma", "50% off", "under_score", "Alpha"][i % 6]
            + f" {i % 4}",
            description="milk and honey" if i % 5 == 0 else "",
            completed=i % 4 == 0,
            priority=list(P)[i % 4],
            due_at=None if i % 3 == 0 else NOW + dt.timedelta(hours=(i % 7) - 3, minutes=30),
            remind_at=NOW + dt.timedelta(hours=i) if i % 2 else None,
            category=["", "home", "work"][i % 3],
            tags=tuple(t for t, on in (("a", i % 2 == 0), ("b", i % 3 == 0)) if on),
        )
        created.append(await tasks_repo.add(user.id, fields))
    for i, task in enumerate(created):  # pairs share created_at; updated_at spread out
        await conn.execute(
            "UPDATE tasks SET created_at = now() - make_interval(mins => %s),"
            " updated_at = now() - make_interval(mins => %s) WHERE id = %s",
            (i // 2, (i * 7) % 30, task.id),
        )
    return [t for t in [await tasks_repo.get(user.id, t.id) for t in created] if t is not None]


async def walk(
    repo: PgTasksRepository, user_id: uuid.UUID, query: domain.TaskQuery, size: int
) -> list[domain.Task]:
    seen: list[domain.Task] = []
    after = None
    while True:
        page = await repo.list_page(user_id, query, size, after)
        seen.extend(page.tasks)
        if page.next_cursor is None:
            return seen
        after = page.next_cursor


def sort_key(order: tuple[domain.Order, ...]) -> Callable[[domain.Task], tuple]:
    """The expected order, written independently of the SQL."""

    def key(task: domain.Task) -> tuple:
        parts: list = []
        for term in order:
            sign = -1 if term.descending else 1
            if term.key is domain.SortKey.DUE_AT:
                parts.append(task.due_at is None)
                parts.append(0 if task.due_at is None else sign * task.due_at.timestamp())
            elif term.key is domain.SortKey.TITLE:
                parts.append(_Text(task.title.lower(), term.descending))
            elif term.key is domain.SortKey.PRIORITY:
                parts.append(sign * int(task.priority))
            else:
                parts.append(sign * getattr(task, term.key.value).timestamp())
        parts.append(_Text(task.id.hex, order[-1].descending))
        return tuple(parts)

    return key


class _Text:
    def __init__(self, value: str, descending: bool) -> None:
        self.value, self.descending = value, descending

    def __lt__(self, other: _Text) -> bool:
        return self.value > other.value if self.descending else self.value < other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Text) and self.value == other.value


ORDERS = [
    "",
    "created_at",
    "updated_at desc",
    "due_at",
    "due_at desc",
    "priority",
    "priority desc, title",
    "title desc",
    "due_at desc, priority, created_at",
]


@pytest.mark.parametrize("order_by", ORDERS)
@pytest.mark.parametrize("size", [1, 4, 50])
async def test_every_order_walks_every_task_once_in_order(
    tasks_repo: PgTasksRepository,
    user: domain.User,
    dataset: list[domain.Task],
    order_by: str,
    size: int,
) -> None:
    order = queries.parse_order_by(order_by)
    got = await walk(tasks_repo, user.id, domain.TaskQuery(order=order), size)
    assert [t.id for t in got] == [t.id for t in sorted(dataset, key=sort_key(order))]


FILTERS: list[tuple[domain.TaskFilter, Callable[[domain.Task], bool]]] = [
    (queries.make_filter(completed=True), lambda t: t.completed),
    (queries.make_filter(completed=False), lambda t: not t.completed),
    (queries.make_filter(priorities=[P.HIGH, P.LOW]), lambda t: t.priority in (P.HIGH, P.LOW)),
    (queries.make_filter(category="home"), lambda t: t.category == "home"),
    (queries.make_filter(category=""), lambda t: t.category == ""),
    (queries.make_filter(tags=["A"]), lambda t: "a" in t.tags),
    (queries.make_filter(tags=["a", "b"]), lambda t: {"a", "b"} <= set(t.tags)),
    (queries.make_filter(due_after=NOW), lambda t: t.due_at is not None and t.due_at >= NOW),
    (queries.make_filter(due_before=NOW), lambda t: t.due_at is not None and t.due_at < NOW),
    (
        queries.make_filter(overdue=True),
        lambda t: not t.completed and t.due_at is not None and t.due_at < NOW,
    ),
    (
        queries.make_filter(overdue=False),
        lambda t: t.completed or t.due_at is None or t.due_at >= NOW,
    ),
    (queries.make_filter(q="MILK"), lambda t: "milk" in (t.title + " " + t.description).lower()),
    (queries.make_filter(q="50%"), lambda t: "50%" in t.title),
    (queries.make_filter(q="r_s"), lambda t: "r_s" in t.title),
    (queries.make_filter(q="%"), lambda t: "%" in t.title),
    (
        queries.make_filter(q="milk", tags=["a"]),
        lambda t: "milk" in t.description and "a" in t.tags,
    ),
    (
        queries.make_filter(completed=False, category="work", tags=["a"]),
        lambda t: not t.completed and t.category == "work" and "a" in t.tags,
    ),
]


@pytest.mark.parametrize(("task_filter", "expected"), FILTERS)
async def test_filters_select_exactly_the_matching_tasks(
    tasks_repo: PgTasksRepository,
    user: domain.User,
    other_user: domain.User,
    dataset: list[domain.Task],
    task_filter: domain.TaskFilter,
    expected: Callable[[domain.Task], bool],
) -> None:
    await tasks_repo.add(other_user.id, domain.TaskFields(title="milk 50% r_s", tags=("a", "b")))
    query = domain.TaskQuery(task_filter)
    got = await walk(tasks_repo, user.id, query, 7)
    want = sorted((t for t in dataset if expected(t)), key=sort_key(query.order))
    assert [t.id for t in got] == [t.id for t in want]
    first = await tasks_repo.list_page(user.id, query, 7, None)
    assert first.total_size == len(want)


Q_FILTERS = [(f, e) for f, e in FILTERS if f.q]


@pytest.mark.parametrize(("task_filter", "expected"), Q_FILTERS)
@pytest.mark.parametrize("size", [1, 3])
@pytest.mark.parametrize("order_by", ["", "due_at desc, priority, created_at"])
async def test_q_falls_back_to_the_trigram_path_when_the_walk_runs_dry(
    tasks_repo: PgTasksRepository,
    user: domain.User,
    dataset: list[domain.Task],
    monkeypatch: pytest.MonkeyPatch,
    task_filter: domain.TaskFilter,
    expected: Callable[[domain.Task], bool],
    size: int,
    order_by: str,
) -> None:
    """A walk of 4 * (size + 1) rows over 30 tasks: rare terms need step two, common ones not."""
    monkeypatch.setattr(tasks, "WALK", 1)
    query = domain.TaskQuery(task_filter, queries.parse_order_by(order_by))
    got = await walk(tasks_repo, user.id, query, size)
    want = sorted((t for t in dataset if expected(t)), key=sort_key(query.order))
    assert [t.id for t in got] == [t.id for t in want]
    first = await tasks_repo.list_page(user.id, query, size, None)
    assert first.total_size == len(want)


async def test_a_tag_filter_follows_tag_changes_and_deletions(
    tasks_repo: PgTasksRepository, user: domain.User, dataset: list[domain.Task]
) -> None:
    """The tag walk (task_tags) sees a tag added, a tag removed and a task deleted."""
    plain = next(t for t in dataset if not t.tags)
    tagged = [t for t in dataset if "a" in t.tags]
    patch = domain.TaskPatch(domain.TaskFields(title="x", tags=("a", "z")), frozenset({"tags"}))
    await tasks_repo.update(user.id, plain.id, patch, None)
    untag = domain.TaskPatch(domain.TaskFields(title="x", tags=("b",)), frozenset({"tags"}))
    await tasks_repo.update(user.id, tagged[0].id, untag, None)
    await tasks_repo.delete(user.id, tagged[1].id)
    query = domain.TaskQuery(queries.make_filter(tags=["a"]))
    got = {t.id for t in await walk(tasks_repo, user.id, query, 4)}
    assert got == {plain.id, *(t.id for t in tagged[2:])}
    assert (await tasks_repo.list_page(user.id, query, 4, None)).total_size == len(got)
    assert ("z", 1) in await tasks_repo.tags(user.id)


async def test_pages_stay_consistent_while_tasks_change(
    tasks_repo: PgTasksRepository, user: domain.User, dataset: list[domain.Task]
) -> None:
    query = domain.TaskQuery()
    expected = [t.id for t in sorted(dataset, key=sort_key(query.order))]
    first = await tasks_repo.list_page(user.id, query, 10, None)
    await tasks_repo.add(user.id, domain.TaskFields(title="inserted while walking"))
    deleted = expected[15]
    await tasks_repo.delete(user.id, deleted)
    rest = []
    after = first.next_cursor
    while after is not None:
        page = await tasks_repo.list_page(user.id, query, 10, after)
        rest.extend(page.tasks)
        after = page.next_cursor
    got = [t.id for t in [*first.tasks, *rest]]
    assert got == [i for i in expected if i != deleted]


async def test_stats_count_in_the_users_time_zone(
    tasks_repo: PgTasksRepository,
    user: domain.User,
    conn: executor.Connection,
    dataset: list[domain.Task],
) -> None:
    await conn.execute("UPDATE users SET timezone = 'Pacific/Kiritimati' WHERE id = %s", (user.id,))
    stats = await tasks_repo.stats(user.id, domain.TaskFilter())
    tz = dt.timezone(dt.timedelta(hours=14))
    today = dt.datetime.now(tz).date()
    assert stats.total == 30
    assert stats.completed == sum(t.completed for t in dataset)
    assert stats.overdue == sum(
        1
        for t in dataset
        if not t.completed and t.due_at is not None and t.due_at < dt.datetime.now(dt.UTC)
    )
    assert stats.due_today == sum(
        1
        for t in dataset
        if not t.completed and t.due_at and t.due_at.astimezone(tz).date() == today
    )
    assert [p for p, _ in stats.by_priority] == list(P)
    assert sum(n for _, n in stats.by_priority) == 30
    assert dict(stats.by_category) == {
        c: sum(t.category == c for t in dataset) for c in ("", "home", "work")
    }
    assert stats.completed_per_day == ((today, sum(t.completed for t in dataset)),)
    filtered = await tasks_repo.stats(user.id, queries.make_filter(category="home"))
    assert filtered.total == sum(t.category == "home" for t in dataset)


async def test_stats_of_nothing(tasks_repo: PgTasksRepository, user: domain.User) -> None:
    stats = await tasks_repo.stats(user.id, domain.TaskFilter())
    assert (stats.total, stats.by_category, stats.completed_per_day) == (0, (), ())
    assert stats.by_priority == tuple((p, 0) for p in P)


async def test_tags_and_reminders(
    tasks_repo: PgTasksRepository,
    user: domain.User,
    other_user: domain.User,
    dataset: list[domain.Task],
) -> None:
    await tasks_repo.add(other_user.id, domain.TaskFields(title="x", tags=("zzz",)))
    counts = {tag: sum(tag in t.tags for t in dataset) for tag in ("a", "b")}
    assert await tasks_repo.tags(user.id) == sorted(counts.items())
    reminders = await tasks_repo.reminders(user.id, dt.timedelta(hours=6), 100)
    now = dt.datetime.now(dt.UTC)
    expected = sorted(
        (
            t
            for t in dataset
            if not t.completed and t.remind_at and now <= t.remind_at < now + dt.timedelta(hours=6)
        ),
        key=lambda t: t.remind_at,  # type: ignore[arg-type,return-value]
    )
    assert [r.task_id for r in reminders] == [t.id for t in expected] and expected


def test_order_by_parsing() -> None:
    assert queries.parse_order_by("  ") == domain.DEFAULT_ORDER
    assert queries.parse_order_by("title DESC,due_at") == (
        domain.Order(domain.SortKey.TITLE, True),
        domain.Order(domain.SortKey.DUE_AT, False),
    )
    for bad in (
        "title; drop table tasks",
        "colour",
        "title sideways",
        "title,title",
        "title desc x",
        ",",
    ):
        with pytest.raises(Exception) as caught:
            queries.parse_order_by(bad)
        assert caught.value.violations[0].field == "order_by"  # type: ignore[attr-defined]
