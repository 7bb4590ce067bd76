"""Every answer from the edge carries CORS headers for an allowed origin and an x-request-id.

Envoy's own replies included: 404 for any path, 413, 431 (from the header_limit filter
and from the codec's backstop), 503 with no upstream, /healthz, preflights for unknown
paths, and whatever route is added later (the docs and OpenAPI paths are checked whatever
they answer). tests/e2e/test_browser_app.py reads the same answers from JavaScript.
"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import ALLOWED_ORIGIN, EXTRA_CORS_HEADER, Account
from tests.e2e.helpers import assert_error

pytestmark = pytest.mark.e2e

ME = "/api/v1/users/me"
ORIGIN = {"origin": ALLOWED_ORIGIN}
FOREIGN = {"origin": "https://evil.example"}
TRACE_HEADERS = "traceparent, tracestate, baggage, x-requested-with, cache-control, sentry-trace"


def _readable(response: httpx.Response, origin: str = ALLOWED_ORIGIN) -> None:
    """What a browser on `origin` needs to read the answer and its request id."""
    assert response.headers.get("access-control-allow-origin") == origin, response.headers
    exposed = response.headers["access-control-expose-headers"].split(", ")
    assert "x-request-id" in exposed
    assert response.headers["x-request-id"]


def test_envoy_404_for_any_path_is_readable(http: httpx.Client) -> None:
    for path in ("/nope", "/", "/api/v2/tasks", "/api/v1/nope", "/todo.v1.Nope/Get"):
        response = http.get(path, headers=ORIGIN)
        assert_error(response, 404, 5, reason="ROUTE_NOT_FOUND")
        _readable(response)
        assert "access-control-allow-origin" not in http.get(path, headers=FOREIGN).headers


def test_health_and_later_routes_are_readable(http: httpx.Client) -> None:
    health = http.get("/healthz", headers=ORIGIN)
    assert health.status_code == 200
    _readable(health)
    # The docs routes (public documents, direct responses: "*" by edge.public_cors_headers)
    # or, where there are none, the catch-all's 404.
    for path in ("/docs", "/openapi.json"):
        got = http.get(path, headers=ORIGIN)
        _readable(got, origin=got.headers.get("access-control-allow-origin", "missing"))
        assert got.headers["access-control-allow-origin"] in (ALLOWED_ORIGIN, "*")
        preflight = http.options(
            path,
            headers={
                **ORIGIN,
                "access-control-request-method": "GET",
                "access-control-request-headers": "traceparent",
            },
        )
        assert "traceparent" in preflight.headers["access-control-allow-headers"], path
        assert preflight.headers["access-control-allow-origin"] in (ALLOWED_ORIGIN, "*")


def test_413_and_431_are_readable(http: httpx.Client, alice: Account) -> None:
    big_body = http.post(
        f"{ME}/tasks", content=b"x" * (2 * 1024 * 1024), headers={**alice.headers, **ORIGIN}
    )
    assert_error(big_body, 413, 8, reason="BODY_TOO_LARGE")
    _readable(big_body)
    # 40 KiB: over the 32 KiB limit, refused by the header_limit filter after cors.
    big_headers = http.get(ME, headers={**alice.headers, **ORIGIN, "baggage": "b" * 40 * 1024})
    assert_error(big_headers, 431, 8, reason="HEADERS_TOO_LARGE")
    _readable(big_headers)
    client_id = {"x-request-id": "spa-431-request"}
    echoed = http.get(ME, headers={**ORIGIN, **client_id, "baggage": "b" * 40 * 1024})
    assert echoed.headers["x-request-id"] == "spa-431-request"


def test_the_codec_431_over_the_backstop_is_readable_too(http: httpx.Client) -> None:
    """Past the codec's own limit (64 KiB) no request header is known: any origin may read it."""
    for origin in (ORIGIN, FOREIGN):
        response = http.get(ME, headers={**origin, "baggage": "b" * 70 * 1024})
        assert_error(response, 431, 8, reason="HEADERS_TOO_LARGE")
        _readable(response, origin="*")


def test_503_without_upstream_is_readable(lone_edge: str) -> None:
    with httpx.Client(base_url=lone_edge, timeout=10) as client:
        health = client.get("/healthz", headers=ORIGIN)
        assert health.status_code == 503
        _readable(health)
        for path in (ME, "/api/v1/auth/login"):
            response = client.request("GET" if path == ME else "POST", path, headers=ORIGIN)
            assert_error(response, 503, 14, reason="UPSTREAM_UNAVAILABLE")
            _readable(response)
        assert "access-control-allow-origin" not in client.get(ME, headers=FOREIGN).headers


@pytest.mark.parametrize("path", [ME, "/nope", "/healthz", "/api/v1/users/me/tasks:watch"])
def test_preflights_allow_trace_headers_on_any_path(http: httpx.Client, path: str) -> None:
    asked = f"authorization, content-type, {TRACE_HEADERS}, {EXTRA_CORS_HEADER}"
    preflight = http.options(
        path,
        headers={
            **ORIGIN,
            "access-control-request-method": "PUT",
            "access-control-request-headers": asked,
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    allowed = preflight.headers["access-control-allow-headers"].split(", ")
    for name in asked.split(", "):
        assert name in allowed
    assert int(preflight.headers["access-control-max-age"]) >= 600  # browsers cache it
    assert preflight.headers["x-request-id"]
    foreign = http.options(path, headers={**FOREIGN, "access-control-request-method": "GET"})
    assert "access-control-allow-origin" not in foreign.headers


def test_rate_limit_and_request_id_headers_are_exposed(http: httpx.Client, alice: Account) -> None:
    got = http.get(ME, headers={**alice.headers, **ORIGIN})
    _readable(got)
    exposed = got.headers["access-control-expose-headers"].split(", ")
    for name in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "retry-after"):
        assert name in exposed and (name == "retry-after" or name in got.headers)
    assert {"grpc-status", "grpc-message"} <= set(exposed)  # gRPC-web clients read them
