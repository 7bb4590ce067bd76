from __future__ import annotations

import pytest

from server import errors
from server.auth import passwords
from server.auth.passwords import PasswordHasher


@pytest.mark.parametrize("password", ["short", "x" * 129, ""])
def test_length_rules(password: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        passwords.normalize(password)
    assert caught.value.violations[0].field == "password"


def test_length_counts_code_points_after_nfkc() -> None:
    assert passwords.normalize("é" * 128) == "é" * 128  # 256 UTF-8 bytes, 128 characters
    assert passwords.normalize("\uff21" * 8) == "A" * 8  # fullwidth A folds to A


async def test_characters_past_72_bytes_count(hasher: PasswordHasher) -> None:
    base = "a" * 80
    stored = await hasher.hash(base + "1")
    assert await hasher.verify(base + "1", stored)
    assert not await hasher.verify(base + "2", stored)


async def test_unknown_account_still_hashes(hasher: PasswordHasher) -> None:
    assert not await hasher.verify("whatever-password", None)
