"""In-memory fakes of the storage ports, for unit tests of the use cases."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from types import TracebackType
from typing import Self

from server import domain, errors


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class FakeUsers:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, domain.Credentials] = {}

    async def add(self, email: str, password_hash: str, name: str) -> domain.User:
        if any(c.user.email == email for c in self.rows.values()):
            raise errors.AlreadyExists("email is already registered", reason="EMAIL_TAKEN")
        user = domain.User(uuid.uuid4(), email, name, "UTC", now(), now())
        self.rows[user.id] = domain.Credentials(user, password_hash)
        return user

    async def get(self, user_id: uuid.UUID) -> domain.User | None:
        row = self.rows.get(user_id)
        return row.user if row else None

    async def get_credentials(self, email: str) -> domain.Credentials | None:
        return next((c for c in self.rows.values() if c.user.email == email), None)


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

    async def revoke(self, session_id: uuid.UUID) -> None:
        if session_id in self.rows:
            self.rows[session_id].revoked = True

    async def revoked_since(self, seconds: float) -> list[uuid.UUID]:
        return [sid for sid, row in self.rows.items() if row.revoked]

    async def is_active(self, session_id: uuid.UUID) -> bool:
        row = self.rows.get(session_id)
        return row is not None and not row.revoked and row.expires_at > now()


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
        self, user_id: uuid.UUID, page_size: int, after: domain.PageCursor | None
    ) -> domain.TaskPage:
        mine = sorted(
            (t for t in self.rows.values() if t.user_id == user_id),
            key=lambda t: (t.created_at, t.id),
            reverse=True,
        )
        rest = [
            t
            for t in mine
            if after is None or (t.created_at, t.id) < (after.created_at, after.task_id)
        ]
        page = rest[:page_size]
        cursor = (
            domain.PageCursor(page[-1].created_at, page[-1].id) if len(rest) > page_size else None
        )
        return domain.TaskPage(page, cursor, len(mine))

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


class FakeStore:
    """Shared state behind every FakeUnitOfWork of one test."""

    def __init__(self) -> None:
        self.users = FakeUsers()
        self.sessions = FakeSessions()
        self.tasks = FakeTasks()
        self.commits = 0


class FakeUnitOfWork:
    """Commits are counted; the fake does not undo uncommitted writes."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.users = store.users
        self.sessions = store.sessions
        self.tasks = store.tasks
        self.committed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        self.committed = True
        self.store.commits += 1

    def read_only(self) -> FakeUnitOfWork:
        return self
