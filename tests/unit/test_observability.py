"""Logs, events, label sets and trace-context parsing, without a server."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from server import edge, errors
from server.config import ConfigError, Settings
from server.observability import context, events, logs, metrics, tracing

ALLOWED_LABELS = {"rpc", "code", "kind", "statement", "reason", "op", "event", "version", "commit"}


def _line(formatter: logging.Formatter, **extra: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("test.observability")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info("hello %s", "world", extra=extra or None)
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.handlers = []
    return stream.getvalue()


def test_json_lines_carry_the_call_context() -> None:
    token = context.bind(
        context.CallContext("req-1", "/todo.v1.TaskService/GetTask", "a" * 32, "b" * 16)
    )
    context.set_user(__import__("uuid").UUID(int=7))
    try:
        out = _line(logs.JsonFormatter(), **{logs.FIELDS: {"code": "OK", "duration_ms": 1.5}})
    finally:
        context.unbind(token)
    first, second = (json.loads(line) for line in out.splitlines())
    parsed = dt.datetime.fromisoformat(first["time"])
    assert parsed.utcoffset() == dt.timedelta(0)
    assert first["level"] == "info" and first["logger"] == "test.observability"
    assert first["message"] == "hello world"
    assert first["process"] == "MainProcess" and isinstance(first["pid"], int)
    assert first["request_id"] == "req-1" and first["trace_id"] == "a" * 32
    assert first["span_id"] == "b" * 16 and first["rpc"] == "/todo.v1.TaskService/GetTask"
    assert first["user_id"] == "00000000-0000-0000-0000-000000000007"
    assert first["code"] == "OK" and first["duration_ms"] == 1.5
    assert second["error"] == "ValueError" and "boom" in second["traceback"]
    assert "Traceback" in second["traceback"] and second["request_id"] == "req-1"


def test_plain_extra_keys_become_fields() -> None:
    first = json.loads(
        _line(logs.JsonFormatter(), event="password_hash_shed", shed=3).splitlines()[0]
    )
    assert first["event"] == "password_hash_shed" and first["shed"] == 3
    assert "args" not in first and "msg" not in first


def test_lines_outside_a_call_have_no_call_fields() -> None:
    first = json.loads(_line(logs.JsonFormatter()).splitlines()[0])
    assert "request_id" not in first and "trace_id" not in first


def test_console_lines_have_the_same_fields() -> None:
    token = context.bind(context.CallContext("req-2", "/x.Y/Z", "c" * 32, "d" * 16))
    try:
        out = _line(logs.ConsoleFormatter(), **{logs.FIELDS: {"code": "NOT_FOUND"}})
    finally:
        context.unbind(token)
    first = out.splitlines()[0]
    assert first.endswith("code=NOT_FOUND")
    for part in ("INFO".lower(), "hello world", "request_id=req-2", "trace_id=" + "c" * 32):
        assert part in first
    assert "Traceback (most recent call last)" in out


@pytest.fixture
def configured_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """`logs.configure` as a server runs it, with stderr a file this test reads."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logs._direct[0])
    path = tmp_path / "stderr.log"
    with path.open("w") as stderr:
        monkeypatch.setattr(sys, "stderr", stderr)
        logs.configure("INFO", "json")
        try:
            yield path
        finally:
            root.handlers, logs._direct[0] = saved[0], saved[2]
            root.setLevel(saved[1])


HOSTILE_FIELDS = {
    "code": "OK",
    "duration_ms": 1.25,
    "peer": 'ipv6:[::1]:5"\\n\u2028é',
    "count": 3,
    "ratio": float("nan"),
    "flag": True,
    "none": None,
    "when": dt.date(2026, 12, 1),
}


def _only_the_configured_handler() -> None:
    """Take pytest's capture handler off the root (it adds one as each test starts)."""
    direct = logs._direct[0]
    assert direct is not None
    logging.getLogger().handlers = [direct.handler]


def test_a_direct_line_is_the_line_logging_writes(configured_stderr: Path) -> None:
    """`logs.info` skips `logging` but must write the very bytes JsonFormatter writes."""
    _only_the_configured_handler()
    log = logging.getLogger("todo.access")
    call = context.CallContext('req-"1\\', "/todo.v1.TaskService/GetTask", "é" * 32, "b" * 16)
    call.user_id = "u-1"
    token = context.bind(call)
    try:
        logs.info(log, "rpc /todo.v1.TaskService/GetTask OK %s", HOSTILE_FIELDS)
        assert logs._direct[0] is not None and logs._direct[0].owns(log)
        log.info("rpc /todo.v1.TaskService/GetTask OK %s", extra={logs.FIELDS: HOSTILE_FIELDS})
    finally:
        context.unbind(token)
    sys.stderr.flush()
    direct, through_logging = configured_stderr.read_text().splitlines()
    time_field = re.compile(r'"time":"[^"]*"')
    assert time_field.sub("", direct) == time_field.sub("", through_logging)
    assert json.loads(direct)["peer"] == HOSTILE_FIELDS["peer"]


def test_a_direct_line_goes_through_logging_when_someone_else_listens(
    configured_stderr: Path,
) -> None:
    _only_the_configured_handler()
    log = logging.getLogger("todo.access")
    stream = io.StringIO()
    listener = logging.StreamHandler(stream)
    log.addHandler(listener)
    try:
        logs.info(log, "rpc /x.Y/Z OK", {"code": "OK"})
    finally:
        log.removeHandler(listener)
    assert stream.getvalue() == "rpc /x.Y/Z OK\n"
    sys.stderr.flush()
    assert json.loads(configured_stderr.read_text())["code"] == "OK"  # and the root's too


