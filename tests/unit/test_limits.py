"""The per-user token buckets, the throttle's address keys and the client address."""

from __future__ import annotations

import uuid

import pytest

from server.interceptors.rate_limit import TokenBuckets
from server.servicers import peers
from server.services import throttle


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_paces() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate_per_s=2.0, capacity=3.0, clock=clock)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    assert [buckets.take(alice).allowed for _ in range(4)] == [True, True, True, False]
    refused = buckets.take(alice)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(0.5)
    assert buckets.take(bob).allowed  # buckets are per user
    clock.now += 0.5
    allowed = buckets.take(alice)
    assert allowed.allowed and allowed.full_in_s == pytest.approx(1.5)
    clock.now += 10
    assert buckets.take(alice).tokens == pytest.approx(2.0)  # refilled to the cap, minus one


def test_full_buckets_are_forgotten() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate_per_s=1.0, capacity=2.0, clock=clock)
    for _ in range(100):
        buckets.take(uuid.uuid4())
    clock.now += 61
    buckets.take(uuid.uuid4())
    assert len(buckets._buckets) == 1


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("unix:/tmp/socket", "unix:/tmp/socket"),
    ],
)
def test_address_keys(address: str, key: str) -> None:
    assert throttle._address_key(address) == key


class Context:
    def __init__(self, metadata: tuple[tuple[str, str], ...], peer: str) -> None:
        self._metadata = metadata
        self._peer = peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return self._peer


@pytest.mark.parametrize(
    ("metadata", "peer", "address"),
    [
        ((("x-forwarded-for", "198.51.100.4"),), "ipv4:127.0.0.1:5000", "198.51.100.4"),
        # A client's own x-forwarded-for is kept in front; Envoy appends what it saw.
        ((("x-forwarded-for", "1.2.3.4, 198.51.100.4"),), "ipv4:127.0.0.1:5", "198.51.100.4"),
        ((), "ipv4:203.0.113.5:43512", "203.0.113.5"),
        ((), "ipv6:[::1]:43512", "::1"),
        ((), "ipv6:%5B2001:db8::1%5D:443", "2001:db8::1"),
        ((), "unix:/tmp/s", "unix:/tmp/s"),
    ],
)
def test_client_address(metadata, peer, address) -> None:
    assert peers.client_address(Context(metadata, peer)) == address
