"""UserService over gRPC."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from todo.v1 import user_pb2, user_pb2_grpc

from server.auth import principal
from server.servicers import converters
from server.services import users
from server.services.ports import UnitOfWork


class UserServicer(user_pb2_grpc.UserServiceServicer):
    """Adapter from the generated UserService to `server.services.users`."""

    def __init__(self, uow: Callable[[], UnitOfWork]) -> None:
        self._uow = uow

    async def GetUser(self, request: user_pb2.GetUserRequest, context: Any) -> user_pb2.User:
        """Read the caller's account."""
        user = await users.get_user(self._uow(), principal.current(), request.user_id)
        return converters.user_to_proto(user)
