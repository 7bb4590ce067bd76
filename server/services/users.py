"""User use cases."""

from __future__ import annotations

from server import domain, errors
from server.services import access
from server.services.ports import UnitOfWork


async def get_user(uow: UnitOfWork, principal: domain.Principal, user_id: str) -> domain.User:
    """The caller's own account."""
    owner = access.owner_id(principal, user_id)
    async with uow.read_only() as reader:
        user = await reader.users.get(owner)
    if user is None:
        raise errors.NotFound("user not found", reason="USER_NOT_FOUND")
    return user
