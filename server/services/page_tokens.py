"""Opaque, tamper-evident page tokens bound to one user and one query.

A token is `base64url(json).base64url(hmac-sha256)`; the MAC covers the
cursor, the owner and a fingerprint of the query, so a token edited, made up,
or replayed by another user or with another query is refused.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import uuid

from server import domain, errors


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PageTokens:
    """Encodes and checks page tokens with a key derived from the server secret."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"todo.v1 page tokens", hashlib.sha256).digest()

    def encode(self, owner: uuid.UUID, query: str, cursor: domain.PageCursor) -> str:
        """The token for the page after `cursor` of `query` for `owner`."""
        body = json.dumps(
            {"c": cursor.created_at.isoformat(), "i": str(cursor.task_id)}, separators=(",", ":")
        ).encode()
        return f"{_b64(body)}.{_b64(self._mac(owner, query, body))}"

    def decode(self, owner: uuid.UUID, query: str, token: str) -> domain.PageCursor:
        """The cursor in `token`; raises InvalidArgument (page_token) if it is not valid here."""
        try:
            body_text, mac_text = token.split(".")
            body = _unb64(body_text)
            if not hmac.compare_digest(_unb64(mac_text), self._mac(owner, query, body)):
                raise ValueError("bad mac")
            data = json.loads(body)
            return domain.PageCursor(dt.datetime.fromisoformat(data["c"]), uuid.UUID(data["i"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise errors.InvalidArgument(
                errors.FieldViolation(
                    "page_token", "is not a page token of this query; start again without one"
                ),
                reason="INVALID_PAGE_TOKEN",
            ) from None

    def _mac(self, owner: uuid.UUID, query: str, body: bytes) -> bytes:
        message = b"|".join((owner.bytes, query.encode(), body))
        return hmac.new(self._key, message, hashlib.sha256).digest()
