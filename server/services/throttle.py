"""Throttling of the credential endpoints (register, login, refresh, change password).

Every attempt is counted against up to three keys, each a bucket in PostgreSQL shared by
all server processes (see `repositories/rate_limits.py`), checked in this order:

1. the client address (IPv6 by its /64), whatever the account;
2. the account from that address: stops one attacker early, and only from there;
3. the account from every address, a looser limit that bounds a distributed attack.

The first key that refuses ends the check, so the later keys are not charged: an attacker
stopped at (2) does not use up the account's own budget (3), and the owner, from another
address, can still sign in. Buckets drain by themselves (`limit` attempts at once, then
one every `period / limit` seconds), so no lockout lasts. The counts are committed in
their own short transaction, before the use case's, because a failed attempt must count.
Drained buckets are deleted by the housekeeping loop, never by an attempt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import math

from server import errors
from server.config import Settings
from server.observability import metrics
from server.services.ports import UnitOfWork


@dataclasses.dataclass(frozen=True)
class Limits:
    """Attempts allowed per period for each key; 0 means no limit on that key."""

    period_s: int
    per_address: int
    per_account_address: int
    per_account: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits configured in Settings (`throttle_*`)."""
        return cls(
            period_s=settings.throttle_period_s,
            per_address=settings.throttle_per_address,
            per_account_address=settings.throttle_per_account_address,
            per_account=settings.throttle_per_account,
        )


class Throttle:
    """Counts credential attempts and refuses those over the limits."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits

    async def check(self, uow: UnitOfWork, address: str, account: str | None = None) -> None:
        """Count one attempt from `address` on `account` (None: no account known yet).

        Raises:
            errors.ResourceExhausted: a key is over its limit (reason TOO_MANY_ATTEMPTS),
                with the seconds until it allows another attempt.
        """
        client = _address_key(address)
        keys = [("address", f"address:{client}", self._limits.per_address)]
        if account is not None:
            keys.append(
                (
                    "account_address",
                    f"account-address:{account}|{client}",
                    self._limits.per_account_address,
                )
            )
            keys.append(("account", f"account:{account}", self._limits.per_account))
        wait = 0.0
        async with uow:
            for kind, key, limit in keys:
                if limit > 0:
                    wait = await uow.rate_limits.hit(_digest(key), limit, self._limits.period_s)
                    if wait > 0:
                        metrics.REFUSALS.labels(f"throttle_{kind}").inc()
                        break
            await uow.commit()
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise errors.ResourceExhausted(
                f"too many attempts; retry in {seconds} seconds",
                retry_after_s=seconds,
                reason="TOO_MANY_ATTEMPTS",
            )


def _address_key(address: str) -> str:
    """An IPv4 address as is, an IPv6 one by its /64 (one host usually holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _digest(key: str) -> str:
    """Keys are stored hashed: the table holds no emails or addresses."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
