"""TaskService over gRPC: proto -> domain, one use case, domain -> proto."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from google.api import httpbody_pb2
from google.protobuf import empty_pb2
from todo.v1 import task_pb2, task_service_pb2, task_service_pb2_grpc

from server import domain
from server.auth import principal
from server.observability import metrics
from server.servicers import converters, ndjson
from server.services import batches, streams, tasks
from server.services.page_tokens import PageTokens, ResumeTokens
from server.services.ports import ChangeFeed, UnitOfWork

Context = Any
NDJSON = "application/json"
"""The content type of `tasks:stream` (one JSON object per line), as API.md's examples expect."""


def _batch_response(written: list[domain.Task]) -> task_service_pb2.BatchTasksResponse:
    return task_service_pb2.BatchTasksResponse(tasks=converters.tasks_to_proto(written))


class TaskServicer(task_service_pb2_grpc.TaskServiceServicer):
    """Adapter from the generated TaskService to `server.services.tasks`."""

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        page_tokens: PageTokens,
        feed: ChangeFeed,
        resume_tokens: ResumeTokens,
        heartbeat_s: float,
    ) -> None:
        self._uow = uow
        self._page_tokens = page_tokens
        self._feed = feed
        self._resume_tokens = resume_tokens
        self._heartbeat_s = heartbeat_s

    async def StreamTasks(
        self, request: task_service_pb2.StreamTasksRequest, context: Context
    ) -> AsyncIterator[task_service_pb2.StreamTasksResponse]:
        """Every matching task, in chunks."""
        query = converters.task_query(request)
        chunks = streams.stream_task_chunks(
            self._uow, principal.current(), request.user_id, query, domain.WireForm.FIELDS
        )
        async for chunk in chunks:
            yield task_service_pb2.StreamTasksResponse(tasks=converters.tasks_from_fields(chunk))

    async def StreamTasksNdjson(
        self, request: task_service_pb2.StreamTasksRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        """Every matching task as NDJSON, many lines per message (REST `tasks:stream`)."""
        query = converters.task_query(request)
        chunks = streams.stream_task_chunks(
            self._uow, principal.current(), request.user_id, query, domain.WireForm.NDJSON
        )
        async for chunk in chunks:
            yield httpbody_pb2.HttpBody(content_type=NDJSON, data=ndjson.join(chunk))

    async def WatchTasks(
        self, request: task_service_pb2.WatchTasksRequest, context: Context
    ) -> AsyncIterator[task_pb2.TaskEvent]:
        """The caller's changes as they commit, with heartbeats."""
        events = streams.watch_task_events(
            self._uow,
            self._feed,
            self._resume_tokens,
            principal.current(),
            request.user_id,
            request.resume_token,
            self._heartbeat_s,
        )
        async for change, token in events:
            try:
                yield converters.event_to_proto(change, token)
            except GeneratorExit:
                metrics.watch_event_dropped(change)
                raise
            metrics.watch_event_sent(change)

    async def ListTasks(
        self, request: task_service_pb2.ListTasksRequest, context: Context
    ) -> task_service_pb2.ListTasksResponse:
        """One page of tasks."""
        page, next_token = await tasks.list_tasks(
            self._uow(),
            self._page_tokens,
            principal.current(),
            request.user_id,
            converters.task_query(request),
            request.page_size,
            request.page_token,
        )
        return task_service_pb2.ListTasksResponse(
            tasks=[converters.task_to_proto(t) for t in page.tasks],
            next_page_token=next_token,
            total_size=page.total_size,
        )

    async def BatchCreateTasks(
        self, request: task_service_pb2.BatchCreateTasksRequest, context: Context
    ) -> task_service_pb2.BatchTasksResponse:
        """Create tasks, all or none."""
        items = [converters.task_fields(item) for item in request.tasks]
        written = await batches.batch_create(
            self._uow(), principal.current(), request.user_id, items, request.request_id
        )
        return _batch_response(written)

    async def BatchUpdateTasks(
        self, request: task_service_pb2.BatchUpdateTasksRequest, context: Context
    ) -> task_service_pb2.BatchTasksResponse:
        """Patch tasks, all or none."""
        items = [converters.batch_update_item(item) for item in request.tasks]
        written = await batches.batch_update(
            self._uow(), principal.current(), request.user_id, items, request.request_id
        )
        return _batch_response(written)

    async def BatchCompleteTasks(
        self, request: task_service_pb2.BatchCompleteTasksRequest, context: Context
    ) -> task_service_pb2.BatchTasksResponse:
        """Complete or reopen tasks, all or none."""
        completed = request.completed if request.HasField("completed") else True
        written = await batches.batch_complete(
            self._uow(),
            principal.current(),
            request.user_id,
            request.task_ids,
            completed,
            request.request_id,
        )
        return _batch_response(written)

    async def BatchDeleteTasks(
        self, request: task_service_pb2.BatchDeleteTasksRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete tasks, all or none."""
        await batches.batch_delete(
            self._uow(), principal.current(), request.user_id, request.task_ids, request.request_id
        )
        return empty_pb2.Empty()

    async def GetTaskStats(
        self, request: task_service_pb2.GetTaskStatsRequest, context: Context
    ) -> task_service_pb2.TaskStats:
        """Counts over the matching tasks."""
        stats = await tasks.get_stats(
            self._uow(), principal.current(), request.user_id, converters.task_filter(request)
        )
        return converters.stats_to_proto(stats)

    async def ListTags(
        self, request: task_service_pb2.ListTagsRequest, context: Context
    ) -> task_service_pb2.ListTagsResponse:
        """Tags in use."""
        tags = await tasks.list_tags(self._uow(), principal.current(), request.user_id)
        return task_service_pb2.ListTagsResponse(
            tags=[task_service_pb2.TagCount(name=name, task_count=n) for name, n in tags]
        )

    async def ListReminders(
        self, request: task_service_pb2.ListRemindersRequest, context: Context
    ) -> task_service_pb2.ListRemindersResponse:
        """Reminders due within the window."""
        window = converters.optional_duration(request, "window")
        reminders = await tasks.list_reminders(
            self._uow(), principal.current(), request.user_id, window
        )
        return task_service_pb2.ListRemindersResponse(
            reminders=[converters.reminder_to_proto(r) for r in reminders]
        )

    async def CreateTask(
        self, request: task_service_pb2.CreateTaskRequest, context: Context
    ) -> task_pb2.Task:
        """Create a task."""
        fields = converters.task_fields(request)
        task = await tasks.create_task(self._uow(), principal.current(), request.user_id, fields)
        return converters.task_to_proto(task)

    async def GetTask(
        self, request: task_service_pb2.GetTaskRequest, context: Context
    ) -> task_pb2.Task:
        """Read a task."""
        task = await tasks.get_task(
            self._uow(), principal.current(), request.user_id, request.task_id
        )
        return converters.task_to_proto(task)

    async def ReplaceTask(
        self, request: task_service_pb2.ReplaceTaskRequest, context: Context
    ) -> task_pb2.Task:
        """Replace every writable field of a task."""
        patch = domain.TaskPatch(converters.task_fields(request), domain.TASK_FIELDS)
        task = await tasks.update_task(
            self._uow(),
            principal.current(),
            request.user_id,
            request.task_id,
            patch,
            converters.optional_string(request, "etag"),
        )
        return converters.task_to_proto(task)

    async def UpdateTask(
        self, request: task_service_pb2.UpdateTaskRequest, context: Context
    ) -> task_pb2.Task:
        """Change some fields of a task."""
        task = await tasks.update_task(
            self._uow(),
            principal.current(),
            request.user_id,
            request.task_id,
            converters.task_patch(request),
            converters.optional_string(request, "etag"),
        )
        return converters.task_to_proto(task)

    async def DeleteTask(
        self, request: task_service_pb2.DeleteTaskRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete a task."""
        await tasks.delete_task(self._uow(), principal.current(), request.user_id, request.task_id)
        return empty_pb2.Empty()

    async def CompleteTask(
        self, request: task_service_pb2.CompleteTaskRequest, context: Context
    ) -> task_pb2.Task:
        """Complete or reopen a task."""
        completed = request.completed if request.HasField("completed") else True
        task = await tasks.complete_task(
            self._uow(), principal.current(), request.user_id, request.task_id, completed
        )
        return converters.task_to_proto(task)
