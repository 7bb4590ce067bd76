"""The rendered Envoy configuration: TLS, HSTS, CORS, header limit, gzip, development TLS."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import cast

import pytest
import yaml
from cryptography import x509
from google.rpc import error_details_pb2, status_pb2

from server import devcert, edge, resources
from server.config import ConfigError, Settings


def _render(**overrides: object) -> str:
    overrides.setdefault("dev_tls", False)
    return edge.render_envoy_config(Settings(**overrides))  # type: ignore[arg-type]


def test_plain_http_without_development_tls() -> None:
    config = _render()
    assert "transport_socket: null" in config
    assert "listener_filters: []" in config and "default_filter_chain: null" in config
    assert "strict-transport-security" not in config
    assert "allow_origin_string_match: []" in config
    assert "local LIMIT = 32768" in config  # the header_limit filter: 32 KiB
    assert "max_request_headers_kb: 64" in config  # the codec's backstop above it
    assert "min_content_length: 1024" in config


def test_cors_allows_trace_headers_and_settings_add_more() -> None:
    config = _render(cors_allow_headers=("X-Tenant", "traceparent"))
    allowed = config.split("allow_headers: ")[1].split("\n")[0]
    names = json.loads(allowed).split(", ")
    for name in ("authorization", "traceparent", "tracestate", "baggage", "x-requested-with"):
        assert name in names
    assert "cache-control" in names and "sentry-trace" in names
    assert names[-1] == "X-Tenant" and names.count("traceparent") == 1
    exposed = json.loads(config.split("expose_headers: ")[1].split("\n")[0]).split(", ")
    for name in ("x-request-id", "retry-after", "ratelimit-remaining", "grpc-status"):
        assert name in exposed


def test_codec_replies_are_readable_only_when_some_origin_is_allowed() -> None:
    assert 'access-control-allow-origin, value: ""' in _render()
    with_origin = _render(cors_origins=("https://app.example.com",))
    assert 'access-control-allow-origin, value: "*"' in with_origin


@pytest.mark.parametrize(("limit", "backstop"), [(1, 60), (32, 64), (100, 200), (8192, 8192)])
def test_codec_header_limit_is_a_backstop_above_the_filter(limit: int, backstop: int) -> None:
    assert edge.codec_header_limit_kb(limit) == backstop


def test_development_tls_beside_plain_http_on_one_port(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.dev_tls_enabled  # development, no certificate configured
    with pytest.raises(ConfigError):
        edge.render_envoy_config(settings)  # write_envoy_config makes the certificate first
    path = edge.write_envoy_config(settings)
    config = path.read_text()
    cert = devcert.DevCertificate.in_folder(tmp_path)
    assert str(cert.cert_file) in config and str(cert.key_file) in config
    assert "envoy.filters.listener.tls_inspector" in config
    assert 'filter_chain_match: {"transport_protocol": "tls"}' in config
    assert "default_filter_chain: {filters: *edge_filters}" in config
    assert "strict-transport-security" not in config  # no HSTS for localhost


def test_development_certificate_is_made_once_and_renewed(tmp_path: Path) -> None:
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    first = devcert.ensure(tmp_path, now=now)
    pem = first.cert_file.read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert first.key_file.stat().st_mode & 0o777 == 0o600
    assert devcert.ensure(tmp_path, now=now + dt.timedelta(days=300)).cert_file.read_bytes() == pem
    renewed = devcert.ensure(tmp_path, now=now + dt.timedelta(days=340))  # under 30 days left
    assert renewed.cert_file.read_bytes() != pem
    first.cert_file.write_text("garbage")
    assert b"BEGIN CERTIFICATE" in devcert.ensure(tmp_path, now=now).cert_file.read_bytes()


def test_cors_origins_come_from_settings() -> None:
    config = _render(cors_origins=("https://app.example.com",))
    expected = json.dumps([{"exact": "https://app.example.com"}])
    assert f"allow_origin_string_match: {expected}" in config


def test_tls_adds_the_certificate_and_hsts(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("cert")
    key.write_text("key")
    config = _render(tls_cert_file=cert, tls_key_file=key)
    assert "DownstreamTlsContext" in config and str(cert) in config and str(key) in config
    assert f'"value": "{edge.HSTS}"' in config


def test_missing_tls_files_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        _render(tls_cert_file=tmp_path / "nope.pem", tls_key_file=tmp_path / "nope.key")


@pytest.mark.parametrize("tls", ["plain", "tls", "development"])
def test_envoy_accepts_the_configuration(tmp_path: Path, tls: str) -> None:
    # data_dir: Envoy opens the access log under it, so it must exist (a clean clone has no .data)
    overrides: dict[str, object] = {
        "cors_origins": ("https://app.example.com",),
        "data_dir": tmp_path,
    }
    if tls == "development":
        overrides |= {"dev_tls": True}
        devcert.ensure(tmp_path)
    if tls == "tls":
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        command = [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)),
        ]
        subprocess.run(command, check=True, capture_output=True)
        overrides |= {"tls_cert_file": cert, "tls_key_file": key}
    path = tmp_path / "envoy.yaml"
    path.write_text(_render(**overrides))
    result = subprocess.run(
        [edge.envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "error"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_public_documents_carry_their_own_cors_headers(tmp_path: Path) -> None:
    """A direct_response route (skipped by the cors filter) with ${public_cors_headers}."""
    route = (
        "              - match: {path: /public.json}\n"
        '                direct_response: {status: 200, body: {inline_string: "{}"}}\n'
        "                response_headers_to_add: ${public_cors_headers}\n"
    )
    source = resources.envoy_template().read_text()
    anchor = "              - match: {prefix: /}\n"
    template = tmp_path / "template.yaml"
    template.write_text(source.replace(anchor, route + anchor))
    settings = Settings(data_dir=tmp_path, dev_tls=False, cors_allow_headers=("x-tenant",))
    config = edge.render_envoy_config(settings, template=template)
    options = [cast(dict[str, str], h["header"]) for h in edge.public_cors_headers(["a"])]
    headers = {o["key"]: o["value"] for o in options}
    assert headers["access-control-allow-origin"] == "*"
    assert "x-request-id" in headers["access-control-expose-headers"]
    public = config.split("/public.json")[1].split("- match")[0]
    assert "traceparent" in public and "x-tenant" in public  # the same list as the policy
    path = tmp_path / "envoy.yaml"
    path.write_text(config)
    result = subprocess.run(
        [edge.envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "error"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"workers": 2, "hash_concurrency": 1, "hash_queue": 2}, 6),
        ({"workers": 3, "hash_concurrency": 2, "hash_queue": 0}, 6),
        ({"workers": 1, "hash_concurrency": 4, "hash_queue": 5}, 9),
        ({"envoy_upstreams": ("todo:50051",), "hash_concurrency": 3, "hash_queue": 0}, 3),
        ({"workers": 2, "envoy_upstreams": ("todo:50051",), "edge_hash_concurrency": 12}, 12),
    ],
)
def test_envoy_lets_through_as_many_password_checks_as_the_processes_take(
    overrides: dict[str, object], expected: int
) -> None:
    """One upstream per process (a DNS name counts once), or as configured."""
    config = yaml.safe_load(_render(**overrides))
    hashing = next(c for c in config["static_resources"]["clusters"] if c["name"] == "todo_hashing")
    assert hashing["circuit_breakers"]["thresholds"][0]["max_requests"] == expected
    grpc = next(c for c in config["static_resources"]["clusters"] if c["name"] == "todo_grpc")
    assert hashing["load_assignment"]["endpoints"] == grpc["load_assignment"]["endpoints"]


def test_envoys_refusal_is_the_servers_password_checks_busy_status() -> None:
    """The status Envoy sends past that limit decodes to the one a server process sends."""
    config = yaml.safe_load(_render())
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    grpc_mapper, rest_mapper = manager["typed_config"]["local_reply_config"]["mappers"][:2]
    headers = {h["header"]["key"]: h["header"]["value"] for h in grpc_mapper["headers_to_add"]}
    encoded = headers["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(base64.b64decode(encoded + "=" * (-len(encoded) % 4)))
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info) and status.details[1].Unpack(retry)
    assert (status.code, headers["grpc-status"]) == (8, "8")  # RESOURCE_EXHAUSTED
    assert (info.reason, info.domain) == ("PASSWORD_CHECKS_BUSY", "todo.v1")
    assert retry.retry_delay.seconds == int(headers["retry-after"]) >= 1
    assert headers["grpc-message"] == status.message
    assert grpc_mapper["status_code"] == 200  # a whole trailers-only reply, gRPC-web too
    assert grpc_mapper["body_format_override"] == {
        "text_format": "",
        "content_type": "application/grpc",
    }
    rest = rest_mapper["body_format_override"]["json_format"]
    assert rest_mapper["status_code"] == 429
    assert (rest["code"], rest["message"]) == (8, status.message)
    assert rest["details"][0]["reason"] == "PASSWORD_CHECKS_BUSY"
    assert rest["details"][1]["retry_delay"] == "1s"
