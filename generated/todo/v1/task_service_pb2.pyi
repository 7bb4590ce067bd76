import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from todo.v1 import task_pb2 as _task_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListTasksRequest(_message.Message):
    __slots__ = ("user_id", "page_size", "page_token", "completed", "priority", "category", "tag", "due_after", "due_before", "overdue", "q", "order_by")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    DUE_AFTER_FIELD_NUMBER: _ClassVar[int]
    DUE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    Q_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    page_size: int
    page_token: str
    completed: bool
    priority: _containers.RepeatedScalarFieldContainer[_task_pb2.Priority]
    category: str
    tag: _containers.RepeatedScalarFieldContainer[str]
    due_after: _timestamp_pb2.Timestamp
    due_before: _timestamp_pb2.Timestamp
    overdue: bool
    q: str
    order_by: str
    def __init__(self, user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., completed: _Optional[bool] = ..., priority: _Optional[_Iterable[_Union[_task_pb2.Priority, str]]] = ..., category: _Optional[str] = ..., tag: _Optional[_Iterable[str]] = ..., due_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., overdue: _Optional[bool] = ..., q: _Optional[str] = ..., order_by: _Optional[str] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "next_page_token", "total_size")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_task_pb2.Task]
    next_page_token: str
    total_size: int
    def __init__(self, tasks: _Optional[_Iterable[_Union[_task_pb2.Task, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class StreamTasksRequest(_message.Message):
    __slots__ = ("user_id", "completed", "priority", "category", "tag", "due_after", "due_before", "overdue", "q", "order_by")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    DUE_AFTER_FIELD_NUMBER: _ClassVar[int]
    DUE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    Q_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    completed: bool
    priority: _containers.RepeatedScalarFieldContainer[_task_pb2.Priority]
    category: str
    tag: _containers.RepeatedScalarFieldContainer[str]
    due_after: _timestamp_pb2.Timestamp
    due_before: _timestamp_pb2.Timestamp
    overdue: bool
    q: str
    order_by: str
    def __init__(self, user_id: _Optional[str] = ..., completed: _Optional[bool] = ..., priority: _Optional[_Iterable[_Union[_task_pb2.Priority, str]]] = ..., category: _Optional[str] = ..., tag: _Optional[_Iterable[str]] = ..., due_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., overdue: _Optional[bool] = ..., q: _Optional[str] = ..., order_by: _Optional[str] = ...) -> None: ...

class StreamTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_task_pb2.Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[_task_pb2.Task, _Mapping]]] = ...) -> None: ...

class WatchTasksRequest(_message.Message):
    __slots__ = ("user_id", "resume_token")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    resume_token: str
    def __init__(self, user_id: _Optional[str] = ..., resume_token: _Optional[str] = ...) -> None: ...

class BatchCreateTasksRequest(_message.Message):
    __slots__ = ("user_id", "tasks", "request_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    tasks: _containers.RepeatedCompositeFieldContainer[NewTask]
    request_id: str
    def __init__(self, user_id: _Optional[str] = ..., tasks: _Optional[_Iterable[_Union[NewTask, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class BatchUpdateTasksRequest(_message.Message):
    __slots__ = ("user_id", "tasks", "request_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    tasks: _containers.RepeatedCompositeFieldContainer[TaskUpdate]
    request_id: str
    def __init__(self, user_id: _Optional[str] = ..., tasks: _Optional[_Iterable[_Union[TaskUpdate, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class NewTask(_message.Message):
    __slots__ = ("title", "description", "completed", "priority", "due_at", "remind_at", "category", "tags")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    REMIND_AT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    title: str
    description: str
    completed: bool
    priority: _task_pb2.Priority
    due_at: _timestamp_pb2.Timestamp
    remind_at: _timestamp_pb2.Timestamp
    category: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, title: _Optional[str] = ..., description: _Optional[str] = ..., completed: _Optional[bool] = ..., priority: _Optional[_Union[_task_pb2.Priority, str]] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., remind_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., category: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskUpdate(_message.Message):
    __slots__ = ("id", "title", "description", "completed", "priority", "due_at", "remind_at", "category", "tags", "etag")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    REMIND_AT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    description: str
    completed: bool
    priority: _task_pb2.Priority
    due_at: _timestamp_pb2.Timestamp
    remind_at: _timestamp_pb2.Timestamp
    category: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    etag: str
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., completed: _Optional[bool] = ..., priority: _Optional[_Union[_task_pb2.Priority, str]] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., remind_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., category: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., etag: _Optional[str] = ...) -> None: ...

class BatchCompleteTasksRequest(_message.Message):
    __slots__ = ("user_id", "task_ids", "completed", "request_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    completed: bool
    request_id: str
    def __init__(self, user_id: _Optional[str] = ..., task_ids: _Optional[_Iterable[str]] = ..., completed: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class BatchDeleteTasksRequest(_message.Message):
    __slots__ = ("user_id", "task_ids", "request_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    def __init__(self, user_id: _Optional[str] = ..., task_ids: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class BatchTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_task_pb2.Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[_task_pb2.Task, _Mapping]]] = ...) -> None: ...

class GetTaskStatsRequest(_message.Message):
    __slots__ = ("user_id", "completed", "priority", "category", "tag", "due_after", "due_before", "overdue", "q")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    DUE_AFTER_FIELD_NUMBER: _ClassVar[int]
    DUE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    Q_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    completed: bool
    priority: _containers.RepeatedScalarFieldContainer[_task_pb2.Priority]
    category: str
    tag: _containers.RepeatedScalarFieldContainer[str]
    due_after: _timestamp_pb2.Timestamp
    due_before: _timestamp_pb2.Timestamp
    overdue: bool
    q: str
    def __init__(self, user_id: _Optional[str] = ..., completed: _Optional[bool] = ..., priority: _Optional[_Iterable[_Union[_task_pb2.Priority, str]]] = ..., category: _Optional[str] = ..., tag: _Optional[_Iterable[str]] = ..., due_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., overdue: _Optional[bool] = ..., q: _Optional[str] = ...) -> None: ...

class TaskStats(_message.Message):
    __slots__ = ("total", "completed", "open", "overdue", "due_today", "by_priority", "by_category", "completed_per_day")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    DUE_TODAY_FIELD_NUMBER: _ClassVar[int]
    BY_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    BY_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    total: int
    completed: int
    open: int
    overdue: int
    due_today: int
    by_priority: _containers.RepeatedCompositeFieldContainer[PriorityCount]
    by_category: _containers.RepeatedCompositeFieldContainer[CategoryCount]
    completed_per_day: _containers.RepeatedCompositeFieldContainer[DayCount]
    def __init__(self, total: _Optional[int] = ..., completed: _Optional[int] = ..., open: _Optional[int] = ..., overdue: _Optional[int] = ..., due_today: _Optional[int] = ..., by_priority: _Optional[_Iterable[_Union[PriorityCount, _Mapping]]] = ..., by_category: _Optional[_Iterable[_Union[CategoryCount, _Mapping]]] = ..., completed_per_day: _Optional[_Iterable[_Union[DayCount, _Mapping]]] = ...) -> None: ...

class PriorityCount(_message.Message):
    __slots__ = ("priority", "count")
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    priority: _task_pb2.Priority
    count: int
    def __init__(self, priority: _Optional[_Union[_task_pb2.Priority, str]] = ..., count: _Optional[int] = ...) -> None: ...

class CategoryCount(_message.Message):
    __slots__ = ("category", "count")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    category: str
    count: int
    def __init__(self, category: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class DayCount(_message.Message):
    __slots__ = ("date", "count")
    DATE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    date: str
    count: int
    def __init__(self, date: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class ListTagsRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class ListTagsResponse(_message.Message):
    __slots__ = ("tags",)
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedCompositeFieldContainer[TagCount]
    def __init__(self, tags: _Optional[_Iterable[_Union[TagCount, _Mapping]]] = ...) -> None: ...

class TagCount(_message.Message):
    __slots__ = ("name", "task_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    task_count: int
    def __init__(self, name: _Optional[str] = ..., task_count: _Optional[int] = ...) -> None: ...

class ListRemindersRequest(_message.Message):
    __slots__ = ("user_id", "window")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    window: _duration_pb2.Duration
    def __init__(self, user_id: _Optional[str] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ListRemindersResponse(_message.Message):
    __slots__ = ("reminders",)
    REMINDERS_FIELD_NUMBER: _ClassVar[int]
    reminders: _containers.RepeatedCompositeFieldContainer[Reminder]
    def __init__(self, reminders: _Optional[_Iterable[_Union[Reminder, _Mapping]]] = ...) -> None: ...

class Reminder(_message.Message):
    __slots__ = ("task_id", "title", "remind_at", "due_at")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    REMIND_AT_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    title: str
    remind_at: _timestamp_pb2.Timestamp
    due_at: _timestamp_pb2.Timestamp
    def __init__(self, task_id: _Optional[str] = ..., title: _Optional[str] = ..., remind_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateTaskRequest(_message.Message):
    __slots__ = ("user_id", "title", "description", "completed", "priority", "due_at", "remind_at", "category", "tags")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    REMIND_AT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    title: str
    description: str
    completed: bool
    priority: _task_pb2.Priority
    due_at: _timestamp_pb2.Timestamp
    remind_at: _timestamp_pb2.Timestamp
    category: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., completed: _Optional[bool] = ..., priority: _Optional[_Union[_task_pb2.Priority, str]] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., remind_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., category: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("user_id", "task_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    task_id: str
    def __init__(self, user_id: _Optional[str] = ..., task_id: _Optional[str] = ...) -> None: ...

class ReplaceTaskRequest(_message.Message):
    __slots__ = ("user_id", "task_id", "title", "description", "completed", "priority", "due_at", "remind_at", "category", "tags", "etag")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    REMIND_AT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    task_id: str
    title: str
    description: str
    completed: bool
    priority: _task_pb2.Priority
    due_at: _timestamp_pb2.Timestamp
    remind_at: _timestamp_pb2.Timestamp
    category: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    etag: str
    def __init__(self, user_id: _Optional[str] = ..., task_id: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., completed: _Optional[bool] = ..., priority: _Optional[_Union[_task_pb2.Priority, str]] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., remind_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., category: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., etag: _Optional[str] = ...) -> None: ...

class UpdateTaskRequest(_message.Message):
    __slots__ = ("user_id", "task_id", "title", "description", "completed", "priority", "due_at", "remind_at", "category", "tags", "update_mask", "etag")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    REMIND_AT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    task_id: str
    title: str
    description: str
    completed: bool
    priority: _task_pb2.Priority
    due_at: _timestamp_pb2.Timestamp
    remind_at: _timestamp_pb2.Timestamp
    category: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    update_mask: _field_mask_pb2.FieldMask
    etag: str
    def __init__(self, user_id: _Optional[str] = ..., task_id: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., completed: _Optional[bool] = ..., priority: _Optional[_Union[_task_pb2.Priority, str]] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., remind_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., category: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class DeleteTaskRequest(_message.Message):
    __slots__ = ("user_id", "task_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    task_id: str
    def __init__(self, user_id: _Optional[str] = ..., task_id: _Optional[str] = ...) -> None: ...

class CompleteTaskRequest(_message.Message):
    __slots__ = ("user_id", "task_id", "completed")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    task_id: str
    completed: bool
    def __init__(self, user_id: _Optional[str] = ..., task_id: _Optional[str] = ..., completed: _Optional[bool] = ...) -> None: ...
