"""What the edge and the server decide beyond the protos, read from where they decide it.

- Success statuses: Envoy's Lua filter turns a transcoded 200 into 201 or 204 on the gRPC-path
  routes that name the `created` or `no_content` script (envoy/envoy.yaml, TOOLCHAIN pitfall 4).
- Request body limits: the buffer filter's `max_request_bytes`, raised per REST route (batches).
- Public methods: the auth interceptor's allow-list; every other method needs a bearer token.

The Envoy template is rendered with default Settings and parsed, so the document follows the
config that `make run` and the tests actually start.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import yaml

from server import edge
from server.config import Settings
from server.interceptors.auth import PUBLIC_METHODS

_LUA = "envoy.filters.http.lua"
_BUFFER = "envoy.filters.http.buffer"
_SCRIPT_STATUS = {"created": 201, "no_content": 204}


@dataclasses.dataclass(frozen=True)
class EdgeFacts:
    """Facts about the edge the document must agree with."""

    success_status: dict[str, int]
    """gRPC path -> the HTTP status of a successful REST answer, where it is not 200."""
    default_body_limit: int
    """Largest REST request body in bytes; bigger gets 413."""
    body_limits: list[tuple[re.Pattern[str], int]]
    """REST path patterns whose routes allow a different body size, first match wins."""
    public_methods: frozenset[str]
    """gRPC paths callable without a bearer token."""

    def status_for(self, grpc_path: str) -> int:
        """The HTTP status of a successful REST call of this method."""
        return self.success_status.get(grpc_path, 200)

    def body_limit(self, rest_path: str) -> int:
        """The body limit of a concrete REST path (`/api/v1/users/me/tasks:batchCreate`)."""
        for pattern, limit in self.body_limits:
            if pattern.fullmatch(rest_path):
                return limit
        return self.default_body_limit


def _routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    listener = config["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    routes: list[dict[str, Any]] = manager["route_config"]["virtual_hosts"][0]["routes"]
    return routes


def _filters(config: dict[str, Any]) -> list[dict[str, Any]]:
    listener = config["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    filters: list[dict[str, Any]] = manager["http_filters"]
    return filters


def _route_pattern(match: dict[str, Any]) -> re.Pattern[str] | None:
    if "safe_regex" in match:
        return re.compile(match["safe_regex"]["regex"])
    if "prefix" in match:
        return re.compile(re.escape(match["prefix"]) + ".*")
    if "path" in match:
        return re.compile(re.escape(match["path"]))
    return None


def from_envoy_config(text: str) -> EdgeFacts:
    """Read the facts from a rendered Envoy configuration (YAML)."""
    config = yaml.safe_load(text)
    statuses: dict[str, int] = {}
    limits: list[tuple[re.Pattern[str], int]] = []
    for route in _routes(config):
        per_filter = route.get("typed_per_filter_config", {})
        match = route["match"]
        script = per_filter.get(_LUA, {}).get("name")
        if script in _SCRIPT_STATUS and "path" in match:
            statuses[match["path"]] = _SCRIPT_STATUS[script]
        limit = per_filter.get(_BUFFER, {}).get("buffer", {}).get("max_request_bytes")
        pattern = _route_pattern(match)
        if limit is not None and pattern is not None:
            limits.append((pattern, int(limit)))
    default = next(
        int(f["typed_config"]["max_request_bytes"])
        for f in _filters(config)
        if f["name"] == _BUFFER
    )
    return EdgeFacts(statuses, default, limits, PUBLIC_METHODS)


def load() -> EdgeFacts:
    """The facts of the checked-in Envoy template, rendered with default Settings (no TLS)."""
    return from_envoy_config(edge.render_envoy_config(Settings(dev_tls=False)))
