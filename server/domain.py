"""Domain types: frozen dataclasses that cross layers. No grpc, no SQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from collections.abc import Sequence
from typing import Any

from server import fingerprints


class FieldKind(enum.Enum):
    """How a task field is stored, carried and shown; each layer maps a kind once."""

    UUID = "uuid"
    TEXT = "text"
    BOOL = "bool"
    PRIORITY = "priority"
    TIME = "time"
    """An aware datetime; optional fields are None (NULL, absent in the proto)."""
    TAGS = "tags"
    VERSION = "version"
    """The write counter; shown by the API as the `etag` "v<version>"."""


@dataclasses.dataclass(frozen=True)
class TaskField:
    """One field of a task, as declared in TASK_SCHEMA."""

    name: str
    """The name in the domain, the `tasks` column, the JSON and (except VERSION) the proto."""
    kind: FieldKind
    writable: bool = False
    """Whether a caller sets it (create, replace, update); the others are the server's."""
    optional: bool = False
    """Whether it may be None (NULL; absent in the proto and the JSON)."""

    @property
    def api_name(self) -> str:
        """The field's name in the proto and the REST JSON (the version is shown as `etag`)."""
        return "etag" if self.kind is FieldKind.VERSION else self.name


TASK_SCHEMA: tuple[TaskField, ...] = (
    TaskField("id", FieldKind.UUID),
    TaskField("user_id", FieldKind.UUID),
    TaskField("title", FieldKind.TEXT, writable=True),
    TaskField("description", FieldKind.TEXT, writable=True),
    TaskField("completed", FieldKind.BOOL, writable=True),
    TaskField("completed_at", FieldKind.TIME, optional=True),
    TaskField("priority", FieldKind.PRIORITY, writable=True),
    TaskField("due_at", FieldKind.TIME, writable=True, optional=True),
    TaskField("remind_at", FieldKind.TIME, writable=True, optional=True),
    TaskField("category", FieldKind.TEXT, writable=True),
    TaskField("tags", FieldKind.TAGS, writable=True),
    TaskField("created_at", FieldKind.TIME),
    TaskField("updated_at", FieldKind.TIME),
    TaskField("version", FieldKind.VERSION),
)
"""The one declaration of a task's fields, in proto order.

It drives the SQL column lists (select, insert, returning, batch recordsets,
the outbox JSON), row decoding by name, the proto converters, the NDJSON
writer and the JSON snapshots. `Task` and `TaskFields` below must match it;
tests/unit/test_task_schema.py fails when the proto, the SQLAlchemy model,
the migrations or these dataclasses disagree with it.
"""

WRITABLE_TASK_FIELDS: tuple[TaskField, ...] = tuple(f for f in TASK_SCHEMA if f.writable)
"""The fields a caller writes, in declaration order."""

TASK_FIELDS = frozenset(f.name for f in WRITABLE_TASK_FIELDS)
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


def normalize_email(raw: str) -> str:
    """An email address as stored and compared: trimmed and lowercased."""
    return raw.strip().lower()


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
class UserPatch:
    """A change to an account: the fields that are not None change."""

    name: str | None = None
    email: str | None = None
    timezone: str | None = None


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
class TaskUpdate:
    """One item of a batch update: which task, what changes, and its etag's version if given."""

    task_id: uuid.UUID
    patch: TaskPatch
    expected_version: int | None = None


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
        return etag(self.version)


ETAG_PREFIX = "v"
"""An etag is this prefix and the version number (also spelled in SQL by the streams)."""


def etag(version: int) -> str:
    """The API's opaque tag of a task version."""
    return f"{ETAG_PREFIX}{version}"


class SortKey(enum.Enum):
    """What a listing can be ordered by (the API's `order_by` names)."""

    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    DUE_AT = "due_at"
    PRIORITY = "priority"
    TITLE = "title"


