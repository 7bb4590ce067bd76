from __future__ import annotations

import datetime as dt
import uuid

import pytest

from server import domain, errors
from server.services.page_tokens import PageTokens

CURSOR = domain.PageCursor(
    (dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC), True, 3, "title", None), uuid.uuid4(), 42
)


def test_round_trip() -> None:
    codec, owner = PageTokens("s" * 32), uuid.uuid4()
    assert codec.decode(owner, "q", codec.encode(owner, "q", CURSOR)) == CURSOR


def test_token_is_bound_to_owner_query_and_key() -> None:
    codec, owner = PageTokens("s" * 32), uuid.uuid4()
    token = codec.encode(owner, "q", CURSOR)
    body, mac = token.split(".")
    for other_owner, query, candidate, key in [
        (uuid.uuid4(), "q", token, "s" * 32),
        (owner, "other", token, "s" * 32),
        (owner, "q", token, "t" * 32),
        (owner, "q", body[:-2] + "AA." + mac, "s" * 32),
        (owner, "q", "garbage", "s" * 32),
        (owner, "q", token[:-3], "s" * 32),
    ]:
        with pytest.raises(errors.InvalidArgument) as caught:
            PageTokens(key).decode(other_owner, query, candidate)
        assert caught.value.violations[0].field == "page_token"
