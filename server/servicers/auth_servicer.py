"""AuthService over gRPC."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from google.protobuf import empty_pb2
from todo.v1 import auth_pb2, auth_pb2_grpc, user_pb2

from server import domain
from server.auth import principal
from server.auth.passwords import PasswordHasher
from server.auth.tokens import TokenCodec
from server.servicers import converters, peers
from server.services import auth
from server.services.ports import UnitOfWork
from server.services.throttle import Throttle

Context = Any


def _token_response(pair: domain.TokenPair) -> auth_pb2.TokenResponse:
    return auth_pb2.TokenResponse(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        token_type="Bearer",
        expires_in=pair.expires_in,
        user=converters.user_to_proto(pair.user),
    )


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    """Adapter from the generated AuthService to `server.services.auth`."""

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        hasher: PasswordHasher,
        tokens: TokenCodec,
        throttle: Throttle,
        logged_out: Callable[[uuid.UUID], None] = lambda session_id: None,
    ) -> None:
        """Translate AuthService calls to `server.services.auth`.

        `logged_out(session_id)` runs after a logout committed: this process's revocation
        cache takes it at once, before PostgreSQL's NOTIFY comes back (Envoy sends the
        user's next call to this same process).
        """
        self._uow = uow
        self._hasher = hasher
        self._tokens = tokens
        self._throttle = throttle
        self._logged_out = logged_out

    async def Register(self, request: auth_pb2.RegisterRequest, context: Context) -> user_pb2.User:
        """Create an account."""
        user = await auth.register(
            self._uow(),
            self._hasher,
            self._throttle,
            peers.client_address(context),
            request.email,
            request.password,
            request.name,
        )
        return converters.user_to_proto(user)

    async def Login(
        self, request: auth_pb2.LoginRequest, context: Context
    ) -> auth_pb2.TokenResponse:
        """Open a session."""
        pair = await auth.login(
            self._uow(),
            self._hasher,
            self._tokens,
            self._throttle,
            peers.client_address(context),
            request.email,
            request.password,
        )
        return _token_response(pair)

    async def Refresh(
        self, request: auth_pb2.RefreshRequest, context: Context
    ) -> auth_pb2.TokenResponse:
        """Rotate a refresh token."""
        pair = await auth.refresh(
            self._uow(),
            self._tokens,
            self._throttle,
            peers.client_address(context),
            request.refresh_token,
        )
        return _token_response(pair)

    async def Logout(self, request: auth_pb2.LogoutRequest, context: Context) -> empty_pb2.Empty:
        """Revoke the caller's session."""
        caller = principal.current()
        await auth.logout(self._uow(), caller)
        self._logged_out(caller.session_id)
        return empty_pb2.Empty()