@dataclasses.dataclass(frozen=True)
class Order:
    """One `order_by` term."""

    key: SortKey
    descending: bool = False

    def __str__(self) -> str:
        return f"{self.key.value} {'desc' if self.descending else 'asc'}"


DEFAULT_ORDER = (Order(SortKey.CREATED_AT, descending=True),)


@dataclasses.dataclass(frozen=True)
class TaskFilter:
    """Which tasks a listing, stream or stats call selects; None/empty means any."""

    completed: bool | None = None
    priorities: tuple[Priority, ...] = ()
    category: str | None = None
    tags: tuple[str, ...] = ()
    due_after: dt.datetime | None = None
    due_before: dt.datetime | None = None
    overdue: bool | None = None
    q: str = ""

    def fingerprint(self) -> str:
        """A canonical text of the filter, to bind page tokens to it."""
        return fingerprints.canonical(self)


@dataclasses.dataclass(frozen=True)
class TaskQuery:
    """A filter and an order (ties are always broken by id)."""

    filter: TaskFilter = TaskFilter()
    order: tuple[Order, ...] = DEFAULT_ORDER

    def fingerprint(self) -> str:
        """A canonical text of the query (filter and order), to bind page tokens to it."""
        return fingerprints.canonical(self)


CursorValue = dt.datetime | int | str | bool | None


@dataclasses.dataclass(frozen=True)
class PageCursor:
    """Where the next page starts: after the row with these sort-key values and id.

    `keys` are the values of the repository's sort expressions for that row;
    `total_size` is the count taken on the first page.
    """

    keys: tuple[CursorValue, ...]
    task_id: uuid.UUID
    total_size: int


@dataclasses.dataclass(frozen=True)
class TaskPage:
    """One page of tasks and where the next one starts."""

    tasks: Sequence[Task]
    next_cursor: PageCursor | None
    total_size: int


class WireForm(enum.Enum):
    """The form in which a stream reads tasks: ready for a wire encoder, no `Task` built.

    Streaming a million tasks is bound by per-task Python steps, so the database
    shapes each task for the wire it goes to.
    """

    FIELDS = "fields"
    """A tuple per task of its TASK_SCHEMA values, in that order, as the API shows them:
    ids and the version (the etag) as their strings, the priority as its number, tags a
    list, times as integer microseconds since the Unix epoch (None when unset)."""
    NDJSON = "ndjson"
    """The task's line of `tasks:stream` (the API's JSON, UTF-8, without the newline)."""


@dataclasses.dataclass(frozen=True)
class TaskChunk:
    """Consecutive matching tasks in a `WireForm`, and where the next chunk starts."""

    items: Sequence[Any]
    next_cursor: PageCursor | None


COMPLETED_PER_DAY_DAYS = 30
"""How many days (today included, in the user's time zone) `completed_per_day` covers."""


@dataclasses.dataclass(frozen=True)
class TaskStats:
    """Counts over the selected tasks (see `todo.v1.TaskStats`)."""

    total: int
    completed: int
    overdue: int
    due_today: int
    by_priority: tuple[tuple[Priority, int], ...]
    by_category: tuple[tuple[str, int], ...]
    completed_per_day: tuple[tuple[dt.date, int], ...]


@dataclasses.dataclass(frozen=True)
class Reminder:
    """An open task whose reminder is due soon."""

    task_id: uuid.UUID
    title: str
    remind_at: dt.datetime
    due_at: dt.datetime | None


class ChangeKind(enum.IntEnum):
    """What a committed write did to a task; the values match `todo.v1.EventType`."""

    CREATED = 1
    UPDATED = 2
    COMPLETED = 3
    REOPENED = 4
    DELETED = 5


@dataclasses.dataclass(frozen=True)
class TaskChange:
    """One committed change to one of a user's tasks, numbered per user."""

    seq: int
    kind: ChangeKind
    task_id: uuid.UUID
    task: Task | None
    committed_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class TokenPair:
    """What a login or refresh hands out."""

    access_token: str
    refresh_token: str
    expires_in: int
    user: User
