"""converters.timestamp: the same Timestamp as protobuf's FromDatetime, for any time and zone."""

from __future__ import annotations

import datetime as dt

import pytest
from google.protobuf import timestamp_pb2

from server.servicers import converters

ZONES = [
    dt.UTC,
    dt.timezone(dt.timedelta(hours=-9, minutes=-30)),
    dt.timezone(dt.timedelta(hours=14)),
]
TIMES = [
    dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
    dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(1, 1, 2, 12, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 1, 3, 4, 5, 678901, tzinfo=dt.UTC),
    dt.datetime(9999, 12, 30, 11, 59, 59, 999999, tzinfo=dt.UTC),
]


def _reference(value: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


@pytest.mark.parametrize("value", [t.astimezone(z) for t in TIMES for z in ZONES])
def test_timestamp_matches_from_datetime(value: dt.datetime) -> None:
    assert converters.timestamp(value) == _reference(value)


def test_a_naive_datetime_is_taken_as_utc() -> None:
    naive = dt.datetime(2026, 5, 6, 7, 8, 9, 10)
    assert converters.timestamp(naive) == _reference(naive)
