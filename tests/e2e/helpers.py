from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
from todo.v1 import user_pb2, user_pb2_grpc

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


def assert_error(
    response: httpx.Response,
    status: int,
    code: int,
    reason: str | None = None,
    fields: list[str] | None = None,
) -> dict[str, Any]:
    """Check an error answer: HTTP status, google.rpc.Status body, ErrorInfo and BadRequest."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code, body
    assert body["message"]
    assert "Traceback" not in response.text and "SELECT" not in response.text
    infos = [d for d in body.get("details", []) if d["@type"] == ERROR_INFO]
    assert len(infos) == 1, body
    if reason is not None:
        assert infos[0]["reason"] == reason, body
    if fields is not None:
        bad = [d for d in body["details"] if d["@type"] == BAD_REQUEST]
        assert bad, body
        assert sorted(v["field"] for v in bad[0]["field_violations"]) == sorted(fields), body
    return body


@contextlib.contextmanager
def every_process(worker_targets: list[str]) -> Iterator[list[user_pb2_grpc.UserServiceStub]]:
    """A connected UserService stub per server process, opened before a revoking call.

    Connected beforehand, the check right after the call reaches each process
    within a millisecond or so: a revocation not yet applied there would show.
    """
    with contextlib.ExitStack() as stack:
        stubs = []
        for target in worker_targets:
            channel = stack.enter_context(grpc.insecure_channel(target))
            grpc.channel_ready_future(channel).result(timeout=10)
            stubs.append(user_pb2_grpc.UserServiceStub(channel))
        yield stubs


def refused_on_every_process(
    workers: list[user_pb2_grpc.UserServiceStub], access_token: str
) -> None:
    """Each server process refuses the token (UNAUTHENTICATED) on the first try.

    For revocations: the revoking call answers only once every process has the
    revocation (the barrier), so there is nothing to wait or retry for.
    """
    metadata = (("authorization", f"Bearer {access_token}"),)
    for index, users in enumerate(workers):
        try:
            users.GetUser(user_pb2.GetUserRequest(user_id="me"), metadata=metadata)
        except grpc.RpcError as error:
            assert error.code() is grpc.StatusCode.UNAUTHENTICATED, (index, error)
        else:
            raise AssertionError(f"the revoked token still passed on process {index}")
