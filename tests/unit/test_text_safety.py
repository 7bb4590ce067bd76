"""NUL and other control characters are refused in every string of a request."""

from __future__ import annotations

import pytest
from google.protobuf import field_mask_pb2
from todo.v1 import auth_pb2, task_service_pb2

from server import errors, text_safety


def _fields(request: object) -> list[str]:
    return [v.field for v in text_safety.violations(request)]  # type: ignore[arg-type]


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x0b", "\x7f", "\x85", "\x9b"])
def test_control_characters_are_refused(char: str) -> None:
    request = task_service_pb2.CreateTaskRequest(user_id="me", title=f"a{char}b")
    [violation] = text_safety.violations(request)
    assert violation.field == "title"
    assert f"U+{ord(char):04X}" in violation.description


@pytest.mark.parametrize(
    "text", ["tab\there", "two\nlines\r\n", "emoji 🎉", "עברית \u202b", "zero\u200bwidth", "é"]
)
def test_tab_newlines_and_any_other_text_are_allowed(text: str) -> None:
    assert text_safety.violations(task_service_pb2.CreateTaskRequest(description=text)) == []


def test_every_bad_field_is_named_by_its_path_in_field_order() -> None:
    request = task_service_pb2.BatchCreateTasksRequest(
        user_id="me",
        tasks=[
            task_service_pb2.NewTask(title="fine", tags=["ok"]),
            task_service_pb2.NewTask(title="ok"),
            task_service_pb2.NewTask(title="x\x00", category="\x00", tags=["ok", "b\x00d"]),
        ],
        request_id="r\x00",
    )
    assert _fields(request) == [
        "tasks[2].title",
        "tasks[2].category",
        "tasks[2].tags[1]",
        "request_id",
    ]


def test_repeated_query_parameters_optional_fields_and_well_known_types() -> None:
    request = task_service_pb2.ListTasksRequest(
        user_id="me", q="\x00", category="\x00", tag=["a", "\x00"]
    )
    assert _fields(request) == ["category", "tag[1]", "q"]
    update = task_service_pb2.UpdateTaskRequest(
        task_id="t", update_mask=field_mask_pb2.FieldMask(paths=["title", "\x00"])
    )
    assert _fields(update) == ["update_mask.paths[1]"]


def test_check_raises_the_validation_error_with_its_reason() -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        text_safety.check(auth_pb2.LoginRequest(email="a\x00@example.com", password="x"))
    assert raised.value.reason == "INVALID_CHARACTER"
    assert [v.field for v in raised.value.violations] == ["email"]
    assert "email" in raised.value.message and "\x00" not in raised.value.message
    text_safety.check(auth_pb2.LoginRequest(email="a@example.com", password="x"))


def test_the_answer_is_bounded() -> None:
    request = task_service_pb2.BatchCreateTasksRequest(
        tasks=[task_service_pb2.NewTask(title="\x00", description="\x00") for _ in range(500)]
    )
    assert len(text_safety.violations(request)) == text_safety.MAX_VIOLATIONS


def test_the_interceptor_parses_leniently_and_refuses_what_did_not_parse() -> None:
    from server.interceptors import text_safety as interceptor

    parse = interceptor.TextSafetyInterceptor().deserializer(
        task_service_pb2.ListTasksRequest.FromString
    )
    assert parse is not None
    request = task_service_pb2.ListTasksRequest(user_id="me", q="milk")
    assert parse(request.SerializeToString()) == request
    marker = parse(b"\x0a\x02me\x5a\x01\xff")  # q (field 11) holding invalid UTF-8
    assert marker == interceptor.Undecodable("todo.v1.ListTasksRequest")
    with pytest.raises(errors.InvalidArgument) as raised:
        interceptor._check(marker)
    assert raised.value.reason == "MALFORMED_REQUEST"
