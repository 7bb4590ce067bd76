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
        data = {
            "k": [_encode_value(v) for v in cursor.keys],
            "i": str(cursor.task_id),
            "t": cursor.total_size,
        }
        body = json.dumps(data, separators=(",", ":")).encode()
        return f"{_b64(body)}.{_b64(self._mac(owner, query, body))}"

    def decode(self, owner: uuid.UUID, query: str, token: str) -> domain.PageCursor:
        """The cursor in `token`; raises InvalidArgument (page_token) if it is not valid here."""
        try:
            body_text, mac_text = token.split(".")
            body = _unb64(body_text)
            if not hmac.compare_digest(_unb64(mac_text), self._mac(owner, query, body)):
                raise ValueError("bad mac")
            data = json.loads(body)
            keys = tuple(_decode_value(v) for v in data["k"])
            return domain.PageCursor(keys, uuid.UUID(data["i"]), int(data["t"]))
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


def _encode_value(value: domain.CursorValue) -> list[object]:
    if isinstance(value, dt.datetime):
        return ["d", value.isoformat()]
    return ["v", value]


def _decode_value(item: list[object]) -> domain.CursorValue:
    kind, value = item
    if kind == "d" and isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    if kind == "v" and (value is None or isinstance(value, int | str | bool)):
        return value
    raise ValueError("bad cursor value")


class ResumeTokens:
    """Watch resume tokens: a change's seq, bound to its user and signed."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"todo.v1 resume tokens", hashlib.sha256).digest()

    def encode(self, owner: uuid.UUID, seq: int) -> str:
        """The token that resumes after change `seq` of `owner`."""
        body = str(seq).encode()
        return f"{_b64(body)}.{_b64(self._mac(owner, body))}"

    def decode(self, owner: uuid.UUID, token: str) -> int:
        """The seq in `token`; InvalidArgument (resume_token) if it is not `owner`'s."""
        try:
            body_text, mac_text = token.split(".")
            body = _unb64(body_text)
            if not hmac.compare_digest(_unb64(mac_text), self._mac(owner, body)):
                raise ValueError("bad mac")
            seq = int(body.decode("ascii"))
            if seq < 0:
                raise ValueError("negative seq")
            return seq
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise errors.InvalidArgument(
                errors.FieldViolation("resume_token", "is not a resume token of this user"),
                reason="INVALID_RESUME_TOKEN",
            ) from None

    def _mac(self, owner: uuid.UUID, body: bytes) -> bytes:
        return hmac.new(self._key, owner.bytes + b"|" + body, hashlib.sha256).digest()
