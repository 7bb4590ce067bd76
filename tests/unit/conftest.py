from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from server import domain
from server.auth.hash_pool import HashPool
from server.auth.passwords import PasswordHasher
from server.auth.tokens import TokenCodec
from server.config import Settings
from server.services.throttle import Limits, Throttle
from tests.unit.fakes import FakeStore, FakeUnitOfWork


@pytest.fixture
def settings() -> Settings:
    return Settings(bcrypt_rounds=4, jwt_secret="unit-test-secret-" + "x" * 32)


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def uow(store: FakeStore):
    return lambda: FakeUnitOfWork(store)


@pytest.fixture
def tokens(settings: Settings) -> TokenCodec:
    return TokenCodec(settings)


@pytest.fixture
def hasher() -> Iterator[PasswordHasher]:
    pool = HashPool(slots=2, queue=8, max_wait_s=10.0, priority="normal")
    yield PasswordHasher(rounds=4, pool=pool)
    pool.close()


@pytest.fixture
def throttle() -> Throttle:
    """Generous for the address, tight per account: 3 per (account, address), 5 per account."""
    return Throttle(Limits(period_s=60, per_address=100, per_account_address=3, per_account=5))


def make_principal(user_id: uuid.UUID | None = None) -> domain.Principal:
    return domain.Principal(
        user_id=user_id or uuid.uuid4(),
        session_id=uuid.uuid4(),
    )


@pytest.fixture
def alice() -> domain.Principal:
    return make_principal()
