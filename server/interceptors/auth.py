"""Authenticates every RPC but an explicit allow-list of public methods.

Reads `authorization: Bearer <jwt>`, verifies it as an access token, checks
that its session is still live, and binds the Principal for the handler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from typing import Any

import grpc.aio

from server import domain, errors, metadata
from server.auth import principal as principal_ctx
from server.auth.sessions import SessionCheck
from server.auth.tokens import TokenCodec
from server.interceptors.base import StreamBehavior, UnaryBehavior, WrappingInterceptor
from server.observability import context as call_context

PUBLIC_METHODS = frozenset(
    {
        "/todo.v1.AuthService/Register",
        "/todo.v1.AuthService/Login",
        "/todo.v1.AuthService/Refresh",
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    }
)


class AuthInterceptor(WrappingInterceptor):
    """Verifies the bearer token and binds the caller for the handler."""

    def __init__(
        self,
        tokens: TokenCodec,
        sessions: SessionCheck,
        public_methods: Collection[str] = PUBLIC_METHODS,
    ) -> None:
        self._tokens = tokens
        self._sessions = sessions
        self._public = frozenset(public_methods)

    def applies(self, method: str) -> bool:
        """Public methods pass untouched."""
        return method not in self._public

    async def around_unary(
        self,
        method: str,
        behavior: UnaryBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        """Authenticate, then run the call with the Principal bound."""
        if method in self._public:
            return await behavior(request, context)
        token = principal_ctx.bind(await self._authenticate(context))
        try:
            return await behavior(request, context)
        finally:
            principal_ctx.unbind(token)

    async def around_stream(
        self,
        method: str,
        behavior: StreamBehavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        """Authenticate, then relay the stream with the Principal bound."""
        if method in self._public:
            async for response in behavior(request, context):
                yield response
            return
        token = principal_ctx.bind(await self._authenticate(context))
        try:
            async for response in behavior(request, context):
                yield response
        finally:
            principal_ctx.unbind(token)

    async def _authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> domain.Principal:
        claims = self._tokens.verify(_bearer_token(context), "access")
        call_context.set_user(claims.user_id)
        if not await self._sessions.is_active(claims.session_id):
            raise errors.Unauthenticated("token has been revoked", reason="TOKEN_REVOKED")
        return domain.Principal(
            user_id=claims.user_id,
            session_id=claims.session_id,
        )


def _bearer_token(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    value = metadata.first(context, "authorization")
    if value is not None:
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    raise errors.Unauthenticated(
        "send 'authorization: Bearer <access token>'", reason="MISSING_TOKEN"
    )
