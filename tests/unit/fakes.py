"""In-memory fakes of the storage ports, for unit tests of the use cases."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from server import domain, errors
from server.servicers import ndjson
from server.services import ports


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class FakeUsers:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, domain.Credentials] = {}

    async def add(self, email: str, password_hash: str, name: str) -> domain.User:
        email = domain.normalize_email(email)
        if any(c.user.email == email for c in self.rows.values()):
            raise errors.AlreadyExists("email is already registered", reason="EMAIL_TAKEN")
        user = domain.User(uuid.uuid4(), email, name, "UTC", now(), now())
        self.rows[user.id] = domain.Credentials(user, password_hash)
        return user

    async def get(self, user_id: uuid.UUID) -> domain.User | None:
        row = self.rows.get(user_id)
        return row.user if row else None

    async def get_credentials(self, email: str) -> domain.Credentials | None:
        email = domain.normalize_email(email)
        return next((c for c in self.rows.values() if c.user.email == email), None)

    async def get_password_hash(self, user_id: uuid.UUID) -> str | None:
        row = self.rows.get(user_id)
        return row.password_hash if row else None

    async def update(self, user_id: uuid.UUID, patch: domain.UserPatch) -> domain.User | None:
        row = self.rows.get(user_id)
        if row is None:
            return None
        email = domain.normalize_email(patch.email) if patch.email is not None else None
        if email is not None and any(
            c.user.email == email and uid != user_id for uid, c in self.rows.items()
        ):
            raise errors.AlreadyExists("email is already registered", reason="EMAIL_TAKEN")
        changes = {k: v for k, v in dataclasses.asdict(patch).items() if v is not None}
        if email is not None:
            changes["email"] = email
        user = dataclasses.replace(row.user, **changes, updated_at=now())
        self.rows[user_id] = domain.Credentials(user, row.password_hash)
        return user

    async def set_password(
        self, user_id: uuid.UUID, expected_hash: str, new_hash: str
    ) -> domain.User | None:
        row = self.rows.get(user_id)
        if row is None or row.password_hash != expected_hash:
            return None
        user = dataclasses.replace(row.user, updated_at=now())
        self.rows[user_id] = domain.Credentials(user, new_hash)
        return user

    async def delete(self, user_id: uuid.UUID) -> bool:
        return self.rows.pop(user_id, None) is not None


@dataclasses.dataclass
class _Session:
    user_id: uuid.UUID
    refresh_jti: str
    expires_at: dt.datetime
    revoked: bool = False


class FakeSessions:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, _Session] = {}

    async def add(
        self, session_id: uuid.UUID, user_id: uuid.UUID, refresh_jti: str, expires_at: dt.datetime
    ) -> None:
        self.rows[session_id] = _Session(user_id, refresh_jti, expires_at)

    async def rotate(self, session_id: uuid.UUID, old_jti: str, new_jti: str) -> bool:
        row = self.rows.get(session_id)
        if row is None or row.revoked or row.refresh_jti != old_jti:
            return False
        row.refresh_jti = new_jti
        return True

    async def revoke(self, session_id: uuid.UUID) -> bool:
        row = self.rows.get(session_id)
        if row is None or row.revoked:
            return False
        row.revoked = True
        return True

    async def revoke_all(self, user_id: uuid.UUID, keep: uuid.UUID | None = None) -> int:
        mine = [
            row
            for sid, row in self.rows.items()
            if row.user_id == user_id and not row.revoked and sid != keep
        ]
        for row in mine:
            row.revoked = True
        return len(mine)

    async def revoked_since(self, seconds: float) -> list[uuid.UUID]:
        return [sid for sid, row in self.rows.items() if row.revoked]

    async def is_active(self, session_id: uuid.UUID) -> bool:
        row = self.rows.get(session_id)
        return row is not None and not row.revoked and row.expires_at > now()


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _fields(task: domain.Task) -> tuple[Any, ...]:
    """A task in `domain.WireForm.FIELDS`."""
    values = []
    for field in domain.TASK_SCHEMA:
        value = getattr(task, field.name)
        if field.kind is domain.FieldKind.UUID:
            value = str(value)
        elif field.kind is domain.FieldKind.VERSION:
            value = domain.etag(value)
        elif field.kind is domain.FieldKind.PRIORITY:
            value = int(value)
        elif field.kind is domain.FieldKind.TAGS:
            value = list(value)
        elif field.kind is domain.FieldKind.TIME and value is not None:
            value = (value - EPOCH) // dt.timedelta(microseconds=1)
        values.append(value)
    return tuple(values)


class FakeTasks:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, domain.Task] = {}

    async def add(self, user_id: uuid.UUID, fields: domain.TaskFields) -> domain.Task:
        stamp = now()
        task = domain.Task(
            id=uuid.uuid4(),
            user_id=user_id,
            completed_at=stamp if fields.completed else None,
            created_at=stamp,
            updated_at=stamp,
            version=1,
            **dataclasses.asdict(fields),
        )
        self.rows[task.id] = task
        return task

    async def get(self, user_id: uuid.UUID, task_id: uuid.UUID) -> domain.Task | None:
        task = self.rows.get(task_id)
        return task if task is not None and task.user_id == user_id else None

    async def list_page(
        self,
        user_id: uuid.UUID,
        query: domain.TaskQuery,
        page_size: int,
        after: domain.PageCursor | None,
        *,
        count: bool = True,
    ) -> domain.TaskPage:
        """Newest first only; filters other than `completed` are not modelled."""
        assert query.order == domain.DEFAULT_ORDER, "the fake only orders newest first"
        mine = sorted(
            (
                t
                for t in self.rows.values()
                if t.user_id == user_id
                and (query.filter.completed is None or t.completed == query.filter.completed)
            ),
            key=lambda t: (t.created_at, t.id),
            reverse=True,
        )
        rest = [
            t
            for t in mine
            if after is None or (t.created_at, t.id) < (after.keys[0], after.task_id)
        ]
        page = rest[:page_size]
        total = after.total_size if after else len(mine)
        cursor = None
        if len(rest) > page_size:
            cursor = domain.PageCursor((page[-1].created_at,), page[-1].id, total)
        return domain.TaskPage(page, cursor, total)

    async def stream_chunk(
        self,
        user_id: uuid.UUID,
        query: domain.TaskQuery,
        size: int,
        after: domain.PageCursor | None,
        form: domain.WireForm,
    ) -> domain.TaskChunk:
        """`list_page` in the wire form (the servicers' encoders are tested on PostgreSQL)."""
        page = await self.list_page(user_id, query, size, after, count=False)
        if form is domain.WireForm.NDJSON:
            items: list[Any] = [ndjson.lines([t])[:-1] for t in page.tasks]
        else:
            items = [_fields(t) for t in page.tasks]
        return domain.TaskChunk(items, page.next_cursor)

    async def stats(self, user_id: uuid.UUID, task_filter: domain.TaskFilter) -> domain.TaskStats:
        raise NotImplementedError("stats are tested on PostgreSQL")

    async def tags(self, user_id: uuid.UUID) -> list[tuple[str, int]]:
        counts: dict[str, int] = {}
        for task in self.rows.values():
            if task.user_id == user_id:
                for tag in task.tags:
                    counts[tag] = counts.get(tag, 0) + 1
        return sorted(counts.items())

    async def reminders(
        self, user_id: uuid.UUID, window: dt.timedelta, limit: int
    ) -> list[domain.Reminder]:
        start = now()
        due = [
            t
            for t in self.rows.values()
            if t.user_id == user_id
            and not t.completed
            and t.remind_at is not None
            and start <= t.remind_at < start + window
        ]
        due.sort(key=lambda t: (t.remind_at, t.id))
        return [domain.Reminder(t.id, t.title, t.remind_at, t.due_at) for t in due[:limit]]  # type: ignore[arg-type]

    async def update(
        self,
        user_id: uuid.UUID,
        task_id: uuid.UUID,
        patch: domain.TaskPatch,
        expected_version: int | None,
    ) -> domain.Task | None:
        task = await self.get(user_id, task_id)
        if task is None or (expected_version is not None and task.version != expected_version):
            return None
        changes = {name: getattr(patch.fields, name) for name in patch.present}
        if "completed" in changes and changes["completed"] != task.completed:
            changes["completed_at"] = now() if changes["completed"] else None
        task = dataclasses.replace(task, **changes, version=task.version + 1, updated_at=now())
        self.rows[task_id] = task
        return task

    async def delete(self, user_id: uuid.UUID, task_id: uuid.UUID) -> bool:
        if await self.get(user_id, task_id) is None:
            return False
        del self.rows[task_id]
        return True


class FakeRateLimits:
    """GCRA buckets like repositories/rate_limits.py, on a clock the test can move."""

    def __init__(self) -> None:
        self.tat: dict[str, float] = {}
        self.clock = 0.0
        self.hits: list[str] = []

    async def hit(self, key: str, limit: int, period_s: float) -> float:
        interval = period_s / limit
        tat = max(self.tat.get(key, self.clock), self.clock) + interval
        if tat - self.clock > period_s:
            return tat - period_s - self.clock
        self.tat[key] = tat
        self.hits.append(key)
        return 0.0

    async def prune(self) -> int:
        drained = [key for key, tat in self.tat.items() if tat < self.clock]
        for key in drained:
            del self.tat[key]
        return len(drained)


class FakeChanges:
    """The outbox: tests append changes with `record`."""

    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, list[domain.TaskChange]] = {}
        self.latest: dict[uuid.UUID, int] = {}

    def record(self, user_id: uuid.UUID, kind: domain.ChangeKind, task: domain.Task) -> None:
        seq = self.latest.get(user_id, 0) + 1
        self.latest[user_id] = seq
        change = domain.TaskChange(seq, kind, task.id, task, now())
        self.rows.setdefault(user_id, []).append(change)

    async def read(self, user_id: uuid.UUID, after_seq: int, limit: int) -> list[domain.TaskChange]:
        return [c for c in self.rows.get(user_id, []) if c.seq > after_seq][:limit]

    async def bounds(self, user_id: uuid.UUID) -> tuple[int, int | None] | None:
        rows = self.rows.get(user_id, [])
        return self.latest.get(user_id, 0), (rows[0].seq if rows else None)

    async def prune(self, older_than_s: float) -> int:
        return 0


