"""The telemetry interceptor's per-call record: nothing native is read once a call may be gone."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest

from server.interceptors.telemetry import _Call
from server.observability.logs import FIELDS


class _Context:
    """A servicer context whose native call is freed once `finished` (as gRPC does)."""

    def __init__(self) -> None:
        self.finished = False

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-request-id", "req-1"),)

    def peer(self) -> str:
        if self.finished:  # grpc_call_get_peer on a freed call: a SIGSEGV in production
            raise AssertionError("peer() read after the call ended")
        return "ipv4:127.0.0.1:5555"

    def code(self) -> grpc.StatusCode | None:
        return None


def test_a_cancelled_streams_access_line_does_not_read_the_freed_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    context = _Context()
    call = _Call("/todo.v1.TaskService/WatchTasks", context)  # type: ignore[arg-type]
    context.finished = True  # the client cancelled; the generator is closed later
    with caplog.at_level(logging.INFO, logger="todo.access"):
        call.end(context, cancelled=True)  # type: ignore[arg-type]
    (record,) = [r for r in caplog.records if r.name == "todo.access"]
    fields: dict[str, Any] = getattr(record, FIELDS)
    assert fields["code"] == "CANCELLED"
    assert fields["peer"] == "ipv4:127.0.0.1:5555"
