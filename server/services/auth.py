"""Account and session use cases: register, login, refresh, logout.

A login opens a session (the refresh family). Access tokens carry the
session id, so revoking the session stops its access and refresh tokens at
once. A refresh token works once; a reused one revokes its whole session.
Register, login and refresh are throttled per client address and per account
(`services/throttle.py`) before any password is hashed or session touched. When the
process's password hashing is saturated, register and login are refused (429
PASSWORD_CHECKS_BUSY) before the throttle counts them: a refused attempt tests nothing.
"""

from __future__ import annotations

import uuid

from server import domain, errors
from server.auth import passwords
from server.auth.passwords import PasswordHasher
from server.auth.tokens import TokenCodec
from server.observability import events
from server.services import validation
from server.services.ports import UnitOfWork
from server.services.throttle import Throttle

_BAD_CREDENTIALS = "email or password is incorrect"


async def register(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    throttle: Throttle,
    client_address: str,
    email: str,
    password: str,
    name: str,
) -> domain.User:
    """Create an account; the email must be unused.

    Raises ResourceExhausted when throttled (TOO_MANY_ATTEMPTS) or when password
    hashing is saturated (PASSWORD_CHECKS_BUSY).
    """
    bad: validation.Violations = []
    email = validation.email(email, bad)
    name = validation.name(name, bad)
    try:
        password = passwords.normalize(password)
    except errors.InvalidArgument as exc:
        bad.extend(exc.violations)
    if bad:
        raise errors.InvalidArgument(bad, reason="INVALID_ACCOUNT")
    hasher.refuse_if_busy()
    await throttle.check(uow, client_address, account=f"email:{email}")
    password_hash = await hasher.hash(password)
    async with uow:
        user = await uow.users.add(email, password_hash, name)
        await uow.commit()
    return user


async def login(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    tokens: TokenCodec,
    throttle: Throttle,
    client_address: str,
    email: str,
    password: str,
) -> domain.TokenPair:
    """Check credentials and open a session; one answer for every failure.

    Raises ResourceExhausted when throttled (TOO_MANY_ATTEMPTS) or when password
    hashing is saturated (PASSWORD_CHECKS_BUSY), whatever the password.
    """
    _require({"email": email, "password": password})
    email = domain.normalize_email(email)
    hasher.refuse_if_busy()
    await throttle.check(uow, client_address, account=f"email:{email}")
    normalized = passwords.normalized_or_none(password)
    async with uow.autocommit() as reader:
        credentials = await reader.users.get_credentials(email)
    stored = credentials.password_hash if credentials else None
    ok = await hasher.verify(normalized or password, stored)
    if credentials is None or normalized is None or not ok:
        raise errors.Unauthenticated(_BAD_CREDENTIALS, reason="INVALID_CREDENTIALS")
    return await _open_session(uow, tokens, credentials.user)


async def refresh(
    uow: UnitOfWork, tokens: TokenCodec, throttle: Throttle, client_address: str, refresh_token: str
) -> domain.TokenPair:
    """Rotate a refresh token; a reused one revokes its session."""
    _require({"refresh_token": refresh_token})
    try:
        claims = tokens.verify(refresh_token, "refresh")
    except errors.Unauthenticated:
        await throttle.check(uow, client_address)  # a forged token still counts
        raise
    await throttle.check(uow, client_address, account=f"user:{claims.user_id}")
    replacement = tokens.issue("refresh", claims.user_id, claims.session_id)
    async with uow:
        rotated = await uow.sessions.rotate(
            claims.session_id, claims.token_id, replacement.claims.token_id
        )
        user = await uow.users.get(claims.user_id) if rotated else None
        if user is None:
            was_live = await uow.sessions.revoke(claims.session_id)
            await uow.commit()
            if was_live and not rotated:  # a used token of a live family: reuse
                events.refresh_token_reused(str(claims.user_id), family_size=1)
            raise errors.Unauthenticated(
                "refresh token is no longer valid; log in again", reason="REFRESH_TOKEN_REVOKED"
            )
        await uow.commit()
    access = tokens.issue("access", claims.user_id, claims.session_id)
    return _pair(tokens, access.token, replacement.token, user)


async def logout(uow: UnitOfWork, principal: domain.Principal) -> None:
    """Revoke the caller's session: its access and refresh tokens stop working."""
    async with uow:
        await uow.sessions.revoke(principal.session_id)
        await uow.commit()


async def _open_session(uow: UnitOfWork, tokens: TokenCodec, user: domain.User) -> domain.TokenPair:
    session_id = uuid.uuid4()
    access = tokens.issue("access", user.id, session_id)
    refresh_token = tokens.issue("refresh", user.id, session_id)
    async with uow:
        await uow.sessions.add(
            session_id, user.id, refresh_token.claims.token_id, refresh_token.claims.expires_at
        )
        await uow.commit()
    return _pair(tokens, access.token, refresh_token.token, user)


def _pair(
    tokens: TokenCodec, access: str, refresh_token: str, user: domain.User
) -> domain.TokenPair:
    expires_in = int(tokens.ttl("access").total_seconds())
    return domain.TokenPair(access, refresh_token, expires_in, user)


def _require(values: dict[str, str]) -> None:
    missing = [
        errors.FieldViolation(field, "is required") for field, value in values.items() if not value
    ]
    if missing:
        raise errors.InvalidArgument(missing, reason="MISSING_FIELD")