class FakeBatches:
    def __init__(self, tasks: FakeTasks) -> None:
        self._tasks = tasks

    async def add_many(
        self, user_id: uuid.UUID, items: list[domain.TaskFields]
    ) -> list[domain.Task]:
        return [await self._tasks.add(user_id, fields) for fields in items]

    async def update_many(
        self, user_id: uuid.UUID, items: list[domain.TaskUpdate]
    ) -> list[domain.Task]:
        written = [
            await self._tasks.update(user_id, i.task_id, i.patch, i.expected_version) for i in items
        ]
        return [t for t in written if t is not None]

    async def set_completed_many(
        self, user_id: uuid.UUID, ids: list[uuid.UUID], completed: bool
    ) -> list[domain.Task]:
        patch = domain.TaskPatch(
            domain.TaskFields(title="", completed=completed), frozenset({"completed"})
        )
        written = [await self._tasks.update(user_id, i, patch, None) for i in ids]
        return [t for t in written if t is not None]

    async def delete_many(self, user_id: uuid.UUID, ids: list[uuid.UUID]) -> int:
        return sum([await self._tasks.delete(user_id, i) for i in ids])

    async def versions(self, user_id: uuid.UUID, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        found = [await self._tasks.get(user_id, i) for i in ids]
        return {t.id: t.version for t in found if t is not None}


class FakeIdempotency:
    def __init__(self) -> None:
        self.rows: dict[tuple[uuid.UUID, str, str], tuple[bytes, list[domain.Task]]] = {}

    async def claim(
        self, user_id: uuid.UUID, route: str, request_id: str, request_hash: bytes
    ) -> tuple[bytes, list[domain.Task]] | None:
        key = (user_id, route, request_id)
        if key in self.rows:
            return self.rows[key]
        self.rows[key] = (request_hash, [])
        return None

    async def complete(
        self, user_id: uuid.UUID, route: str, request_id: str, answer: list[domain.Task]
    ) -> None:
        key = (user_id, route, request_id)
        self.rows[key] = (self.rows[key][0], answer)

    async def prune(self, older_than_s: float) -> int:
        return 0


class FakeStore:
    """Shared state behind every FakeUnitOfWork of one test."""

    def __init__(self) -> None:
        self.users = FakeUsers()
        self.sessions = FakeSessions()
        self.tasks = FakeTasks()
        self.rate_limits = FakeRateLimits()
        self.changes = FakeChanges()
        self.batches = FakeBatches(self.tasks)
        self.idempotency = FakeIdempotency()
        self.commits = 0
        self.rollbacks = 0

    def _state(self) -> list[dict[Any, Any]]:
        return [
            self.users.rows,
            self.sessions.rows,
            self.tasks.rows,
            self.rate_limits.tat,
            self.changes.rows,
            self.changes.latest,
            self.idempotency.rows,
        ]

    def snapshot(self) -> list[dict[Any, Any]]:
        """A deep copy of every table, to roll back to."""
        return copy.deepcopy(self._state())

    def restore(self, snapshot: list[dict[Any, Any]]) -> None:
        """Put every table back as it was in `snapshot` (in place: repositories keep them)."""
        for table, saved in zip(self._state(), copy.deepcopy(snapshot), strict=True):
            table.clear()
            table.update(saved)
        self.rollbacks += 1


class FakeUnitOfWork:
    """Like the real one: leaving the block undoes whatever was not committed."""

    users: ports.UsersRepository
    sessions: ports.SessionsRepository
    tasks: ports.TasksRepository
    rate_limits: ports.RateLimitsRepository
    changes: ports.ChangesRepository
    batches: ports.TaskBatchesRepository
    idempotency: ports.IdempotencyRepository

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.users = store.users
        self.sessions = store.sessions
        self.tasks = store.tasks
        self.rate_limits = store.rate_limits
        self.changes = store.changes
        self.batches = store.batches
        self.idempotency = store.idempotency
        self.committed = False
        self._saved: list[dict[Any, Any]] | None = None

    async def __aenter__(self) -> Self:
        self._saved = self.store.snapshot()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._saved is not None and self.store.snapshot() != self._saved:
            self.store.restore(self._saved)  # rolled back: nothing since the last commit stays
        self._saved = None

    async def commit(self) -> None:
        self.committed = True
        self.store.commits += 1
        if self._saved is not None:
            self._saved = self.store.snapshot()

    def autocommit(self) -> FakeAutocommit:
        return FakeAutocommit(self)


class FakeAutocommit:
    """No transaction: every write stands as soon as it is made."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def __aenter__(self) -> FakeUnitOfWork:
        return self._uow

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


if TYPE_CHECKING:  # mypy (make lint) proves every fake implements its port
    _uow: type[ports.UnitOfWork] = FakeUnitOfWork
    _autocommit: type[ports.Autocommit] = FakeAutocommit
    _users: type[ports.UsersRepository] = FakeUsers
    _sessions: type[ports.SessionsRepository] = FakeSessions
    _tasks: type[ports.TasksRepository] = FakeTasks
    _changes: type[ports.ChangesRepository] = FakeChanges
    _batches: type[ports.TaskBatchesRepository] = FakeBatches
    _idempotency: type[ports.IdempotencyRepository] = FakeIdempotency
    _rate_limits: type[ports.RateLimitsRepository] = FakeRateLimits
