"""Every DomainError maps to a status; the details follow API.md's shape."""

from __future__ import annotations

import inspect

import grpc
from google.rpc import error_details_pb2, status_pb2

from server import errors
from server.interceptors import errors as error_interceptor


def _all_domain_errors() -> list[type[errors.DomainError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.DomainError) and cls is not errors.DomainError
    ]


def test_every_domain_error_is_mapped() -> None:
    missing = [cls.__name__ for cls in _all_domain_errors() if cls not in error_interceptor.CODES]
    assert missing == []


def test_codes_pair_with_api_md() -> None:
    assert error_interceptor.CODES[errors.Aborted] is grpc.StatusCode.ABORTED
    assert error_interceptor.CODES[errors.NotFound] is grpc.StatusCode.NOT_FOUND
    assert error_interceptor.CODES[errors.InvalidArgument] is grpc.StatusCode.INVALID_ARGUMENT


def _details(status: grpc.Status) -> status_pb2.Status:
    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
    return status_pb2.Status.FromString(raw)


def test_invalid_argument_carries_bad_request_and_error_info() -> None:
    error = errors.InvalidArgument(
        [errors.FieldViolation("title", "must not be empty")], reason="INVALID_TASK"
    )
    status = _details(error_interceptor.to_status(error))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    bad_request = error_details_pb2.BadRequest()
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(bad_request)
    assert status.details[1].Unpack(info)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("title", "must not be empty")
    ]
    assert (info.reason, info.domain) == ("INVALID_TASK", "todo.v1")


def test_resource_exhausted_sets_retry_after() -> None:
    status = error_interceptor.to_status(errors.ResourceExhausted("slow down", retry_after_s=7))
    assert ("retry-after", "7") in status.trailing_metadata


def test_internal_status_hides_everything() -> None:
    status = error_interceptor.internal_status()
    assert status.code is grpc.StatusCode.INTERNAL
    assert status.details == "internal error"
