"""TaskService over gRPC: proto -> domain, one use case, domain -> proto."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import empty_pb2
from todo.v1 import task_pb2, task_service_pb2, task_service_pb2_grpc

from server import domain
from server.auth import principal
from server.servicers import converters
from server.services import tasks
from server.services.page_tokens import PageTokens
from server.services.ports import UnitOfWork

Context = Any


class TaskServicer(task_service_pb2_grpc.TaskServiceServicer):
    """Adapter from the generated TaskService to `server.services.tasks`."""

    def __init__(self, uow: Callable[[], UnitOfWork], page_tokens: PageTokens) -> None:
        self._uow = uow
        self._page_tokens = page_tokens

    async def ListTasks(
        self, request: task_service_pb2.ListTasksRequest, context: Context
    ) -> task_service_pb2.ListTasksResponse:
        """One page of tasks."""
        page, next_token = await tasks.list_tasks(
            self._uow(),
            self._page_tokens,
            principal.current(),
            request.user_id,
            request.page_size,
            request.page_token,
        )
        return task_service_pb2.ListTasksResponse(
            tasks=[converters.task_to_proto(t) for t in page.tasks],
            next_page_token=next_token,
            total_size=page.total_size,
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
