"""Observability: JSON logs, Prometheus metrics, OpenTelemetry traces, security events.

One layer, configured once in the composition root (`app.py`, `supervisor.py`):

- `context`: the current call's ids (request, trace, span, rpc, user), bound once per call;
- `logs`: the one logging set-up, JSON or console lines carrying that context;
- `metrics`: every Prometheus family, declared once with bounded labels;
- `exposition`: the single scrape endpoint served by the supervisor process;
- `tracing`: the OpenTelemetry tracer provider and the spans the server opens;
- `events`: security events (a log line with `event=` plus a counter).
"""
