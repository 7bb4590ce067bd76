"""Opaque, tamper-evident page and resume tokens, both made by one `Signer`.

A token is `base64url(body).base64url(hmac-sha256)`. A page token's MAC covers
the cursor, the owner and the query's canonical fingerprint, so a token
edited, made up, or replayed by another user or with another query is
refused; a resume token's covers a change's seq and its owner. Both are
encoded and decoded by the services.
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


class Signer:
    """The one HMAC signer of the API's opaque tokens: `base64url(body).base64url(mac)`.

    The MAC (HMAC-SHA256 with a key derived from the server secret and the
    signer's purpose) covers the owner, any context (such as a query
    fingerprint) and the body, so a token is only accepted back for the same
    purpose, owner and context.
    """

    def __init__(self, secret: str, purpose: str) -> None:
        self._key = hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()

    def sign(self, owner: uuid.UUID, body: bytes, *context: bytes) -> str:
        """The token carrying `body` for `owner` (and `context`)."""
        return f"{_b64(body)}.{_b64(self._mac(owner, context, body))}"

    def open(self, owner: uuid.UUID, token: str, *context: bytes) -> bytes:
        """The body of a token signed for `owner` (and `context`).

        Raises:
            ValueError: the token is malformed or was not signed for them.
        """
        try:
            body_text, mac_text = token.split(".")
            body = _unb64(body_text)
            mac = _unb64(mac_text)
        except binascii.Error as exc:
            raise ValueError("not a token") from exc
        if not hmac.compare_digest(mac, self._mac(owner, context, body)):
            raise ValueError("bad mac")
        return body

    def _mac(self, owner: uuid.UUID, context: tuple[bytes, ...], body: bytes) -> bytes:
        message = b"|".join((owner.bytes, *context, body))
        return hmac.new(self._key, message, hashlib.sha256).digest()


class PageTokens:
    """Encodes and checks page tokens, bound to their owner and query."""

    def __init__(self, secret: str) -> None:
        self._signer = Signer(secret, "todo.v1 page tokens")

    def encode(self, owner: uuid.UUID, query: str, cursor: domain.PageCursor) -> str:
        """The token for the page after `cursor` of `query` for `owner`."""
        data = {
            "k": [_encode_value(v) for v in cursor.keys],
            "i": str(cursor.task_id),
            "t": cursor.total_size,
        }
        body = json.dumps(data, separators=(",", ":")).encode()
        return self._signer.sign(owner, body, query.encode())

    def decode(self, owner: uuid.UUID, query: str, token: str) -> domain.PageCursor:
        """The cursor in `token`; raises InvalidArgument (page_token) if it is not valid here."""
        try:
            data = json.loads(self._signer.open(owner, token, query.encode()))
            keys = tuple(_decode_value(v) for v in data["k"])
            return domain.PageCursor(keys, uuid.UUID(data["i"]), int(data["t"]))
        except (ValueError, KeyError, TypeError):
            raise errors.InvalidArgument(
                errors.FieldViolation(
                    "page_token", "is not a page token of this query; start again without one"
                ),
                reason="INVALID_PAGE_TOKEN",
            ) from None


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
        self._signer = Signer(secret, "todo.v1 resume tokens")

    def encode(self, owner: uuid.UUID, seq: int) -> str:
        """The token that resumes after change `seq` of `owner`."""
        return self._signer.sign(owner, str(seq).encode())

    def decode(self, owner: uuid.UUID, token: str) -> int:
        """The seq in `token`; InvalidArgument (resume_token) if it is not `owner`'s."""
        try:
            seq = int(self._signer.open(owner, token).decode("ascii"))
            if seq < 0:
                raise ValueError("negative seq")
            return seq
        except (ValueError, UnicodeDecodeError):
            raise errors.InvalidArgument(
                errors.FieldViolation("resume_token", "is not a resume token of this user"),
                reason="INVALID_RESUME_TOKEN",
            ) from None