def test_a_direct_line_respects_the_level(configured_stderr: Path) -> None:
    _only_the_configured_handler()
    logging.getLogger().setLevel(logging.WARNING)
    logs.info(logging.getLogger("todo.access"), "rpc /x.Y/Z OK", {"code": "OK"})
    sys.stderr.flush()
    assert configured_stderr.read_text() == ""


@pytest.mark.parametrize(
    ("env", "fmt"),
    [
        ({}, "console"),
        ({"TODO_ENV": "production", "TODO_JWT_SECRET": "x" * 40}, "json"),
        ({"TODO_LOG_FORMAT": "json"}, "json"),
        (
            {"TODO_ENV": "production", "TODO_JWT_SECRET": "x" * 40, "TODO_LOG_FORMAT": "console"},
            "console",
        ),
    ],
)
def test_log_format_default_follows_the_environment(env: dict[str, str], fmt: str) -> None:
    assert Settings.from_env(env).effective_log_format == fmt


def test_bad_observability_settings_are_refused() -> None:
    with pytest.raises(ConfigError):
        Settings.from_env({"TODO_LOG_FORMAT": "xml"})
    with pytest.raises(ConfigError):
        Settings.from_env({"TODO_OTLP_ENDPOINT": "collector:4317"})


def test_traceparent_parsing() -> None:
    tid, sid = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    assert tracing.parse_traceparent(f"00-{tid}-{sid}-01") == (tid, sid)
    assert tracing.parse_traceparent(f"00-{'0' * 32}-{sid}-01") == ("", "")
    assert tracing.parse_traceparent("garbage") == ("", "")
    assert tracing.parse_traceparent("") == ("", "")


def test_an_unsampled_traceparent_opens_no_span() -> None:
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-"
    assert tracing._unsampled(tp + "00") and not tracing._unsampled(tp + "01")
    assert not tracing._unsampled(tp + "zz") and not tracing._unsampled("")


def test_tracing_is_off_without_an_endpoint() -> None:
    shutdown = tracing.configure(None)
    shutdown()
    assert not tracing.enabled()
    with tracing.span("nothing") as span:
        assert span is None


def _count(event: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "todo_security_events_total", {"event": event, "reason": reason}
    )
    return value or 0.0


def test_unknown_email_and_wrong_password_are_one_event(caplog: pytest.LogCaptureFixture) -> None:
    before = _count("login_failed", "invalid_credentials")
    bad = errors.Unauthenticated("email or password is incorrect", reason="INVALID_CREDENTIALS")
    with caplog.at_level(logging.WARNING, logger="todo.security"):
        events.on_error(events.LOGIN, bad, "192.0.2.9")
        events.on_error(events.LOGIN, bad, "192.0.2.9")
    assert _count("login_failed", "invalid_credentials") == before + 2
    lines = [getattr(r, logs.FIELDS) for r in caplog.records if r.name == "todo.security"]
    assert (
        lines
        == [
            {
                "event": "login_failed",
                "reason": "invalid_credentials",
                "client_address": "192.0.2.9",
            }
        ]
        * 2
    )


def test_error_events_by_kind() -> None:
    cases = [
        (events.REFRESH, errors.Unauthenticated("x", reason="INVALID_TOKEN"), "token_rejected"),
        ("/todo.v1.TaskService/GetTask", errors.PermissionDenied("x"), "access_denied"),
        (
            events.LOGIN,
            errors.ResourceExhausted("x", retry_after_s=3, reason="TOO_MANY_ATTEMPTS"),
            "login_throttled",
        ),
        (
            "/todo.v1.AuthService/Register",
            errors.ResourceExhausted("x", retry_after_s=1, reason="PASSWORD_CHECKS_BUSY"),
            "password_hash_shed",
        ),
    ]
    for method, error, event in cases:
        before = sum(
            s.value
            for m in REGISTRY.collect()
            if m.name == "todo_security_events"
            for s in m.samples
            if s.labels.get("event") == event and s.name.endswith("_total")
        )
        events.on_error(method, error, "")
        after = sum(
            s.value
            for m in REGISTRY.collect()
            if m.name == "todo_security_events"
            for s in m.samples
            if s.labels.get("event") == event and s.name.endswith("_total")
        )
        assert after == before + 1, event
    # Not security events: a missing task, a bad argument.
    events.on_error(
        "/todo.v1.TaskService/GetTask", errors.NotFound("x", reason="TASK_NOT_FOUND"), ""
    )


def test_every_label_is_from_a_bounded_vocabulary() -> None:
    families = [v for v in vars(metrics).values() if hasattr(v, "_labelnames")]
    assert len(families) >= 20
    for family in families:
        assert set(family._labelnames) <= ALLOWED_LABELS, family._name


def test_envoy_traces_and_logs_as_configured(tmp_path: Path) -> None:
    quiet = edge.render_envoy_config(Settings(data_dir=tmp_path, dev_tls=False))
    assert "random_sampling: {value: 0}" in quiet and "port_value: 9}" in quiet
    assert str((tmp_path / "envoy-access.log").resolve()) in quiet
    traced = edge.render_envoy_config(
        Settings(
            data_dir=tmp_path,
            dev_tls=False,
            otlp_endpoint="http://collector.example:4317",
            trace_sample_percent=10,
            envoy_access_log=Path("/dev/stdout"),
        )
    )
    assert "random_sampling: {value: 10}" in traced
    assert '"collector.example", port_value: 4317}' in traced
    assert 'path: "/dev/stdout"' in traced
    with pytest.raises(ConfigError):
        Settings(trace_sample_percent=101)


def test_production_access_log_goes_to_stdout() -> None:
    settings = Settings.from_env({"TODO_ENV": "production", "TODO_JWT_SECRET": "x" * 40})
    assert settings.envoy_access_log_path == Path("/dev/stdout")
