"""The alert rules and the Grafana dashboard only name metric families that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

from server.observability import metrics

OPS = Path(__file__).resolve().parents[2] / "ops"
ENVOY_FAMILIES = {
    "envoy_http_downstream_rq_xx",
    "envoy_http_downstream_rq_total",
    "envoy_http_cors_origin_invalid",
    "envoy_cluster_upstream_rq_active_overflow",
}
"""Envoy families the files use; tests/e2e/test_observability.py checks Envoy exports them."""
NAME = re.compile(r"(?<![\w\"])((?:todo|envoy)_[a-z0-9_]+)\b(?!\s*[=!~])")
"""A metric name: not a label matcher (`name=...`) nor a quoted label value."""
GROUPING = re.compile(r"\b(?:by|without)\s*\([^)]*\)")


def _series_names() -> set[str]:
    names = set(ENVOY_FAMILIES)
    for family in vars(metrics).values():
        kind = getattr(family, "_type", None)
        if kind is None or not hasattr(family, "_labelnames"):
            continue
        base = family._name
        if kind == "counter":
            names.add(base + "_total")
        elif kind == "histogram":
            names |= {base + "_bucket", base + "_sum", base + "_count"}
        else:
            names.add(base)
    return names


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((OPS / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_dashboard_is_grafana_json_with_unique_panels() -> None:
    dashboard = json.loads((OPS / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 15
    assert all(p["targets"] for p in dashboard["panels"])


def test_dashboard_and_alerts_name_only_real_families() -> None:
    known = _series_names()
    exprs = [*_dashboard_exprs(), (OPS / "alerts.yml").read_text()]
    used = {name for expr in exprs for name in NAME.findall(GROUPING.sub("", expr))}
    assert used, "no metric names found"
    assert used <= known, sorted(used - known)
    # the dashboard covers RED, the pool, streams and security events
    for needed in (
        "todo_rpc_requests_total",
        "todo_rpc_duration_seconds_bucket",
        "todo_db_pool_in_use",
        "todo_streams_open",
        "todo_security_events_total",
    ):
        assert any(needed in e for e in _dashboard_exprs()), needed
