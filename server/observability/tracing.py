"""OpenTelemetry traces: the server continues Envoy's (or the client's) W3C trace.

Our own interceptor (`interceptors/telemetry.py`) opens the rpc span rather than
`opentelemetry-instrumentation-grpc`'s aio interceptor: that one is a separate
`grpc.aio.ServerInterceptor` with its own handler wrapping, so the request id, the log
context, the metrics and the span would be worked out twice per call in two layers, and it
brings `wrapt` and per-call attribute building (peer parsing) we do not need. Parsing
`traceparent` ourselves also gives the logs a trace id when tracing is off.

Spans: the rpc (SERVER), the use case (`usecase <Method>`, innermost interceptor), each SQL
statement (`db <Repository.method>`: the statement's name, never its text or values) and
bcrypt (`bcrypt.hash`, `bcrypt.verify`). With `TODO_OTLP_ENDPOINT` unset nothing is set
up: `span()` returns a shared no-op context and the interceptor only splits one header.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

SERVICE_NAME = "todo-server"
_NOOP = contextlib.nullcontext()
_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: trace.Tracer | None = None


def configure(
    endpoint: str | None, sample_percent: float = 10.0, service_name: str = SERVICE_NAME
) -> Callable[[], None]:
    """Install the tracer provider exporting to `endpoint` over OTLP/gRPC (None: off).

    A call with a `traceparent` follows its sampled flag; others are sampled at
    `sample_percent`.

    Returns:
        A function that flushes and shuts the exporter down (a no-op when off).
    """
    global _tracer
    if endpoint is None:
        _tracer = None
        return lambda: None
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        sampler=ParentBased(TraceIdRatioBased(sample_percent / 100)),
    )
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _tracer = provider.get_tracer("todo.server")
    return provider.shutdown


def enabled() -> bool:
    """Whether spans are recorded and exported."""
    return _tracer is not None


def parse_traceparent(value: str) -> tuple[str, str]:
    """(trace id, parent span id) of a W3C `traceparent`, or ("", "") if malformed."""
    parts = value.split("-")
    if len(parts) >= 4 and len(parts[1]) == 32 and len(parts[2]) == 16 and parts[1] != "0" * 32:
        return parts[1].lower(), parts[2].lower()
    return "", ""


def start_server_span(rpc: str, carrier: Mapping[str, str]) -> tuple[trace.Span, object] | None:
    """Open and activate the rpc span continuing the carrier's trace.

    Returns:
        The span and the token to pass to `end_server_span`; None when tracing is off or
        the caller (Envoy) did not sample the call: then nothing is recorded below it, and
        the SDK is not entered at all (the logs take the ids from `traceparent`).
    """
    if _tracer is None or _unsampled(carrier.get("traceparent", "")):
        return None
    parent = _PROPAGATOR.extract(carrier)
    service, _, method = rpc.lstrip("/").partition("/")
    span = _tracer.start_span(
        rpc.lstrip("/"),
        context=parent,
        kind=trace.SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
    )
    return span, otel_context.attach(trace.set_span_in_context(span, parent))


def _unsampled(traceparent: str) -> bool:
    """Whether a well-formed `traceparent` says its trace is not sampled."""
    if len(traceparent) != 55:
        return False
    try:
        return not int(traceparent[53:55], 16) & 1
    except ValueError:
        return False


def end_server_span(opened: tuple[trace.Span, object], code: str) -> None:
    """Record the status code, deactivate and end the rpc span."""
    span, token = opened
    span.set_attribute("rpc.grpc.status_code", code)
    if code in ("INTERNAL", "UNKNOWN", "DATA_LOSS", "UNAVAILABLE", "DEADLINE_EXCEEDED"):
        span.set_status(trace.StatusCode.ERROR, code)
    otel_context.detach(token)  # type: ignore[arg-type]
    span.end()


def ids(opened: tuple[trace.Span, object] | None) -> tuple[str, str]:
    """(trace id, span id) in hex of an opened rpc span."""
    if opened is None:
        return "", ""
    ctx = opened[0].get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def span(
    name: str, attributes: Mapping[str, Any] | None = None
) -> contextlib.AbstractContextManager[Any]:
    """A child span of the current one (a shared no-op when off or not sampled)."""
    if _tracer is None or not trace.get_current_span().is_recording():
        return _NOOP
    return _tracer.start_as_current_span(name, attributes=attributes)
