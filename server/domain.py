"""Domain types: frozen dataclasses that cross layers. No grpc, no SQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from collections.abc import Sequence

TASK_FIELDS = frozenset(
    {"title", "description", "completed", "priority", "due_at", "remind_at", "category", "tags"}
)
"""The writable fields of a task, by their API (snake_case) names."""


class Priority(enum.IntEnum):
    """Task priority; the values match `todo.v1.Priority` and sort LOW first."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    URGENT = 4


@dataclasses.dataclass(frozen=True)
class Principal:
    """The authenticated caller, taken from a verified access token."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: str
    expires_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class User:
    """An account as the API shows it."""

    id: uuid.UUID
    email: str
    name: str
    timezone: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class Credentials:
    """A user and the stored hash of their password."""

    user: User
    password_hash: str


@dataclasses.dataclass(frozen=True)
class TaskFields:
    """The writable fields of a task, all set (defaults where the caller sent nothing)."""

    title: str
    description: str = ""
    completed: bool = False
    priority: Priority = Priority.MEDIUM
    due_at: dt.datetime | None = None
    remind_at: dt.datetime | None = None
    category: str = ""
    tags: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class TaskPatch:
    """A partial update: `present` names the fields of `fields` that change."""

    fields: TaskFields
    present: frozenset[str]

    def __post_init__(self) -> None:
        unknown = self.present - TASK_FIELDS
        if unknown:
            raise ValueError(f"not task fields: {sorted(unknown)}")


@dataclasses.dataclass(frozen=True)
class Task:
    """A stored task."""

    id: uuid.UUID
    user_id: uuid.UUID
    title: str
    description: str
    completed: bool
    completed_at: dt.datetime | None
    priority: Priority
    due_at: dt.datetime | None
    remind_at: dt.datetime | None
    category: str
    tags: tuple[str, ...]
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int

    @property
    def etag(self) -> str:
        """Opaque version tag; changes on every write."""
        return f"v{self.version}"


@dataclasses.dataclass(frozen=True)
class PageCursor:
    """Where the next page starts: after the task with this (created_at, id)."""

    created_at: dt.datetime
    task_id: uuid.UUID


@dataclasses.dataclass(frozen=True)
class TaskPage:
    """One page of tasks and where the next one starts."""

    tasks: Sequence[Task]
    next_cursor: PageCursor | None
    total_size: int


@dataclasses.dataclass(frozen=True)
class TokenPair:
    """What a login or refresh hands out."""

    access_token: str
    refresh_token: str
    expires_in: int
    user: User
