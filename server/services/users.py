"""User use cases: read, change and delete the caller's own account, change its password.

Changing the password and deleting the account revoke sessions in the same transaction
as the change; PostgreSQL tells every server process when it commits (NOTIFY), so the
revoked tokens stop working everywhere at once.
"""

from __future__ import annotations

from server import domain, errors
from server.auth import passwords
from server.auth.passwords import PasswordHasher
from server.services import access, validation
from server.services.ports import UnitOfWork
from server.services.throttle import Throttle


async def get_user(uow: UnitOfWork, principal: domain.Principal, user_id: str) -> domain.User:
    """The caller's own account."""
    owner = access.owner_id(principal, user_id)
    async with uow.autocommit() as reader:
        user = await reader.users.get(owner)
    if user is None:
        raise _user_not_found()
    return user


async def update_user(
    uow: UnitOfWork, principal: domain.Principal, user_id: str, patch: domain.UserPatch
) -> domain.User:
    """Change the fields the patch sets; nothing set changes nothing.

    Raises InvalidArgument (reason INVALID_ACCOUNT) naming each bad field, AlreadyExists
    (EMAIL_TAKEN) if the new email is another account's.
    """
    owner = access.owner_id(principal, user_id)
    patch = _valid_patch(patch)
    if patch == domain.UserPatch():
        return await get_user(uow, principal, user_id)
    async with uow:
        user = await uow.users.update(owner, patch)
        if user is None:
            raise _user_not_found()
        await uow.commit()
    return user


async def change_password(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    throttle: Throttle,
    principal: domain.Principal,
    client_address: str,
    user_id: str,
    current_password: str,
    new_password: str,
) -> domain.User:
    """Replace the password and revoke every session of the user but the caller's.

    Attempts are throttled like logins, as each one tests a password, and refused
    (ResourceExhausted, PASSWORD_CHECKS_BUSY) when password hashing is saturated.
    """
    owner = access.owner_id(principal, user_id)
    new_normalized = _check_password_fields(current_password, new_password)
    hasher.refuse_if_busy()
    await throttle.check(uow, client_address, account=f"user:{owner}")
    async with uow.autocommit() as reader:
        stored = await reader.users.get_password_hash(owner)
    if stored is None:
        raise _user_not_found()
    current = passwords.normalized_or_none(current_password)
    if current is None or not await hasher.verify(current, stored):
        raise errors.InvalidArgument(
            errors.FieldViolation("current_password", "is not the current password"),
            reason="INCORRECT_PASSWORD",
        )
    new_hash = await hasher.hash(new_normalized)
    async with uow:
        user = await uow.users.set_password(owner, stored, new_hash)
        if user is None:
            raise errors.Aborted(
                "the password was changed by another request; try again",
                reason="CONCURRENT_CHANGE",
            )
        await uow.sessions.revoke_all(owner, keep=principal.session_id)
        await uow.commit()
    return user


async def delete_user(uow: UnitOfWork, principal: domain.Principal, user_id: str) -> None:
    """Delete the account and its tasks, and revoke every one of its sessions."""
    owner = access.owner_id(principal, user_id)
    async with uow:
        await uow.sessions.revoke_all(owner)
        if not await uow.users.delete(owner):
            raise _user_not_found()
        await uow.commit()


def _valid_patch(patch: domain.UserPatch) -> domain.UserPatch:
    bad: validation.Violations = []
    name = None if patch.name is None else validation.name(patch.name, bad)
    email = None if patch.email is None else validation.email(patch.email, bad)
    timezone = None if patch.timezone is None else validation.timezone(patch.timezone, bad)
    if bad:
        raise errors.InvalidArgument(bad, reason="INVALID_ACCOUNT")
    return domain.UserPatch(name=name, email=email, timezone=timezone)


def _check_password_fields(current_password: str, new_password: str) -> str:
    """The normalised new password; raises InvalidArgument naming every bad field."""
    bad: validation.Violations = []
    if not current_password:
        bad.append(errors.FieldViolation("current_password", "is required"))
    normalized = ""
    try:
        normalized = passwords.normalize(new_password, field="new_password")
    except errors.InvalidArgument as exc:
        bad.extend(exc.violations)
    if bad:
        raise errors.InvalidArgument(bad, reason="INVALID_PASSWORD")
    return normalized


def _user_not_found() -> errors.NotFound:
    return errors.NotFound("user not found", reason="USER_NOT_FOUND")
