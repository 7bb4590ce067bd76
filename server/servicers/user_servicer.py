"""UserService over gRPC."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import empty_pb2
from todo.v1 import user_pb2, user_pb2_grpc

from server import domain
from server.auth import principal
from server.auth.passwords import PasswordHasher
from server.servicers import converters, peers
from server.services import users
from server.services.ports import UnitOfWork
from server.services.throttle import Throttle


class UserServicer(user_pb2_grpc.UserServiceServicer):
    """Adapter from the generated UserService to `server.services.users`."""

    def __init__(
        self, uow: Callable[[], UnitOfWork], hasher: PasswordHasher, throttle: Throttle
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._throttle = throttle

    async def GetUser(self, request: user_pb2.GetUserRequest, context: Any) -> user_pb2.User:
        """Read the caller's account."""
        user = await users.get_user(self._uow(), principal.current(), request.user_id)
        return converters.user_to_proto(user)

    async def UpdateUser(self, request: user_pb2.UpdateUserRequest, context: Any) -> user_pb2.User:
        """Change the fields present in the request."""
        patch = domain.UserPatch(
            name=request.name if request.HasField("name") else None,
            email=request.email if request.HasField("email") else None,
            timezone=request.timezone if request.HasField("timezone") else None,
        )
        user = await users.update_user(self._uow(), principal.current(), request.user_id, patch)
        return converters.user_to_proto(user)

    async def ChangePassword(
        self, request: user_pb2.ChangePasswordRequest, context: Any
    ) -> user_pb2.User:
        """Replace the password; every other session is revoked."""
        user = await users.change_password(
            self._uow(),
            self._hasher,
            self._throttle,
            principal.current(),
            peers.client_address(context),
            request.user_id,
            request.current_password,
            request.new_password,
        )
        return converters.user_to_proto(user)

    async def DeleteUser(
        self, request: user_pb2.DeleteUserRequest, context: Any
    ) -> empty_pb2.Empty:
        """Delete the account, its tasks and sessions."""
        await users.delete_user(self._uow(), principal.current(), request.user_id)
        return empty_pb2.Empty()
